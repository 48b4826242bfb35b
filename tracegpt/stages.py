"""Stage names: the one module that builds, splits and describes them.

A stage is one tensor the forward pass computes, under the name the docs, the JSON, the .npz,
the views and the Python API all use:

    tokens  embed.token  embed.position  embed.sum
    blocks.{layer}.ln1 ... blocks.{layer}.resid_out      (BLOCK, for every block)
    ln_f  logits  probs

Some are derived: a trace computes them when they are read, from stages it kept (DERIVED_FROM).
One, attn.head_out, the forward pass never computes at all (ON_READING).

A *site* is a stage with an optional selection along its axes, as users type it:

    blocks.2.attn.scores[head=1,query=-1,key=0]
    2.1          layer 2, head 1: that head's slice of blocks.2.attn.mix
    2.1:4>0      the edge of that head's routing table from query 4 to key 0 (blocks.2.attn.scores)
    2:4>0        the same edge in every head of layer 2
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from .errors import ParameterError

EMBEDDING = ("tokens", "embed.token", "embed.position", "embed.sum")
BLOCK = (
    "ln1",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.scores",
    "attn.mask",
    "attn.weights",
    "attn.mix",
    "attn.head_out",
    "attn.out",
    "resid_attn",
    "ln2",
    "mlp.pre",
    "mlp.act",
    "mlp.out",
    "resid_out",
)
FINAL = ("ln_f", "logits", "probs")

# The axes of each stage's tensor as the model computes it. Two have no batch axis, being the
# same for every sequence of a batch: the position embeddings and the causal mask.
_ROW = ("batch", "position", "feature")
_HEADS = ("batch", "head", "position", "feature")
_TABLE = ("batch", "head", "query", "key")
AXES = {
    "tokens": ("batch", "position"),
    "embed.token": _ROW,
    "embed.position": ("position", "feature"),
    "embed.sum": _ROW,
    "ln1": _ROW,
    "attn.q": _HEADS,
    "attn.k": _HEADS,
    "attn.v": _HEADS,
    "attn.scores": _TABLE,
    "attn.mask": ("query", "key"),
    "attn.weights": _TABLE,
    "attn.mix": _HEADS,
    "attn.head_out": _HEADS,  # feature: d_model (each head's write to the residual stream)
    "attn.out": _ROW,
    "resid_attn": _ROW,
    "ln2": _ROW,
    "mlp.pre": ("batch", "position", "neuron"),
    "mlp.act": ("batch", "position", "neuron"),
    "mlp.out": _ROW,
    "resid_out": _ROW,
    "ln_f": _ROW,
    "logits": ("batch", "position", "vocab"),
    "probs": ("batch", "position", "vocab"),
}
# Stages a trace need not hold: each is recomputed, by the model's own function, from these.
# attn.head_out also takes its block's output projection (c_proj) weight.
DERIVED_FROM = {"attn.weights": ("attn.scores", "attn.mask"), "probs": ("logits",), "attn.head_out": ("attn.mix",)}
# Stages no forward pass computes, only a trace when they are read: each head's attn.mix through
# its rows of c_proj (TransformerLens's hook_result). Their sum over heads plus c_proj's bias is
# attn.out, which the pass computes in one matmul. A tap cannot ask for them (it would never be
# called); a tracer always derives them.
ON_READING = frozenset({"attn.head_out"})
# Stages nothing downstream reads, so a replacement could not take effect: a tap that returns
# one gets an error instead of silence.
NOT_EDITABLE = {
    "tokens": "the model reads the ids it is given; change the prompt instead",
    "probs": "nothing in the forward pass reads them (the logits are what comes out); edit logits instead",
    "attn.head_out": "the forward pass never computes it (attn.out comes from attn.mix in one matmul); edit attn.mix "
                     "(a head, L.H) or attn.out instead",
}
# The axes along which a stage's rows are token positions (the rows a tap sees in a cached
# decoding step are the new positions only; their absolute positions start at its offset).
POSITION_AXES = ("position", "query")


class StageError(ParameterError):
    """An unknown stage name or a malformed site."""


@dataclass(frozen=True)
class Stage:
    """A stage name, split: its kind (the name inside a block, or the whole name outside) and its block."""

    kind: str
    layer: int | None = None

    @property
    def name(self) -> str:
        return name(self.kind, self.layer)

    @property
    def axes(self) -> tuple[str, ...]:
        return AXES[self.kind]


def name(kind: str, layer: int | None = None) -> str:
    """'attn.weights', 3 -> 'blocks.3.attn.weights'; 'logits' -> 'logits'."""
    if layer is None:
        return kind
    return f"blocks.{layer}.{kind}"


def block_stage(layer: int, kind: str) -> str:
    return name(kind, layer)


def every_block(kind: str) -> str:
    """The pattern of a stage in every block, as the docs write it: blocks.*.attn.weights."""
    return f"blocks.*.{kind}"


_BLOCK_NAME = re.compile(r"blocks\.(\d+)\.(.+)")


def parse(stage_name: str) -> Stage:
    """'blocks.3.attn.weights' -> Stage('attn.weights', 3); an unknown name is a StageError."""
    return _parse(stage_name)


@cache
def _parse(stage_name: str) -> Stage:
    m = _BLOCK_NAME.fullmatch(stage_name)
    if m and m.group(2) in BLOCK:
        return Stage(m.group(2), int(m.group(1)))
    if stage_name in EMBEDDING or stage_name in FINAL:
        return Stage(stage_name)
    raise StageError("stage", f"{stage_name!r} is not a stage name; stages are {', '.join(EMBEDDING)}, "
                              f"blocks.L.{{{','.join(BLOCK)}}}, {', '.join(FINAL)}")


def kind(stage_name: str) -> str:
    return parse(stage_name).kind


def layer_of(stage_name: str) -> int | None:
    return parse(stage_name).layer


def is_stage(stage_name: str) -> bool:
    try:
        parse(stage_name)
        return True
    except StageError:
        return False


def names(n_layer: int) -> list[str]:
    """Every stage of a model with n_layer blocks, in the order the forward pass computes them."""
    return [*EMBEDDING, *(name(k, i) for i in range(n_layer) for k in BLOCK), *FINAL]


def block_names(layer: int) -> tuple[str, ...]:
    return tuple(name(k, layer) for k in BLOCK)


def residual_stream(n_layer: int) -> list[str]:
    """The residual stream as it enters the final LayerNorm at each depth: the embedding, then each block's output."""
    return ["embed.sum"] + [name("resid_out", i) for i in range(n_layer)]


def stream_into(layer: int) -> str:
    """The residual stream that enters a block: the embedding's, or the previous block's output."""
    return "embed.sum" if layer == 0 else name("resid_out", layer - 1)


def axes(stage_name: str, batched: bool = True) -> tuple[str, ...]:
    """The axes of a stage's tensor; batched=False for a trace's copy, whose batch axis is dropped."""
    found = parse(stage_name).axes
    return found if batched or found[0] != "batch" else found[1:]


def position_axis(stage_name: str, batched: bool = False) -> int:
    """Which axis runs over token positions (the queries, for an attention table)."""
    found = axes(stage_name, batched)
    return next(i for i, a in enumerate(found) if a in POSITION_AXES)


def is_derived(stage_name: str) -> bool:
    return kind(stage_name) in DERIVED_FROM


def derived_from(stage_name: str) -> tuple[str, ...]:
    """The stages a derived stage is recomputed from, in the same block."""
    s = parse(stage_name)
    return tuple(name(k, s.layer) for k in DERIVED_FROM[s.kind])


def on_reading_only(stage_name: str) -> bool:
    """A stage only a trace computes, when it is read (ON_READING); no tap is ever called with it."""
    return kind(stage_name) in ON_READING


def why_not_editable(stage_name: str) -> str | None:
    """None for a stage a tap may replace; else why a replacement could not take effect."""
    return NOT_EDITABLE.get(kind(stage_name))


# --- sites: a stage and a selection ------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    """A stage and, along some of its axes, one index each (negative counts from the end)."""

    stage: str
    select: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        valid = axes(self.stage)
        for axis in self.select:
            if axis == "batch" or axis not in valid:
                choices = ", ".join(a for a in valid if a != "batch")
                raise StageError("site", f"{self.text!r}: {self.stage} has no axis {axis!r}; its axes are {choices}")

    @property
    def layer(self) -> int | None:
        return layer_of(self.stage)

    @property
    def kind(self) -> str:
        return kind(self.stage)

    @property
    def text(self) -> str:
        if not self.select:
            return self.stage
        return self.stage + "[" + ",".join(f"{k}={v}" for k, v in self.select.items()) + "]"

    def __hash__(self):
        return hash(self.text)


_SELECTION = re.compile(r"(?P<stage>[\w.]+)(?:\[(?P<select>[^\]]*)\])?")
_HEAD = re.compile(r"(?P<layer>\d+)\.(?P<head>\d+)")
_EDGE = re.compile(r"(?P<layer>\d+)(?:\.(?P<head>\d+))?:(?P<query>-?\d+)>(?P<key>-?\d+)")


def parse_site(text: str) -> Site:
    """A site as typed: a stage with [axis=index,...], or the short forms L.H, L.H:Q>K and L:Q>K."""
    text = text.strip()
    if m := _EDGE.fullmatch(text):
        select = {"query": int(m["query"]), "key": int(m["key"])}
        if m["head"] is not None:
            select = {"head": int(m["head"]), **select}
        return Site(name("attn.scores", int(m["layer"])), select)
    if m := _HEAD.fullmatch(text):
        return Site(name("attn.mix", int(m["layer"])), {"head": int(m["head"])})
    m = _SELECTION.fullmatch(text)
    if not m:
        raise StageError("site", f"{text!r} is not a site; write a stage name with an optional selection, "
                                 f"e.g. blocks.1.resid_out[position=3], or L.H for a head, L.H:Q>K for an edge")
    select = {}
    for part in filter(None, (p.strip() for p in (m["select"] or "").split(","))):
        axis, eq, index = part.partition("=")
        try:
            select[axis.strip()] = int(index)
        except ValueError:
            raise StageError("site", f"{text!r}: {part!r} is not axis=index (an integer, e.g. head=1)") from None
        if not eq:
            raise StageError("site", f"{text!r}: {part!r} is not axis=index (e.g. head=1)")
    return Site(parse(m["stage"]).name, select)


def check_site(site: Site, n_layer: int, sizes: dict[str, int]) -> Site:
    """The site with negative indices resolved, or a ParameterError naming the valid range.

    `sizes` gives the length of each axis that can be checked before the run (head: n_head,
    position/query/key: the prompt's tokens, ...).
    """
    if site.layer is not None and not 0 <= site.layer < n_layer:
        raise StageError("site", f"{site.text!r}: layer {site.layer} does not exist; layers are 0..{n_layer - 1}")
    resolved = {}
    for axis, index in site.select.items():
        size = sizes.get("position" if axis in ("query", "key") else axis)
        if size is None:
            resolved[axis] = index
            continue
        if not -size <= index < size:
            raise StageError("site", f"{site.text!r}: {axis} {index} is out of range; {axis}s are 0..{size - 1}"
                                     f" (or -{size}..-1)")
        resolved[axis] = index % size
    return Site(site.stage, resolved)
