"""Taps: how something outside the model reads, and changes, the stages of one forward pass.

    logits = model(ids, taps=[editor, tracer])

A tap declares, before the pass, which stages it is called for (`needs`) and which of those it
may replace (`writes`). It is then called as `tap(name, tensor, offset)` for each of them, in the
order the forward pass computes them; it returns None to leave the tensor as it is, or a tensor
of the same shape to use instead. `offset` is the absolute position of the tensor's first row
(0, except in a cached decoding step), so an edit at position 5 lands on position 5 whether the
pass computes every position or only the newest.

The contract is honest in both directions:
- an edit takes effect or raises: a replacement for a stage nothing reads (tokens, probs), one
  of another shape, or one a tap did not declare in `writes` is an error naming the stage;
- the model computes what the taps need and no more: a block computes its attention scores,
  mask and weights step by step only when a tap needs one of them, and mixes V from explicit
  weights only when a tap reads them or a replacement changed the scores or the mask (otherwise
  torch's fused kernel does the same arithmetic, to float rounding, faster).

Taps run in the order given, each seeing the tensor as the taps before it left it: an editor
placed before a recorder gets the recorder to keep what the model really used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch

from . import stages
from .errors import TraceGPTError

ROUTING = ("attn.scores", "attn.mask", "attn.weights")  # a block's routing table, computed only when needed


class TapError(TraceGPTError):
    """A tap broke the contract: a replacement that could not take effect, or one it did not declare."""


@dataclass(frozen=True)
class Run:
    """What a tap may know of a forward pass before it runs."""

    n_layer: int
    dtype: torch.dtype  # the model's compute dtype
    edited: frozenset[str]  # the stages some tap of this pass may replace
    # layer -> that block's attention output projection weight, stored [in, out] (model.GPT.head_projection):
    # what a tracer derives each head's attn.head_out with. None where the pass is not a whole model's.
    head_projection: Callable[[int], torch.Tensor] | None = None


class Tap:
    """Sees the stages it needs; returns None (no change) or a replacement. This one sees nothing."""

    def needs(self, run: Run) -> Collection[str]:
        """The full stage names this tap is called for."""
        return self.writes(run.n_layer)

    def writes(self, n_layer: int) -> Collection[str]:
        """The stages this tap may replace (a subset of what it needs)."""
        return ()

    def __call__(self, name: str, tensor: torch.Tensor, offset: int) -> torch.Tensor | None:
        return None


class BlockTaps:
    """The taps of one block, by the stage's name inside the block: what a block's modules call."""

    def __init__(self, offset: int, layer: int, by_kind: dict[str, tuple]):
        self.offset = offset  # the plan's, held here rather than the plan: no reference cycle keeps taps alive
        self.by_kind = by_kind
        self.names = {k: stages.block_stage(layer, k) for k in by_kind}
        self.routing = any(k in by_kind for k in ROUTING)  # someone reads or edits the routing table

    def __call__(self, kind: str, tensor: torch.Tensor) -> torch.Tensor:
        taps = self.by_kind.get(kind)
        if taps is None:
            return tensor
        return apply(self.names[kind], taps, tensor, self.offset)

    def wants(self, kind: str) -> bool:
        return kind in self.by_kind


NO_BLOCK_TAPS = BlockTaps(0, 0, {})


class TapPlan:
    """Who is called where, worked out once per forward pass from the taps' declarations."""

    def __init__(self, taps: Sequence[Tap], n_layer: int, dtype: torch.dtype, offset: int = 0,
                 head_projection: Callable[[int], torch.Tensor] | None = None):
        self.offset = offset
        writes = [frozenset(t.writes(n_layer)) for t in taps]
        for tap, written in zip(taps, writes):
            for name in written:
                why = stages.why_not_editable(name)
                if why is not None:
                    raise TapError(f"{name} cannot be replaced: {why} ({type(tap).__name__} declares it in writes)")
        run = Run(n_layer=n_layer, dtype=dtype, edited=frozenset().union(*writes), head_projection=head_projection)
        self.by_name: dict[str, tuple[tuple[Tap, bool], ...]] = {}
        for tap, written in zip(taps, writes):
            needed = set(tap.needs(run))
            if not written <= needed:
                raise TapError(f"{type(tap).__name__} writes {sorted(written - needed)[0]} without needing it")
            never = sorted(n for n in needed if stages.on_reading_only(n))
            if never:
                raise TapError(f"{type(tap).__name__} needs {never[0]}, which the forward pass never computes (a "
                               f"trace derives it from attn.mix when it is read); tap attn.mix instead")
            for name in needed:
                self.by_name[name] = self.by_name.get(name, ()) + ((tap, name in written),)
        grouped: dict[int, dict[str, tuple]] = {}
        for name, taps_here in self.by_name.items():
            stage = stages.parse(name)
            if stage.layer is not None:
                grouped.setdefault(stage.layer, {})[stage.kind] = taps_here
        self.blocks = [BlockTaps(offset, i, grouped[i]) if i in grouped else NO_BLOCK_TAPS for i in range(n_layer)]

    def block(self, layer: int) -> BlockTaps:
        return self.blocks[layer] if self.blocks else NO_BLOCK_TAPS

    def wants(self, name: str) -> bool:
        return name in self.by_name

    def __call__(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        taps = self.by_name.get(name)
        return tensor if taps is None else apply(name, taps, tensor, self.offset)


def apply(name: str, taps: tuple, tensor: torch.Tensor, offset: int) -> torch.Tensor:
    """Show `tensor` to each tap in turn; a replacement that cannot take effect is an error naming the stage."""
    for tap, may_write in taps:
        out = tap(name, tensor, offset)
        if out is None or out is tensor:
            continue
        if not may_write:
            why = stages.why_not_editable(name)
            raise TapError(f"{type(tap).__name__} returned a replacement for {name}, which "
                           + (f"cannot be replaced: {why}" if why else "it did not declare in writes()"))
        if out.shape != tensor.shape:
            raise TapError(f"{type(tap).__name__} replaced {name} of shape {list(tensor.shape)} by one of shape "
                           f"{list(out.shape)}")
        tensor = out.to(tensor.device, tensor.dtype)
    return tensor


def site_index(site: stages.Site, tensor: torch.Tensor, offset: int) -> tuple | None:
    """The index into this tensor of what the site selects, or None where its rows do not hold it.

    Positions are absolute: in a cached decoding step the rows are positions offset.., so a site
    at position 5 is row 5 - offset there, and absent from a step that computes position 9 only.
    Keys are absolute already (a step's scores span every cached key). Indices must be resolved
    (stages.check_site) before a decoding run, where "the last position" moves.
    """
    index = []
    for axis, size in zip(stages.axes(site.stage), tensor.shape):
        chosen = site.select.get(axis)
        if chosen is None:
            index.append(slice(None))
            continue
        if axis in stages.POSITION_AXES and offset:
            chosen -= offset
            if not 0 <= chosen < size:
                return None
        elif not -size <= chosen < size:
            return None
        index.append(chosen)
    return tuple(index)


class Edit(Tap):
    """Replaces what a site selects by change(selected values): an edit as data, a site and an operation."""

    def __init__(self, site: stages.Site, change):
        self.site = site
        self.change = change

    def writes(self, n_layer: int) -> Collection[str]:
        return (self.site.stage,)

    def __call__(self, name: str, tensor: torch.Tensor, offset: int) -> torch.Tensor | None:
        index = site_index(self.site, tensor, offset)
        if index is None:
            return None
        edited = tensor.clone()
        edited[index] = self.replacement(tensor[index], index)
        return edited

    def replacement(self, selected: torch.Tensor, index: tuple) -> torch.Tensor:
        return self.change(selected)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.site.text})"


NO_TAPS = TapPlan((), 0, torch.float32)  # the untraced forward: every stage passes straight through


def plan(taps: Sequence[Tap] | Tap, n_layer: int, dtype: torch.dtype, offset: int = 0,
         head_projection: Callable[[int], torch.Tensor] | None = None) -> TapPlan:
    """The plan for these taps (one tap, or several in the order they run)."""
    if isinstance(taps, Tap):
        taps = (taps,)
    return TapPlan(taps, n_layer, dtype, offset, head_projection) if taps else NO_TAPS
