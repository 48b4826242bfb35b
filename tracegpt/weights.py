"""Reading and writing weights (safetensors; pytorch_model.bin read only) and the GPT-2 (Hugging Face) names.

Our module names and layouts follow GPT-2's checkpoint keys (wte, wpe, h.N.attn.c_attn, ...;
the four projections stored [in, out]), so a Hugging Face state dict maps onto ours by dropping
the `transformer.` prefix.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import TraceGPTError
from .model import GPT, GPTConfig

# Buffers some GPT-2 files carry: the causal mask and its fill value. We compute the mask instead.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


class WeightsError(TraceGPTError):
    pass


SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's header (name -> dtype, shape, data_offsets) and where its data starts.

    Checked before anything else is read: a file whose header is unreadable or claims data
    beyond the end of the file is refused in one line, and never allocates what it asks for.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100_000_000):
            raise WeightsError(f"{path}: header claims {n} bytes but the file has {size}; truncated or corrupted")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WeightsError(f"{path}: safetensors header is not valid JSON; corrupted file") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    for name, info in header.items():
        try:
            start, end = info["data_offsets"]
            ok = 0 <= start <= end <= data_size
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise WeightsError(
                f"{path}: tensor {name!r} lies outside the file's {data_size} data bytes; truncated or corrupted"
            )
    return header, 8 + n


def iter_safetensors(path: Path, skip=lambda name: False) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) from a safetensors file, read with plain reads rather than a memory map.

    A memory map would count the whole file in the process's resident memory while the tensors
    are copied out of it; reading each tensor into its own buffer keeps the peak at one tensor.
    """
    header, data_start = read_safetensors_header(path)
    with open(path, "rb") as f:
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            if skip(name):
                continue
            dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
            if dtype is None:
                raise WeightsError(f"{path}: tensor {name!r} is stored as {info.get('dtype')}, "
                                   f"which tracegpt cannot read")
            start, end = info["data_offsets"]
            shape = info.get("shape", [])
            if end - start != math.prod(shape) * dtype.itemsize:
                raise WeightsError(f"{path}: tensor {name!r} has {end - start} bytes for shape {shape}; corrupted file")
            buf = bytearray(end - start)
            f.seek(data_start + start)
            if f.readinto(buf) != len(buf):
                raise WeightsError(f"{path}: tensor {name!r} is cut short; truncated file")
            yield name, (torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)).reshape(shape)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, as stored."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return dict(iter_safetensors(path))


def read_pytorch_bin(path: Path) -> dict[str, torch.Tensor]:
    """A pytorch_model.bin, unpickled with weights_only=True: tensors only, never code."""
    import pickle

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = str(e).splitlines()[0][:120]
        raise WeightsError(f"{path}: refused, the pickle asks for more than tensors ({why})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise WeightsError(f"{path}: cannot read pytorch weights: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return state


def iter_pytorch_bin(path: Path, skip) -> Iterator[tuple[str, torch.Tensor]]:
    state = read_pytorch_bin(path)  # weights_only=True: tensors, never code
    for name in list(state):
        tensor = state.pop(name)  # let each original go as soon as it is converted
        if not skip(name):
            yield name, tensor


# ---------------------------------------------------------------------------------------------
# A Hugging Face checkpoint's tensors, one file after another: renamed and cast as they are
# read, so the peak is about the finished model plus one tensor (gpt2-xl in float32 is
# 6.2 GB; twice that would not fit).


def _skipped(hf_name: str, tie: bool) -> bool:
    name = hf_name.removeprefix("transformer.")
    # The causal-mask buffers some files carry (we compute the mask), and a tied head's copy of wte.
    return name.endswith(IGNORED_SUFFIXES) or (tie and name == "lm_head.weight")


def read_weights(paths: list[Path], tie: bool, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our names (prefix dropped), cast to dtype."""
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for path in paths:
        reader = iter_safetensors if path.suffix == ".safetensors" else iter_pytorch_bin
        for hf_name, tensor in reader(path, lambda n: _skipped(n, tie)):
            name = hf_name.removeprefix("transformer.")
            if name in state:
                raise WeightsError(f"{path}: tensor {name!r} appears twice (as {origin[name]!r} and {hf_name!r})")
            if not tensor.is_floating_point():
                raise WeightsError(f"{path}: tensor {hf_name!r} is {tensor.dtype}, not floating point")
            if tensor.dtype != dtype or not tensor.is_contiguous():
                tensor = torch.empty(tensor.shape, dtype=dtype).copy_(tensor)  # one copy: cast
            state[name], origin[name] = tensor, hf_name
    return state


def from_hf_state_dict(hf: dict[str, torch.Tensor], tie_embeddings: bool = True) -> dict[str, torch.Tensor]:
    """A GPT2LMHeadModel / GPT2Model state dict -> ours."""
    ours = {}
    for name, tensor in hf.items():
        name = name.removeprefix("transformer.")
        if name.endswith(IGNORED_SUFFIXES):
            continue
        if name == "lm_head.weight" and tie_embeddings:
            continue
        ours[name] = tensor
    return ours


def to_hf_state_dict(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Ours -> a GPT2LMHeadModel state dict (tied head written out, as transformers expects)."""
    hf = {}
    for name, tensor in ours.items():
        if name == "lm_head.weight":
            hf[name] = tensor
            continue
        hf["transformer." + name] = tensor
    if "lm_head.weight" not in hf:
        hf["lm_head.weight"] = ours["wte.weight"]
    return hf


@contextmanager
def _no_embedding_init():
    reset = torch.nn.Embedding.reset_parameters
    torch.nn.Embedding.reset_parameters = lambda self: None
    try:
        yield
    finally:
        torch.nn.Embedding.reset_parameters = reset


def build_model(config: GPTConfig, state: dict[str, torch.Tensor], source: str, dtype=torch.float32) -> GPT:
    """A model with exactly these tensors; any missing, extra or misshapen tensor is named."""
    # On the meta device the model takes no memory until the file's tensors are assigned. Its
    # random init is thrown away, and Embedding's (normal_ on meta) would import about a second
    # of torch decompositions, so it is skipped.
    with torch.device("meta"), _no_embedding_init():
        model = GPT(config)
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    for name, shape in expected.items():
        if name not in state:
            raise WeightsError(f"{source}: tensor {name!r} missing; the weights do not match the config")
        got = tuple(state[name].shape)
        if got != shape:
            raise WeightsError(
                f"{source}: tensor {name!r} has shape {list(got)} but the config needs {list(shape)}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise WeightsError(f"{source}: unexpected tensor {extra[0]!r}; the weights do not match the config")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    return model.eval()


def save_safetensors(model: GPT, path: Path, dtype=torch.float16, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={k: str(v) for k, v in (metadata or {}).items()})
