"""One FFN neuron: where it fires in a corpus, what it writes, how it answers a prompt.

    neuron = parse_neuron("2.403", lm)                       # unit 403 of blocks.2.mlp.act
    index = build_index(lm, corpus_ids, {"kind": "text", "file": "my.txt"})  # scan once, every neuron
    write_index(index, "my.neurons.npz")
    index = read_index("my.neurons.npz", lm)                 # refused if built for other weights
    report = neuron_report(lm, neuron, index, prompt="I love")

The scan. The corpus is cut into consecutive windows of WINDOW tokens, and each window is run
through the model on its own (many at a time): a token's activation is the one it gets with the
tokens before it in its window as its context, 0 to WINDOW - 1 of them, as in a prompt of that
length (the window is shorter for a model whose context cannot hold it and AFTER tokens more).
For every neuron the scan keeps
- its TOP highest activations, ties going to the earlier token, each with its context: the
  window from its start through the firing token, and AFTER tokens more to read on. The model
  run on a stored context gives the stored activation again (the tests check it), and the view
  reruns the contexts to tint every token;
- its mean and the share of tokens where it is above 0, over every token; and quantiles read
  off a fixed histogram of every HIST_STRIDE-th token (a fixed sample, the same every run): HIST_BINS
  bins uniform in asinh(a / HIST_SCALE), each about 3% of the value wide (0.0003 near 0),
  interpolated within the bin.
The same corpus and weights give the same file, byte for byte.

The file is an .npz (a zip of .npy arrays, read with allow_pickle=False: loading one runs no
code) holding meta.json: the format, the model, the sha256 of each weights file it was built
for, the corpus and the scan's settings. Token ids are stored, not texts.

What a neuron writes: its row of the MLP's output projection, the vector one unit of its
activation adds to the residual stream, read as the output reads the stream: centred and scaled
by the final LayerNorm's weights (the LayerNorm's division by the stream's spread is left out:
it depends on everything else in the stream), then scored against every token's unembedding.
That is its direct effect only; later blocks read the same vector and can change what it does.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import stages
from ..errors import ParameterError, TraceGPTError, UsageError
from ..files import replacing, why
from ..loader import LoadedModel
from ..taps import Tap
from ..tracer import NonFiniteError, run_trace

WINDOW = 32  # tokens per scanned window: the longest context a token is scored with
AFTER = 3  # tokens kept after the firing one, to read on
TOP = 8  # contexts kept per neuron
BATCH_VALUES = 2**22  # activations (tokens × neurons of one layer) computed at once
BLOCK = 1024  # tokens summed at once
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999)
HIST_SCALE = 0.01  # the histogram is uniform in asinh(a / HIST_SCALE) ...
HIST_PER_UNIT = 32  # ... with this many bins per unit of it
HIST_HALF = 400  # bins on each side of 0: |a| up to 0.01·sinh(12.5) ≈ 1,340 (beyond: the end bins)
HIST_BINS = 2 * HIST_HALF + 1
HIST_STRIDE = 7  # the histogram counts every 7th token of the corpus (7 and the window share no factor)
FORMAT = "tracegpt-neuron-index"
FORMAT_VERSION = 1
ARRAYS = ("activation", "context", "positions", "lengths", "tokens", "mean", "frac_active", "quantiles")
_DATE = (1980, 1, 1, 0, 0, 0)  # the zip's timestamps: fixed, so two builds give the same bytes


class NeuronIndexError(TraceGPTError):
    """A neuron index that cannot be used: missing, not an index, broken, or built for other weights."""


# --- naming a neuron ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NeuronId:
    """Unit `index` of blocks.{layer}.mlp.act, written layer.index (2.403)."""

    layer: int
    index: int

    @property
    def text(self) -> str:
        return f"{self.layer}.{self.index}"

    @property
    def stage(self) -> str:
        return stages.block_stage(self.layer, "mlp.act")

    @property
    def site(self) -> str:
        return stages.Site(self.stage, {"neuron": self.index}).text


_NEURON = re.compile(r"(?P<layer>\d+)\.(?P<index>\d+)")


def parse_neuron(text: str, lm: LoadedModel) -> NeuronId:
    """'2.403' -> NeuronId(2, 403), or a ParameterError naming the model's layers and neurons."""
    n_layer, d_mlp = lm.config.n_layer, lm.config.d_mlp
    valid = f"{lm.name} has layers 0..{n_layer - 1} and neurons 0..{d_mlp - 1} in each (counting from 0)"
    m = _NEURON.fullmatch(text.strip())
    if not m:
        raise ParameterError("neuron", f"{text!r} is not LAYER.NEURON; write e.g. 2.403 ({valid})")
    layer, index = int(m["layer"]), int(m["index"])
    if layer >= n_layer:
        raise ParameterError("neuron", f"{text!r}: layer {layer} does not exist; {valid}")
    if index >= d_mlp:
        raise ParameterError("neuron", f"{text!r}: neuron {index} does not exist; {valid}")
    return NeuronId(layer, index)


# --- activations of whole batches --------------------------------------------------------------

class _Enough(Exception):
    """Raised by _KeepActivations once it holds the deepest stage it needs: the rest of the pass is skipped."""


class _KeepActivations(Tap):
    """Keeps blocks.L.mlp.act of the chosen layers for the whole batch, then stops the pass."""

    def __init__(self, layers: Sequence[int]):
        self.names = [stages.block_stage(i, "mlp.act") for i in sorted(layers)]
        self.kept: dict[str, torch.Tensor] = {}

    def needs(self, run):
        return self.names

    def __call__(self, name, tensor, offset):
        self.kept[name] = tensor
        if name == self.names[-1]:
            raise _Enough


@torch.no_grad()
def batch_activations(lm: LoadedModel, ids: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
    """(B, T) token ids -> one (B, T, d_mlp) float32 tensor per layer (sorted), the same as a full pass gives."""
    keep = _KeepActivations(layers)
    try:
        lm.model(ids.to(lm.device), taps=[keep])
    except _Enough:
        pass
    return [keep.kept[name].float() for name in keep.names]


# --- the scan ----------------------------------------------------------------------------------

class _Scan:
    """The running state of a scan, for every neuron of every layer: top activations, sums, the histogram."""

    def __init__(self, n_layer: int, d_mlp: int, device):
        shape = (n_layer, d_mlp)
        self.top_value = torch.full((*shape, TOP), -math.inf, device=device)
        self.top_position = torch.full((*shape, TOP), -1, dtype=torch.int64, device=device)
        self.total = torch.zeros(shape, dtype=torch.float64, device=device)
        self.active = torch.zeros(shape, dtype=torch.int64, device=device)
        self.hist = torch.zeros((*shape, HIST_BINS), dtype=torch.int64, device=device)
        self.offsets = torch.arange(d_mlp, device=device)[None, :] * HIST_BINS

    def add(self, layer: int, a: torch.Tensor, first: int) -> None:
        """a: (T, d_mlp), the activations of corpus positions first..first+T-1."""
        for rows in range(0, a.shape[0], BLOCK):  # blocks that stay in the cache through three passes
            block = a[rows:rows + BLOCK]
            self.total[layer] += block.sum(dim=0)
            self.active[layer] += (block > 0).sum(dim=0, dtype=torch.int32)
        self._top(layer, a, first)
        sample = a[(-first) % HIST_STRIDE::HIST_STRIDE]  # the corpus positions divisible by HIST_STRIDE
        bins = torch.asinh(sample / HIST_SCALE).mul_(HIST_PER_UNIT).floor_().clamp_(-HIST_HALF, HIST_HALF)
        flat = (bins.to(torch.int64) + HIST_HALF + self.offsets).flatten()
        self.hist[layer] += torch.bincount(flat, minlength=self.hist[layer].numel()).view(self.hist[layer].shape)

    def _top(self, layer: int, a: torch.Tensor, first: int) -> None:
        # Only neurons whose best here beats their TOP-th best so far can change (a tie loses: it comes later).
        rising = (a.amax(dim=0) > self.top_value[layer, :, -1]).nonzero().flatten()
        if not len(rising):
            return
        sub = a.index_select(1, rising).T.contiguous()  # (rising, T)
        k = min(TOP, sub.shape[1])
        values, cols = sub.topk(k, dim=1)
        # topk picks arbitrarily among values tied with the k-th; the rule is: the earlier token.
        cut = values[:, -1:]
        for row in ((sub >= cut).sum(dim=1) > k).nonzero().flatten().tolist():
            at = (sub[row] >= cut[row]).nonzero().flatten()  # ascending positions
            order = torch.sort(sub[row, at], descending=True, stable=True).indices[:k]
            values[row], cols[row] = sub[row, at[order]], at[order]
        # Keep the TOP highest of the kept and the new, by (value descending, position ascending).
        v = torch.cat([self.top_value[layer, rising], values], dim=1)
        p = torch.cat([self.top_position[layer, rising], cols + first], dim=1)
        order = torch.argsort(p, dim=1, stable=True)
        v, p = v.gather(1, order), p.gather(1, order)
        order = torch.argsort(v, dim=1, descending=True, stable=True)[:, :TOP]
        self.top_value[layer, rising], self.top_position[layer, rising] = v.gather(1, order), p.gather(1, order)


def windows(n_tokens: int, window: int) -> list[tuple[int, int]]:
    """(start, end) of each scanned window: consecutive, the last one possibly shorter."""
    return [(s, min(s + window, n_tokens)) for s in range(0, n_tokens, window)]


def context_span(position: int, n_tokens: int, window: int) -> tuple[int, int]:
    """The stored context of a firing token: from its window's start through AFTER tokens after it."""
    return position // window * window, min(position + 1 + AFTER, n_tokens)


@dataclass
class NeuronIndex:
    """Every neuron's top contexts and activation distribution over one corpus, as stored in the file."""

    meta: dict
    activation: np.ndarray  # (n_layer, d_mlp, TOP) float32: the top activations, highest first
    context: np.ndarray  # (n_layer, d_mlp, TOP) int32: each one's row in the context table
    positions: np.ndarray  # (C,) int64: the corpus position of each context's firing token, ascending
    lengths: np.ndarray  # (C,) int32: each context's length in tokens
    tokens: np.ndarray  # every context's token ids, end to end (uint16, or uint32 for a large vocabulary)
    mean: np.ndarray  # (n_layer, d_mlp) float32
    frac_active: np.ndarray  # (n_layer, d_mlp) float32: the share of tokens where it is above 0
    quantiles: np.ndarray  # (n_layer, d_mlp, len(QUANTILES)) float32
    path: Path | None = None

    @property
    def window(self) -> int:
        return int(self.meta["scan"]["window"])

    @property
    def n_tokens(self) -> int:
        return int(self.meta["corpus"]["tokens"])

    def contexts(self, neuron: NeuronId) -> list[Context]:
        starts = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])
        found = []
        for value, row in zip(self.activation[neuron.layer, neuron.index], self.context[neuron.layer, neuron.index]):
            position = int(self.positions[row])
            ids = self.tokens[starts[row]:starts[row + 1]].astype(np.int64).tolist()
            found.append(Context(token_ids=ids, firing=position % self.window, activation=float(value),
                                 position=position))
        return found

    def distribution(self, neuron: NeuronId) -> Distribution:
        at = (neuron.layer, neuron.index)
        return Distribution(n_tokens=self.n_tokens, mean=float(self.mean[at]), frac_active=float(self.frac_active[at]),
                            maximum=float(self.activation[at][0]),
                            quantiles=[(q, float(v)) for q, v in zip(self.meta["distribution"]["levels"],
                                                                     self.quantiles[at])])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}


@dataclass
class Context:
    """A stored context: its token ids (from its window's start), the firing token's place in it, its activation."""

    token_ids: list[int]
    firing: int
    activation: float
    position: int  # the firing token's position in the corpus


@dataclass
class Distribution:
    """One neuron's activations over every token of the corpus."""

    n_tokens: int
    mean: float
    frac_active: float  # share of tokens above 0
    maximum: float
    quantiles: list[tuple[float, float]]  # (level, value), levels ascending

    def standing(self, value: float) -> Standing:
        """Where a value falls: between which stored quantiles, or beyond the corpus's extremes."""
        below = [(q, v) for q, v in self.quantiles if v <= value]
        above = [(q, v) for q, v in self.quantiles if v > value]
        return Standing(value=value, over=below[-1] if below else None, under=above[0] if above else None,
                        beyond_max=value > self.maximum)


@dataclass
class Standing:
    value: float
    over: tuple[float, float] | None  # the highest quantile (level, value) at or below it
    under: tuple[float, float] | None  # the lowest quantile above it
    beyond_max: bool  # higher than every token of the corpus


def weights_fingerprint(lm: LoadedModel) -> list[dict]:
    """[{file, sha256}] for each weights file the model was read from: what an index is built for."""
    found = []
    for path in lm.files:
        if path.suffix in (".safetensors", ".bin"):
            with open(path, "rb") as f:
                found.append({"file": path.name, "sha256": hashlib.file_digest(f, "sha256").hexdigest()})
    return found


def build_index(lm: LoadedModel, ids: Sequence[int] | np.ndarray, corpus: dict,
                progress: Callable[[int], None] | None = None) -> NeuronIndex:
    """Scan `ids` (a corpus as token ids) for every neuron of every layer; `corpus` describes it for meta.json.

    `progress(n)` is called as each batch is done, with the number of tokens scanned so far. The model
    runs in eval mode (no dropout) whatever mode it was left in.
    """
    training = lm.model.training
    lm.model.eval()
    try:
        return _build(lm, ids, corpus, progress)
    finally:
        lm.model.train(training)


def _build(lm: LoadedModel, ids, corpus: dict, progress) -> NeuronIndex:
    ids = np.asarray(ids, dtype=np.int64)
    n_tokens = len(ids)
    if n_tokens < TOP:
        raise UsageError(f"the text has {n_tokens} tokens; an index needs at least {TOP}")
    config = lm.config
    window = max(1, min(WINDOW, config.n_ctx - AFTER))  # a context and the tokens after it fit the model's context
    scan = _Scan(config.n_layer, config.d_mlp, lm.device)
    layers = list(range(config.n_layer))
    per_batch = max(1, BATCH_VALUES // (config.d_mlp * window))  # windows at once
    spans = windows(n_tokens, window)
    full = [s for s in spans if s[1] - s[0] == window]
    data = torch.from_numpy(ids)
    for first in range(0, len(full), per_batch):
        group = full[first:first + per_batch]
        batch = data[group[0][0]:group[-1][1]].view(len(group), window)
        _scan_batch(lm, scan, batch, layers, group[0][0])
        if progress:
            progress(group[-1][1])
    if len(full) < len(spans):  # the last, shorter window
        start, end = spans[-1]
        _scan_batch(lm, scan, data[start:end][None], layers, start)
        if progress:
            progress(end)
    if not torch.isfinite(scan.total).all():
        raise NonFiniteError("the model produced non-finite activations (NaN or ∞) while scanning the corpus")
    return _finish(lm, scan, ids, window, corpus)


def _scan_batch(lm, scan: _Scan, batch: torch.Tensor, layers, first: int) -> None:
    for layer, acts in zip(layers, batch_activations(lm, batch, layers)):
        scan.add(layer, acts.reshape(-1, acts.shape[-1]), first)


def _finish(lm: LoadedModel, scan: _Scan, ids: np.ndarray, window: int, corpus: dict) -> NeuronIndex:
    top_position = scan.top_position.cpu().numpy()
    positions, rows = np.unique(top_position, return_inverse=True)
    spans = [context_span(int(p), len(ids), window) for p in positions]
    token_dtype = np.uint16 if lm.config.vocab_size <= 2**16 else np.uint32
    tokens = np.concatenate([ids[s:e] for s, e in spans]).astype(token_dtype)
    n = len(ids)
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "model": {"name": lm.name, "n_layer": lm.config.n_layer, "d_mlp": lm.config.d_mlp,
                  "vocab_size": lm.config.vocab_size},
        "weights": weights_fingerprint(lm),
        "corpus": {**corpus, "tokens": n},
        "scan": {"window": window, "after": AFTER, "top": TOP, "ties": "the earlier token",
                 "context": "each window of `window` tokens is run on its own; a stored context runs from its "
                            "window's start through `after` tokens after the firing one"},
        "distribution": {"levels": list(QUANTILES),
                         "method": f"a fixed histogram of the corpus positions divisible by {HIST_STRIDE}: "
                                   f"{HIST_BINS} bins uniform in asinh(a / {HIST_SCALE}), {HIST_PER_UNIT} per unit, "
                                   f"interpolated within the bin; the mean and frac_active count every token"},
    }
    return NeuronIndex(
        meta=meta, activation=scan.top_value.cpu().numpy().astype(np.float32),
        context=rows.reshape(top_position.shape).astype(np.int32), positions=positions.astype(np.int64),
        lengths=np.array([e - s for s, e in spans], dtype=np.int32), tokens=tokens,
        mean=(scan.total / n).cpu().numpy().astype(np.float32),
        frac_active=(scan.active.cpu().numpy() / n).astype(np.float32),
        quantiles=histogram_quantiles(scan.hist.cpu().numpy(), scan.top_value[..., 0].cpu().numpy()))


def histogram_quantiles(hist: np.ndarray, maximum: np.ndarray) -> np.ndarray:
    """(..., HIST_BINS) counts -> (..., len(QUANTILES)) values, interpolated within the bin, at most `maximum`."""
    cdf = hist.cumsum(axis=-1)
    n = cdf[..., -1]
    out = np.empty((*hist.shape[:-1], len(QUANTILES)), dtype=np.float64)
    for i, q in enumerate(QUANTILES):
        target = q * n
        b = (cdf < target[..., None]).sum(axis=-1)  # the first bin whose cumulative count reaches the target
        b = np.minimum(b, HIST_BINS - 1)
        before = np.take_along_axis(cdf, b[..., None], -1)[..., 0] - np.take_along_axis(hist, b[..., None], -1)[..., 0]
        inside = np.take_along_axis(hist, b[..., None], -1)[..., 0]
        fraction = np.clip((target - before) / np.maximum(inside, 1), 0, 1)
        out[..., i] = np.sinh((b - HIST_HALF + fraction) / HIST_PER_UNIT) * HIST_SCALE
    return np.minimum(out, maximum[..., None]).astype(np.float32)


# --- the file ----------------------------------------------------------------------------------

def write_index(index: NeuronIndex, path: str | Path) -> Path:
    """The index as an .npz with meta.json, deterministic to the byte; `path` is replaced only once it is whole."""
    path = Path(path)
    with replacing(path) as f, zipfile.ZipFile(f, "w") as z:
        _add(z, "meta.json", (json.dumps(index.meta, indent=1, sort_keys=True) + "\n").encode())
        for name, array in index.arrays().items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            _add(z, name + ".npy", buf.getvalue())
    return path


def _add(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.external_attr = 0o644 << 16
    z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def read_index(path: str | Path, lm: LoadedModel | None = None) -> NeuronIndex:
    """An index file, checked to be whole and, given the model, built for its very weights."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("meta.json"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise NeuronIndexError(f"{path}: not a tracegpt neuron index (its meta.json does not say {FORMAT!r})")
            if meta.get("version") != FORMAT_VERSION:
                raise NeuronIndexError(f"{path}: neuron index format {meta.get('version')!r}; this tracegpt reads "
                                  f"format {FORMAT_VERSION} (rebuild it with tracegpt neuron --build-index)")
            limit = _size_limit(meta)
            arrays = {}
            for name in ARRAYS:
                info = z.getinfo(name + ".npy")
                if info.file_size > limit:
                    raise NeuronIndexError(f"{path}: {name} holds {info.file_size:,} bytes, more than its "
                                           f"meta.json allows")
                arrays[name] = np.load(io.BytesIO(z.read(info)), allow_pickle=False)
    except FileNotFoundError:
        raise NeuronIndexError(f"{path}: no such file; build one with tracegpt neuron --build-index") from None
    except IsADirectoryError:
        raise NeuronIndexError(f"{path}: is a directory; give the index file") from None
    except NeuronIndexError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError, RecursionError) as e:
        raise NeuronIndexError(f"{path}: not a readable tracegpt neuron index ({why(e)})") from None
    index = NeuronIndex(meta=meta, path=path, **arrays)
    _check_shapes(index, path)
    if lm is not None:
        check_fits(index, lm)
    return index


def _size_limit(meta: dict) -> int:
    try:
        m, scan = meta["model"], meta["scan"]
        slots = int(m["n_layer"]) * int(m["d_mlp"]) * int(scan["top"])
        return slots * (int(scan["window"]) + int(scan["after"])) * 8 + 2**16
    except (KeyError, TypeError, ValueError):
        raise NeuronIndexError("meta.json lacks the model's sizes or the scan's settings") from None


def _check_shapes(index: NeuronIndex, path: Path) -> None:
    try:
        m = index.meta["model"]
        n_layer, d_mlp, top = int(m["n_layer"]), int(m["d_mlp"]), int(index.meta["scan"]["top"])
        n_tokens, window = index.n_tokens, index.window
        levels = index.meta["distribution"]["levels"]
    except (KeyError, TypeError, ValueError) as e:
        raise NeuronIndexError(f"{path}: broken neuron index (meta.json: {why(e)})") from None
    expected = {"activation": (n_layer, d_mlp, top), "context": (n_layer, d_mlp, top), "mean": (n_layer, d_mlp),
                "frac_active": (n_layer, d_mlp), "quantiles": (n_layer, d_mlp, len(levels))}
    for name, shape in expected.items():
        if getattr(index, name).shape != shape:
            raise NeuronIndexError(f"{path}: broken neuron index ({name} has shape {getattr(index, name).shape}, "
                              f"not {shape})")
    c = len(index.positions)
    if (index.lengths.shape != (c,) or index.lengths.sum() != len(index.tokens) or window < 1
            or (c and (index.context.min() < 0 or index.context.max() >= c or index.positions.min() < 0
                       or index.positions.max() >= n_tokens or (index.lengths < 1).any()))
            or (len(index.tokens) and int(index.tokens.max()) >= int(m["vocab_size"]))):
        raise NeuronIndexError(f"{path}: broken neuron index (its context table does not add up)")


def check_fits(index: NeuronIndex, lm: LoadedModel) -> None:
    """Refuse an index built for another model, or for other weights of this one."""
    where = index.path or "the neuron index"
    m = index.meta["model"]
    c = lm.config
    if (m.get("n_layer"), m.get("d_mlp"), m.get("vocab_size")) != (c.n_layer, c.d_mlp, c.vocab_size):
        raise NeuronIndexError(f"{where} is for a model of {m.get('n_layer')} layers × {m.get('d_mlp')} neurons "
                          f"({m.get('name')}), not {lm.name} ({c.n_layer} × {c.d_mlp}); give the index built for it")
    built_for = [w.get("sha256") for w in index.meta.get("weights", [])]
    now = weights_fingerprint(lm)
    if built_for != [w["sha256"] for w in now]:
        old = built_for[0][:12] if built_for and built_for[0] else "unknown"
        raise NeuronIndexError(f"{where} was built for other weights (sha256 {old}…), not {lm.name}'s "
                          f"({now[0]['sha256'][:12] if now else 'none'}…): it is stale; rebuild it with "
                          f"tracegpt neuron --build-index")


def default_index_path(lm: LoadedModel) -> Path | None:
    """The index the model's card names (the embedded model's, beside its weights); None for other models."""
    entry = lm.card.get("neuron_index")
    if not isinstance(entry, dict) or not entry.get("file") or not lm.files:
        return None
    return lm.files[0].parent / str(entry["file"])


def text_corpus(path: Path, text: str) -> dict:
    """How meta.json describes a text file that was scanned."""
    data = text.encode("utf-8")
    return {"kind": "text", "file": Path(path).name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build_summary(index: NeuronIndex, path: Path, seconds: float) -> dict:
    """What a build wrote: the JSON of --build-index --json, and what the model card says of its index."""
    m = index.meta
    return {"path": str(path), "bytes": Path(path).stat().st_size, "model": m["model"]["name"],
            "n_layer": m["model"]["n_layer"], "d_mlp": m["model"]["d_mlp"],
            "neurons": m["model"]["n_layer"] * m["model"]["d_mlp"], "top": m["scan"]["top"],
            "window": m["scan"]["window"], "contexts": len(index.positions), "tokens": m["corpus"]["tokens"],
            "corpus": m["corpus"], "weights": m["weights"], "seconds": round(seconds, 1)}


# --- what a neuron writes ----------------------------------------------------------------------

@dataclass
class Push:
    """A token and how much one unit of the neuron's activation moves its logit (before the final LayerNorm's scale)."""

    id: int
    text: str
    value: float


@dataclass
class Writes:
    up: list[Push]  # the tokens it pushes up most, most first
    down: list[Push]  # the tokens it pushes down most, most first
    norm: float  # the length of its output vector (its row of the MLP's output projection)


@torch.no_grad()
def what_it_writes(lm: LoadedModel, neuron: NeuronId, k: int = 10) -> Writes:
    """Its output vector through the final LayerNorm's direction and the unembedding: its direct effect on logits."""
    m = lm.model
    out = m.h[neuron.layer].mlp.c_proj.weight[neuron.index].float()  # (d_model,): added per unit of activation
    direction = (out - out.mean()) * m.ln_f.weight.float()  # the final LayerNorm centres and scales, per feature
    effect = m.unembedding().float() @ direction  # (vocab,)
    k = min(k, effect.numel())
    up, down = torch.topk(effect, k), torch.topk(-effect, k)
    return Writes(up=[Push(int(i), lm.token_text(int(i)), float(v)) for v, i in zip(up.values, up.indices)],
                  down=[Push(int(i), lm.token_text(int(i)), -float(v)) for v, i in zip(down.values, down.indices)],
                  norm=float(out.norm()))


# --- the whole report --------------------------------------------------------------------------

@dataclass
class ShownContext:
    """A stored context as the view draws it: every token's activation, from the model run on it again."""

    tokens: list[str]
    token_ids: list[int]
    values: list[float]
    firing: int
    activation: float  # as stored
    position: int  # in the corpus


@dataclass
class OnPrompt:
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    values: list[float]  # the neuron's activation at each position
    top: int  # the position of the highest
    standing: Standing | None  # where the highest falls in the corpus (with an index)


@dataclass
class IndexInfo:
    file: str
    corpus: dict  # what was scanned, from meta.json: kind "training" (with works) or "text" (with file)
    n_tokens: int
    window: int


@dataclass
class NeuronReport:
    model: dict
    neuron: NeuronId
    site: str
    d_mlp: int
    writes: Writes
    index: IndexInfo | None
    contexts: list[ShownContext] | None
    distribution: Distribution | None
    prompt: OnPrompt | None


@torch.no_grad()
def rerun_contexts(lm: LoadedModel, neuron: NeuronId, contexts: list[Context]) -> list[list[float]]:
    """The neuron's activation at every token of each context, the model run on it afresh (all in one batch)."""
    if not contexts:
        return []
    longest = max(len(c.token_ids) for c in contexts)
    # Padding on the right changes nothing before it: a token never reads its future.
    batch = torch.zeros((len(contexts), longest), dtype=torch.int64)
    for row, c in enumerate(contexts):
        batch[row, :len(c.token_ids)] = torch.tensor(c.token_ids)
    acts = batch_activations(lm, batch, [neuron.layer])[0][..., neuron.index].cpu()
    return [acts[row, :len(c.token_ids)].tolist() for row, c in enumerate(contexts)]


def on_prompt(lm: LoadedModel, neuron: NeuronId, prompt: str, distribution: Distribution | None) -> OnPrompt:
    trace = run_trace(lm, prompt, layers=[neuron.layer], stages=["mlp.act"])
    values = trace[neuron.stage][:, neuron.index].float().tolist()
    top = max(range(len(values)), key=lambda i: (values[i], -i))
    return OnPrompt(prompt=trace.prompt, tokens=list(trace.token_texts), token_ids=list(trace.token_ids),
                    values=values, top=top,
                    standing=None if distribution is None else distribution.standing(values[top]))


def neuron_report(lm: LoadedModel, neuron: NeuronId, index: NeuronIndex | None, prompt: str | None = None,
                  k: int = 10) -> NeuronReport:
    contexts = distribution = info = None
    if index is not None:
        stored = index.contexts(neuron)
        contexts = [ShownContext(tokens=[lm.token_text(t) for t in c.token_ids], token_ids=c.token_ids, values=v,
                                 firing=c.firing, activation=c.activation, position=c.position)
                    for c, v in zip(stored, rerun_contexts(lm, neuron, stored))]
        distribution = index.distribution(neuron)
        info = IndexInfo(file=index.path.name if index.path else "", corpus=dict(index.meta["corpus"]),
                         n_tokens=index.n_tokens, window=index.window)
    return NeuronReport(model=lm.describe(), neuron=neuron, site=neuron.site, d_mlp=lm.config.d_mlp,
                        writes=what_it_writes(lm, neuron, k), index=info, contexts=contexts,
                        distribution=distribution,
                        prompt=None if prompt is None else on_prompt(lm, neuron, prompt, distribution))
