"""Where attention goes: one head's routing table, its focus row, its pattern, one cell worked by hand.

    report = attention_report(trace, lm, layers=[3], heads=[2], focus=2, cell=(2, 1))

Every number comes from the recorded Q, K, V, scores, mask and weights (float64 arithmetic on
them where the report redoes a step), so the view, the JSON and a reader's own check agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .. import stages
from ..tracer import Trace

WORKED_DIMS = 8  # dims of q, k and v the worked example shows (the JSON has the same ones)
PATTERN_SHARE = 0.5  # a head "mostly" looks somewhere when that place gets half its attention on average
DIFFUSE_RATIO = 0.9  # rows at 90% of an even split's entropy or more count as spread out
TOP_KEYS = 3


@dataclass
class KeyShare:
    position: int
    weight: float


@dataclass
class Focus:
    """The followed query's row: its heaviest keys and how spread out it is."""

    position: int
    top: list[KeyShare]
    entropy_bits: float
    max_entropy_bits: float


@dataclass
class Pattern:
    """What a head does on average over the queries that have a choice (every row but the first)."""

    name: str  # previous, first, self, diffuse, mixed, or single (a one-token prompt)
    share: float
    shares: dict[str, float]  # previous, first, self: the average weight each place gets
    entropy_ratio: float | None  # mean row entropy / an even split's


@dataclass
class SoftmaxTerm:
    key: int
    score: float
    exp: float  # exp(score - row max)
    weight: float


@dataclass
class Pull:
    """What one key hands the query: its weight × its value vector (the dims shown)."""

    key: int
    weight: float
    weighted_v: list[float]


@dataclass
class WorkedCell:
    """One cell of the table by hand: q·k, the scale, the softmax along its row, weight × v."""

    layer: int
    head: int
    query: int
    key: int
    d_head: int
    dims: list[int]  # the dims shown
    q: list[float]
    k: list[float]
    products: list[float]
    dot_shown: float  # the products of the dims shown, summed
    dot: float  # over every dim
    scale: float
    scale_text: str
    score: float  # dot × scale
    recorded_score: float
    row_max: float
    row: list[SoftmaxTerm]  # every kept key of the query's row
    masked_keys: list[int]
    sum_exp: float
    exp: float
    weight: float
    recorded_weight: float
    v: list[float]
    weighted_v: list[float]
    mix: list[float]
    pulls: list[Pull]  # every key the query reads: Σ weight·v over them is mix


@dataclass
class HeadReport:
    layer: int
    head: int
    scale: float  # the model's own factor on q·k, whatever the checkpoint's rules
    scale_text: str  # how it came about: 1/√64, 1/(√64·3), ...
    weights: list[list[float]]  # (queries, keys); 0 where masked
    scores: list[list[float | None]]  # None where masked
    focus: Focus
    pattern: Pattern
    worked: WorkedCell | None = None


@dataclass
class LayerReport:
    layer: int
    heads: list[HeadReport]


@dataclass
class AttentionReport:
    model: dict
    prompt: str
    focus_position: int
    tokens: list[str]  # token texts by position
    token_ids: list[int]
    mask: list[list[bool]]
    all_heads: bool  # every head of each layer is here
    layers: list[LayerReport]
    token_bytes: list[bytes] = field(default_factory=list)
    overview: bool = False  # one line per head (no head was chosen), rather than each head's heatmap

    @property
    def single(self) -> HeadReport | None:
        """The one head, when exactly one was asked for: its grid is the whole view."""
        if self.overview or len(self.layers) != 1 or len(self.layers[0].heads) != 1:
            return None
        return self.layers[0].heads[0]


def attention_report(trace: Trace, lm, layers: list[int] | None, heads: list[int] | None, focus: int,
                     cell: tuple[int, int] | None = None) -> AttentionReport:
    """Heads of the chosen layers (None: all of them) seen from the focus position; `cell` worked by hand.

    heads=None is the overview (a line per head); a list of every head is every heatmap.
    """
    layers = layers if layers is not None else list(range(lm.config.n_layer))
    head_list = heads if heads is not None else list(range(lm.config.n_head))
    return AttentionReport(
        model=trace.model, prompt=trace.prompt, focus_position=focus, tokens=list(trace.token_texts),
        token_ids=list(trace.token_ids), mask=trace[stages.block_stage(layers[0], "attn.mask")].tolist(),
        all_heads=heads is None or len(head_list) == lm.config.n_head, overview=heads is None,
        layers=[LayerReport(layer, [head_report(trace, lm, layer, h, focus, cell) for h in head_list])
                for layer in layers], token_bytes=list(trace.token_bytes))


def head_report(trace: Trace, lm, layer: int, head: int, focus: int, cell: tuple[int, int] | None) -> HeadReport:
    weights = trace[stages.block_stage(layer, "attn.weights")][head].double()
    scores = trace[stages.block_stage(layer, "attn.scores")][head].double()
    kept = trace[stages.block_stage(layer, "attn.mask")]
    scale = float(lm.model.h[layer].attn.scale)
    text = scale_text(scale, lm.config.d_head, layer)
    return HeadReport(
        layer=layer, head=head, scale=scale, scale_text=text, weights=weights.tolist(),
        scores=[[v if keep else None for v, keep in zip(row, keep_row)]
                for row, keep_row in zip(scores.tolist(), kept.tolist())],
        focus=focus_of(weights, focus), pattern=pattern(weights),
        worked=None if cell is None else worked_cell(trace, layer, head, *cell, scale, text))


NO_SCALING = "no scaling"  # what scale_text says of a factor of 1 (the views say it in their language)


def scale_text(scale: float, d_head: int, layer: int) -> str:
    """How the factor came about, for the explanation; the number itself always comes from the model."""
    root = math.sqrt(d_head)
    if math.isclose(scale, 1 / root, rel_tol=1e-6):
        return f"1/√{d_head}"
    if math.isclose(scale, 1 / (root * (layer + 1)), rel_tol=1e-6):
        return f"1/(√{d_head}·{layer + 1})"
    if scale == 1.0:
        return NO_SCALING
    return f"{scale:.6g}"


def score_formula(scale: float, d_head: int, layer: int, qk: str = "Q·K") -> str:
    """The score as it is computed in this block, in notation every language writes alike: Q·K/√64, Q·K/(√64·3)."""
    text = scale_text(scale, d_head, layer)
    if text.startswith("1/"):
        return f"{qk}/{text[2:]}"
    return qk if scale == 1.0 else f"{qk}×{text}"


def entropy_bits(row) -> float:
    return sum(-w * math.log2(w) for w in row if w > 0)  # starts from +0, so one sure key gives 0.0, not -0.0


def focus_of(weights: torch.Tensor, focus: int) -> Focus:
    row = weights[focus, : focus + 1].tolist()
    order = sorted(range(len(row)), key=lambda j: -row[j])[:TOP_KEYS]
    return Focus(position=focus, top=[KeyShare(j, row[j]) for j in order], entropy_bits=entropy_bits(row),
                 max_entropy_bits=math.log2(focus + 1))


def pattern(weights: torch.Tensor) -> Pattern:
    """What the head does on average over the queries that have a choice (every row but the first)."""
    n = weights.shape[0]
    if n == 1:
        return Pattern("single", 1.0, {}, None)
    rows = range(1, n)
    shares = {
        "previous": sum(weights[i, i - 1].item() for i in rows) / (n - 1),
        "first": sum(weights[i, 0].item() for i in rows) / (n - 1),
        "self": sum(weights[i, i].item() for i in rows) / (n - 1),
    }
    ratio = sum(entropy_bits(weights[i, : i + 1].tolist()) / math.log2(i + 1) for i in rows) / (n - 1)
    best = max(shares, key=shares.get)
    if ratio >= DIFFUSE_RATIO:
        return Pattern("diffuse", ratio, shares, ratio)
    if shares[best] >= PATTERN_SHARE:
        return Pattern(best, shares[best], shares, ratio)
    return Pattern("mixed", shares[best], shares, ratio)


def worked_cell(trace: Trace, layer: int, head: int, query: int, key: int, scale: float, text: str) -> WorkedCell:
    """One cell by hand, from the recorded q, k, v, scores and weights (float64 arithmetic on them)."""
    def stage(kind: str) -> torch.Tensor:
        return trace[stages.block_stage(layer, kind)]

    q = stage("attn.q")[head, query].double()
    k = stage("attn.k")[head, key].double()
    v = stage("attn.v")[head, key].double()
    products = q * k
    dot = products.sum().item()
    shown = min(WORKED_DIMS, q.numel())
    scores_row = stage("attn.scores")[head, query].double().tolist()
    kept = stage("attn.mask")[query].tolist()
    visible_keys = [j for j, keep in enumerate(kept) if keep]
    row_max = max(scores_row[j] for j in visible_keys)
    exps = {j: math.exp(scores_row[j] - row_max) for j in visible_keys}
    sum_exp = sum(exps.values())
    recorded_weight = stage("attn.weights")[head, query, key].item()
    return WorkedCell(
        layer=layer, head=head, query=query, key=key, d_head=q.numel(), dims=list(range(shown)),
        q=q[:shown].tolist(), k=k[:shown].tolist(), products=products[:shown].tolist(),
        dot_shown=products[:shown].sum().item(), dot=dot, scale=scale, scale_text=text, score=dot * scale,
        recorded_score=scores_row[key], row_max=row_max,
        row=[SoftmaxTerm(j, scores_row[j], exps[j], exps[j] / sum_exp) for j in visible_keys],
        masked_keys=[j for j, keep in enumerate(kept) if not keep], sum_exp=sum_exp, exp=exps[key],
        weight=exps[key] / sum_exp, recorded_weight=recorded_weight, v=v[:shown].tolist(),
        weighted_v=[recorded_weight * x for x in v[:shown].tolist()],
        mix=stage("attn.mix")[head, query, :shown].tolist(),
        pulls=pulls(trace, layer, head, query, visible_keys, shown))


def pulls(trace: Trace, layer: int, head: int, query: int, keys: list[int], shown: int) -> list[Pull]:
    weights = trace[stages.block_stage(layer, "attn.weights")][head, query].double()
    values = trace[stages.block_stage(layer, "attn.v")][head].double()
    return [Pull(j, weights[j].item(), (weights[j] * values[j, :shown]).tolist()) for j in keys]
