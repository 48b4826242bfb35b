"""Reading and writing weights: safetensors only, and the GPT-2 (Hugging Face) name mapping.

Our module names and layouts follow GPT-2's checkpoint keys (wte, wpe, h.N.attn.c_attn, ...;
the four projections stored [in, out]), so a Hugging Face state dict maps onto ours by dropping
the `transformer.` prefix.
"""

from __future__ import annotations

import json
import struct
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import TraceGPTError
from .model import GPT, GPTConfig

# Buffers some GPT-2 files carry: the causal mask and its fill value. We compute the mask instead.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


class WeightsError(TraceGPTError):
    pass


def check_safetensors_header(path: Path) -> None:
    """Refuse a file whose header is unreadable or claims data beyond the end of the file.

    safetensors would raise too, but checking first lets us name the problem in one line and
    never allocate what an absurd header asks for.
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
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            ok = 0 <= start <= end <= data_size
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise WeightsError(
                f"{path}: tensor {name!r} lies outside the file's {data_size} data bytes; truncated or corrupted"
            )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    check_safetensors_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise WeightsError(f"{path}: cannot read safetensors: {str(e).splitlines()[0]}") from None


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
