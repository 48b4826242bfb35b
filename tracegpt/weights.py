"""Reading and writing weights (safetensors; pytorch_model.bin read only) and the GPT-2 (Hugging Face) names.

Our module names and layouts follow GPT-2's checkpoint keys (wte, wpe, h.N.attn.c_attn, ...;
the four projections stored [in, out]), so a Hugging Face state dict maps onto ours by dropping
the `transformer.` prefix.
"""

from __future__ import annotations

import math
import pickle
import struct
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import TraceGPTError
from .files import ANSI, parse_json, plain, short, why
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
MAX_HEADER = 100_000_000  # bytes; safetensors itself refuses a larger header


@dataclass
class StoredTensor:
    """One tensor as a weights file holds it, known from the file's header before it is read."""

    path: Path
    name: str  # the file's name for it: transformer.h.0.ln_1.weight
    dtype: torch.dtype
    stored_as: str  # the file's word for the dtype, for messages: F16, torch.float16
    shape: tuple[int, ...]
    offsets: tuple[int, int] = (0, 0)  # safetensors: its bytes, counted from the start of the file
    mapped: torch.Tensor | None = None  # pytorch_model.bin: the tensor, memory-mapped, not yet copied

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The tensor in memory of its own, cast to dtype (None: as stored)."""
        dtype = dtype or self.dtype
        if self.mapped is not None:
            # Always a copy: a model must not keep pages of a file that may change under it.
            return torch.empty(self.shape, dtype=dtype).copy_(self.mapped)
        # Plain reads, not a memory map: a map would count the whole file in the process's
        # resident memory while tensors are copied out of it; this keeps the peak at one tensor.
        buf = bytearray(self.offsets[1] - self.offsets[0])
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offsets[0])
                got = f.readinto(buf)
        except OSError as e:
            raise WeightsError(f"{self.path}: cannot read ({why(e)})") from None
        if got != len(buf):
            raise WeightsError(f"{self.path}: tensor {self.name!r} is cut short; truncated file")
        tensor = torch.frombuffer(buf, dtype=self.dtype) if buf else torch.empty(0, dtype=self.dtype)
        tensor = tensor.reshape(self.shape)
        return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _safetensors_header(path: Path) -> tuple[dict, int, int]:
    """The header as JSON, where the data starts, and how many data bytes the file has."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: not a safetensors file (only {size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, MAX_HEADER):
                raise WeightsError(f"{path}: header claims {n} bytes but the file has {size}; truncated or corrupted")
            raw = f.read(n)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({why(e)})") from None
    header = parse_json(raw, f"{path}: safetensors header", WeightsError)
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: safetensors header is not a JSON object")
    return header, 8 + n, size - 8 - n


def safetensors_tensors(path: Path) -> list[StoredTensor]:
    """Every tensor of a safetensors file, from its header: each entry checked, nothing read yet.

    The header is the file's own account of itself; an entry that does not add up (offsets
    outside the data, bytes that do not fit the shape, tensors on top of one another) is
    refused here, so that nothing is ever allocated for what the file does not hold.
    """
    header, data_start, data_size = _safetensors_header(path)
    tensors = []
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise WeightsError(f"{path}: __metadata__ must map names to strings, not {short(info)}")
            continue
        if not isinstance(info, dict):
            raise WeightsError(f"{where} is not a JSON object of dtype, shape and data_offsets")
        stored_as = info.get("dtype")
        dtype = SAFETENSORS_DTYPES.get(stored_as) if isinstance(stored_as, str) else None
        if dtype is None:
            raise WeightsError(f"{where}: dtype {short(stored_as)} is not one tracegpt reads "
                               f"({', '.join(SAFETENSORS_DTYPES)})")
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise WeightsError(f"{where}: shape must be a list of sizes, not {short(shape)}")
        offsets = info.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise WeightsError(f"{where}: data_offsets must be two integers, not {short(offsets)}")
        start, end = offsets
        if not start <= end <= data_size:
            raise WeightsError(f"{where} lies outside the file's {data_size} data bytes (data_offsets {offsets}); "
                               f"truncated or corrupted")
        if end - start != math.prod(shape) * dtype.itemsize:
            raise WeightsError(f"{where} has {end - start} bytes for shape {shape}; corrupted file")
        tensors.append(StoredTensor(path, name, dtype, stored_as, tuple(shape), (data_start + start, data_start + end)))
    tensors.sort(key=lambda t: t.offsets)
    for before, after in zip(tensors, tensors[1:]):
        if after.offsets[0] < before.offsets[1]:
            raise WeightsError(f"{path}: tensor {after.name!r} overlaps {before.name!r} in the file; corrupted file")
    return tensors


def _weights_only_reason(e: Exception) -> str:
    """torch's refusal in a few words: its first lines are advice on loading the file unsafely."""
    text = ANSI.sub("", str(e))
    _, found, rest = text.partition("WeightsUnpickler error:")
    return plain(rest.split(". ")[0] if found else text, 120)


def _unpickle(path: Path):
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({why(e)})") from None
    if size == 0:
        raise WeightsError(f"{path}: the file is empty (0 bytes); the download looks incomplete")
    zipped = magic == b"PK\x03\x04"  # torch.save's format since 1.6; before it, a bare pickle (protocol 2)
    if not zipped and magic[:2] != b"\x80\x02":
        raise WeightsError(f"{path}: not a PyTorch weights file (it starts with {magic!r}, "
                           f"neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's warnings would be lines of their own on stderr
            # weights_only: tensors and plain containers, never code. mmap: a tensor's shape and
            # strides are known without reading its data, so nothing is copied before it is checked.
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as e:
        if "WeightsUnpickler" in str(e) or "Weights only load failed" in str(e):
            raise WeightsError(f"{path}: refused, the pickle asks for more than tensors "
                               f"({_weights_only_reason(e)})") from None
        raise WeightsError(f"{path}: not a valid pickle ({why(e)})") from None
    except Exception as e:  # noqa: BLE001 - torch.load on damaged bytes raises nearly anything; each is the file's fault
        raise WeightsError(f"{path}: cannot read pytorch weights ({why(e)})") from None


def pytorch_bin_tensors(path: Path) -> list[StoredTensor]:
    """Every tensor of a pytorch_model.bin, memory-mapped where the format allows: nothing copied yet."""
    state = _unpickle(path)
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict (a {type(state).__name__}, not a dict of name -> tensor)")
    tensors = []
    for name, tensor in state.items():
        if not isinstance(name, str):
            raise WeightsError(f"{path}: key {short(name)} is not a tensor name")
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{path}: {name!r} is not a tensor (a {type(tensor).__name__})")
        tensors.append(StoredTensor(path, name, tensor.dtype, str(tensor.dtype), tuple(tensor.shape), mapped=tensor))
    return tensors


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, as stored."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return {t.name: t.read() for t in safetensors_tensors(path)}


def read_pytorch_bin(path: Path) -> dict[str, torch.Tensor]:
    """A pytorch_model.bin's tensors, as stored (weights_only: tensors, never code)."""
    tensors = pytorch_bin_tensors(Path(path))
    check_holds_its_data(tensors)
    return {t.name: t.read() for t in tensors}


TIED = {"wte.weight", "lm_head.weight"}


def check_holds_its_data(tensors: list[StoredTensor]) -> None:
    """Refuse pickled tensors that are views of less data than their shape says.

    A pickle can describe a tensor of any size as a smaller one repeated (stride 0), or one
    storage under many names: 21 KB of file would become gigabytes once copied out. A file
    must hold each of its tensors whole. (Only the embedding and a tied head may be one.)
    """
    seen: dict[tuple, str] = {}
    need: dict[Path, int] = {}
    for t in tensors:
        m = t.mapped
        if m is None or m.numel() == 0:
            continue
        span = 1 + sum((n - 1) * s for n, s in zip(m.shape, m.stride()))  # elements its strides reach
        if span < m.numel():
            raise WeightsError(f"{t.path}: tensor {t.name!r} of shape {list(t.shape)} holds {span * m.element_size()} "
                               f"bytes for its {t.nbytes} (strides {list(m.stride())}): a smaller tensor repeated; "
                               f"tracegpt reads only tensors stored whole")
        view = (m.data_ptr(), tuple(m.shape), m.stride())
        if view in seen and {n.removeprefix("transformer.") for n in (seen[view], t.name)} != TIED:
            raise WeightsError(f"{t.path}: tensors {seen[view]!r} and {t.name!r} share their data; "
                               f"tracegpt reads only tensors stored whole, each once")
        if view not in seen:
            seen[view] = t.name
            need[t.path] = need.get(t.path, 0) + t.nbytes
    for path, n in need.items():
        if n > path.stat().st_size:
            raise WeightsError(f"{path}: its tensors need {n} bytes but the file has {path.stat().st_size}: "
                               f"tensors share their data; tracegpt reads only tensors stored whole, each once")


# ---------------------------------------------------------------------------------------------
# A Hugging Face checkpoint's tensors: listed from every file's header first, so that their
# shapes can be checked against the config before anything is read; then read one by one,
# renamed and cast as they come, so the peak is about the finished model plus one tensor
# (gpt2-xl in float32 is 6.2 GB; twice that would not fit).


def _skipped(hf_name: str, tie: bool) -> bool:
    name = hf_name.removeprefix("transformer.")
    # The causal-mask buffers some files carry (we compute the mask), and a tied head's copy of wte.
    return name.endswith(IGNORED_SUFFIXES) or (tie and name == "lm_head.weight")


def checkpoint_tensors(paths: list[Path], tie: bool) -> dict[str, StoredTensor]:
    """The tensors a model needs from these files, under our names (prefix dropped); none read yet."""
    stored: dict[str, StoredTensor] = {}
    for path in paths:
        tensors = safetensors_tensors(path) if path.suffix == ".safetensors" else pytorch_bin_tensors(path)
        for t in tensors:
            if _skipped(t.name, tie):
                continue
            name = t.name.removeprefix("transformer.")
            if name in stored:
                raise WeightsError(f"{path}: tensor {name!r} appears twice (as {stored[name].name!r} and {t.name!r})")
            if not t.dtype.is_floating_point:
                raise WeightsError(f"{path}: tensor {t.name!r} is {t.stored_as}, not floating point")
            stored[name] = t
    return stored


def load_model(config: GPTConfig, stored: dict[str, StoredTensor], source: str, dtype: torch.dtype) -> GPT:
    """A model of this config with these tensors, read only once every shape is known to fit."""
    model = empty_model(config)
    check_shapes(model, {name: t.shape for name, t in stored.items()}, source)
    check_holds_its_data(list(stored.values()))
    state = {name: t.read(dtype) for name, t in stored.items()}
    model.load_state_dict(state, assign=True)
    return model.eval()


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


def empty_model(config: GPTConfig) -> GPT:
    """A model of this config that takes no memory: on the meta device, until tensors are assigned."""
    # Its random init would be thrown away, and Embedding's (normal_ on meta) would import about
    # a second of torch decompositions, so it is skipped.
    with torch.device("meta"), _no_embedding_init():
        return GPT(config)


def check_shapes(model: GPT, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """The first missing, extra or misshapen tensor, named."""
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    for name, shape in expected.items():
        if name not in shapes:
            raise WeightsError(f"{source}: tensor {name!r} missing; the weights do not match the config")
        if tuple(shapes[name]) != shape:
            raise WeightsError(
                f"{source}: tensor {name!r} has shape {list(shapes[name])} but the config needs {list(shape)}"
            )
    extra = sorted(set(shapes) - set(expected))
    if extra:
        raise WeightsError(f"{source}: tensor {extra[0]!r} is not part of the model; "
                           f"the weights do not match the config")


def build_model(config: GPTConfig, state: dict[str, torch.Tensor], source: str, dtype=torch.float32) -> GPT:
    """A model with exactly these tensors; any missing, extra or misshapen tensor is named."""
    model = empty_model(config)
    check_shapes(model, {name: tuple(t.shape) for name, t in state.items()}, source)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    return model.eval()


def save_safetensors(model: GPT, path: Path, dtype=torch.float16, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={k: str(v) for k, v in (metadata or {}).items()})
