"""Activation patching: which parts of the pass carry the difference between two prompts.

    result = patching(lm, "When Mary and John went to the store, John gave a drink to",
                          "When Mary and John went to the store, Mary gave a drink to")

The metric is the logit difference between the clean prompt's answer and the corrupted one's
(their top next tokens, unless given), at the last position, scaled so that 0 is the corrupted
run and 1 the clean run. Each cell of a sweep is one patched run of the corrupted prompt with
one piece taken from the clean run: a position of the residual stream after a block (or of the
embedding), a head's output at every position, or a position of another stage.

Runs share what does not change: the corrupted run up to the patched block is computed once,
and the variants of one block run as one batch from there. Beside each exact value is the
first-order estimate of attribution patching, (a_clean − a_corrupt) · ∂metric/∂a taken at the
corrupted run with one backward pass, so a reader sees where the cheap estimate holds and where
it fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import stages
from ..errors import ParameterError, UsageError
from ..loader import LoadedModel
from ..taps import NO_BLOCK_TAPS, Run, Tap, plan
from ..tracer import Trace, encode_prompt, trace_ids

KINDS = ("resid_out", "heads", "attn.out", "mlp.out", "resid_attn")
POSITION_KINDS = ("resid_out", "attn.out", "mlp.out", "resid_attn")


@dataclass
class Sweep:
    kind: str  # resid_out, heads, or the stage patched position by position
    rows: list[str]  # the stage patched at each row: embed.sum then blocks.L.resid_out, or blocks.L.attn.mix
    columns: list[int]  # positions, or heads
    values: list[list[float]]  # the normalised metric of each patched run: 0 = corrupted, 1 = clean
    estimates: list[list[float]]  # attribution patching's first-order estimate, on the same scale

    @property
    def errors(self) -> list[list[float]]:
        return [[e - v for e, v in zip(er, vr)] for er, vr in zip(self.estimates, self.values)]

    def arrays(self) -> dict[str, np.ndarray]:
        """values, estimates and errors as (rows, columns) arrays."""
        return {"values": np.array(self.values), "estimates": np.array(self.estimates),
                "errors": np.array(self.errors)}


@dataclass
class PatchingResult:
    model: dict
    clean: str
    corrupt: str
    tokens: list[str]  # the clean prompt's tokens (the corrupted one has as many)
    corrupt_tokens: list[str]
    answer: int
    answer_text: str
    wrong: int
    wrong_text: str
    metric_clean: float  # logit(answer) - logit(wrong), clean run
    metric_corrupt: float
    sweeps: list[Sweep]


class BatchPatch(Tap):
    """Batch item b gets one piece of the clean run: head b's output (heads), or position b (positions)."""

    def __init__(self, stage: str, clean: torch.Tensor, by_head: bool):
        self.stage = stage
        self.clean = clean  # the clean run's stage, batch axis dropped
        self.by_head = by_head

    def writes(self, n_layer: int):
        return (self.stage,)

    def __call__(self, name: str, tensor: torch.Tensor, offset: int) -> torch.Tensor:
        edited = tensor.clone()
        b = torch.arange(tensor.shape[0])
        if self.by_head:  # (B = n_head, heads, T, d): item b takes head b
            edited[b, b] = self.clean.to(tensor.dtype)
        else:  # (B = T, T, d): item b takes position b
            edited[b, b] = self.clean.to(tensor.dtype)[b]
        return edited


def readout_direction(lm: LoadedModel, target: int, vs: int | None) -> torch.Tensor:
    """The unembedding row of the target (minus that of `vs`), in float64: what the logit reads off ln_f."""
    unembedding = lm.model.unembedding().detach()
    u = unembedding[target].double()
    return u - unembedding[vs].double() if vs is not None else u


def metric_of(model, residual: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """logit(answer) − logit(wrong) from final residual vectors (..., d_model): ln_f, then one dot product.

    Row by row in float64, so a vector gives the same number whichever batch it comes in.
    """
    normed = model.ln_f(residual)
    return (normed.double() * direction).sum(-1)


def check_prompts(lm: LoadedModel, clean: str, corrupt: str) -> tuple[list[int], list[int]]:
    a, b = encode_prompt(lm, clean), encode_prompt(lm, corrupt)
    if len(a) != len(b):
        raise UsageError(f"the clean prompt is {len(a)} tokens and the corrupted one {len(b)}; patching compares "
                         f"them position by position, so they must tokenize to the same length")
    return a, b


def token_id(lm: LoadedModel, token: str | int, parameter: str) -> int:
    if isinstance(token, int):
        if not 0 <= token < lm.config.vocab_size:
            raise ParameterError(parameter, f"{token} is not a token id; ids are 0..{lm.config.vocab_size - 1}")
        return token
    ids = lm.encode(token)
    if len(ids) != 1:
        raise ParameterError(parameter, f"{token!r} is {len(ids)} tokens in {lm.name}; give a text that is one token")
    return ids[0]


def patching(lm: LoadedModel, clean: str, corrupt: str, kinds: tuple[str, ...] = ("resid_out", "heads"),
             answer: str | int | None = None, wrong: str | int | None = None) -> PatchingResult:
    """Every sweep of `kinds` of the corrupted prompt with pieces of the clean one.

    `answer` and `wrong` (a one-token text or an id) default to each run's top next token.
    """
    for kind in kinds:
        if kind not in KINDS:
            raise ParameterError("stage", f"{kind!r} cannot be swept; choose one of {', '.join(KINDS)}")
    clean_ids, corrupt_ids = check_prompts(lm, clean, corrupt)
    wanted = ["embed.sum", "resid_out", "attn.mix", "attn.out", "mlp.out", "resid_attn", "logits"]
    clean_run = trace_ids(lm, clean_ids, clean, stages=wanted)
    corrupt_run = trace_ids(lm, corrupt_ids, corrupt, stages=wanted)
    last = len(clean_ids) - 1
    a = token_id(lm, answer, "answer") if answer is not None else int(clean_run["logits"][last].argmax())
    w = token_id(lm, wrong, "wrong") if wrong is not None else int(corrupt_run["logits"][last].argmax())
    if a == w:
        raise UsageError(f"both prompts predict {lm.token_text(a)!r} next, so there is no difference to trace; name "
                         f"the two tokens to compare with --answer and --wrong")
    model = lm.model
    direction = readout_direction(lm, a, w).to(lm.device)
    n_layer = lm.config.n_layer
    final = stages.block_stage(n_layer - 1, "resid_out")
    with torch.no_grad():
        m_clean = metric_of(model, clean_run[final][last].to(lm.device), direction).item()
        m_corrupt = metric_of(model, corrupt_run[final][last].to(lm.device), direction).item()
    scale = m_clean - m_corrupt
    gradients = metric_gradients(lm, corrupt_ids, direction)
    sweeps = []
    for kind in kinds:
        values, estimates, rows = [], [], []
        for row, layer, stage, by_head in sweep_rows(kind, n_layer):
            with torch.no_grad():
                metric = patched_metrics(lm, corrupt_run, clean_run, layer, stage, by_head, direction)
            values.append(((metric - m_corrupt) / scale).tolist())
            estimates.append((first_order(clean_run[stage], corrupt_run[stage], gradients[stage], by_head)
                              / scale).tolist())
            rows.append(row)
        columns = list(range(lm.config.n_head)) if kind == "heads" else list(range(len(clean_ids)))
        sweeps.append(Sweep(kind, rows, columns, values, estimates))
    return PatchingResult(
        model=clean_run.model, clean=clean, corrupt=corrupt, tokens=list(clean_run.token_texts),
        corrupt_tokens=list(corrupt_run.token_texts), answer=a, answer_text=lm.token_text(a), wrong=w,
        wrong_text=lm.token_text(w), metric_clean=m_clean, metric_corrupt=m_corrupt, sweeps=sweeps)


def sweep_rows(kind: str, n_layer: int):
    """(row label, the block the patch lands in (-1: the embedding), the stage patched, by head?) per row."""
    if kind == "resid_out":
        yield "embed.sum", -1, "embed.sum", False
        for layer in range(n_layer):
            name = stages.block_stage(layer, "resid_out")
            yield name, layer, name, False
    else:
        for layer in range(n_layer):
            name = stages.block_stage(layer, "attn.mix" if kind == "heads" else kind)
            yield name, layer, name, kind == "heads"


def patched_metrics(lm: LoadedModel, corrupt: Trace, clean: Trace, layer: int, stage: str, by_head: bool,
                    direction: torch.Tensor) -> torch.Tensor:
    """The metric of each variant of one row, run as one batch from where the patch lands."""
    model = lm.model
    n_layer = lm.config.n_layer
    batch = lm.config.n_head if by_head else corrupt.n_tokens
    dtype = model.wte.weight.dtype
    patch = BatchPatch(stage, clean[stage].to(lm.device), by_head)
    if stages.kind(stage) in ("embed.sum", "resid_out"):
        # The stream itself is patched: start from it, patched, and run the blocks after it.
        x = corrupt[stage].to(lm.device, dtype)[None].expand(batch, -1, -1)
        x = patch(stage, x, 0)
        first = layer + 1
    else:
        # A stage inside the block: run that block with the patch, from the stream entering it.
        x = corrupt[stages.stream_into(layer)].to(lm.device, dtype)[None].expand(batch, -1, -1).contiguous()
        x = model.h[layer](x, plan([patch], n_layer, dtype).block(layer))
        first = layer + 1
    for block in model.h[first:]:
        x = block(x, NO_BLOCK_TAPS)
    return metric_of(model, x[:, -1], direction).cpu()


class KeepForGradient(Tap):
    """Keeps the tensors of some stages as the graph uses them, to take the metric's gradient against."""

    def __init__(self, names):
        self.names = set(names)
        self.kept: dict[str, torch.Tensor] = {}

    def needs(self, run: Run):
        return self.names

    def __call__(self, name: str, tensor: torch.Tensor, offset: int) -> None:
        self.kept[name] = tensor


def metric_gradients(lm: LoadedModel, ids: list[int], direction: torch.Tensor) -> dict[str, torch.Tensor]:
    """∂metric/∂stage at the corrupted run, for every stage a sweep patches (batch axis dropped)."""
    n_layer = lm.config.n_layer
    names = ["embed.sum", *(stages.block_stage(i, k) for i in range(n_layer) for k in
                            ("resid_out", "attn.mix", "attn.out", "mlp.out", "resid_attn"))]
    keep = KeepForGradient(names)
    with torch.enable_grad():
        model = lm.model
        x = model(torch.tensor([ids], device=lm.device), taps=[keep])  # noqa: F841 - the graph is what counts
        final = keep.kept[stages.block_stage(n_layer - 1, "resid_out")]
        metric = metric_of(model, final[0, -1], direction)
        grads = torch.autograd.grad(metric, [keep.kept[n] for n in names], allow_unused=True)
    return {n: (torch.zeros_like(keep.kept[n]) if g is None else g).detach()[0].cpu() for n, g in zip(names, grads)}


def first_order(clean: torch.Tensor, corrupt: torch.Tensor, grad: torch.Tensor, by_head: bool) -> torch.Tensor:
    """(a_clean − a_corrupt) · ∂metric/∂a, per head (summed over positions and dims) or per position."""
    product = ((clean - corrupt).double() * grad.double())
    if by_head:  # (heads, T, d)
        return product.sum(dim=(1, 2))
    return product.sum(dim=-1)  # (T, d) -> per position
