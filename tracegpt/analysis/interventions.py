"""Interventions: change one part of the forward pass and see what the next token does.

    result = intervene(lm, "I love", [Ablate(3, head=2), Cut(2, 1, query=1, key=0)])
    result.rows      # each candidate token's probability, logit and rank, before -> after

An intervention is data (what to change, where); `edit_taps` turns it into taps (tracegpt.taps.Edit)
that run before the recorder, so the edited trace holds what the model really used. The plain
and the edited pass take the same numeric path: a difference between them is the edit's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .. import stages
from ..errors import ParameterError
from ..loader import LoadedModel
from ..model import next_token_probs
from ..taps import Edit, Tap
from ..tracer import Trace, encode_prompt, trace_ids
from .forward import Guess, Rest, rest_of

TOP_K = 10


# --- the interventions, as data ----------------------------------------------------------------

@dataclass(frozen=True)
class Ablate:
    """Remove a head (its attn.mix), every head of a layer, or a layer's MLP update (mlp.out).

    With `mean`, the removed output is replaced by its mean over this prompt's positions instead
    of zeros. Removing every head of a layer leaves the attention output's bias, which belongs
    to no head.
    """

    layer: int
    head: int | None = None
    mlp: bool = False
    mean: bool = False

    @property
    def site(self) -> stages.Site:
        if self.mlp:
            return stages.Site(stages.block_stage(self.layer, "mlp.out"))
        select = {} if self.head is None else {"head": self.head}
        return stages.Site(stages.block_stage(self.layer, "attn.mix"), select)

    @property
    def text(self) -> str:
        part = ".mlp" if self.mlp else "" if self.head is None else f".{self.head}"
        return f"{self.layer}{part}" + ("=mean" if self.mean else "")


@dataclass(frozen=True)
class Cut:
    """Delete one edge of a head's routing table (every head's, with head None): the score of
    query → key becomes −∞ before the softmax, so the row renormalises over the keys it keeps."""

    layer: int
    head: int | None
    query: int
    key: int

    @property
    def site(self) -> stages.Site:
        select = {"query": self.query, "key": self.key}
        return stages.Site(stages.block_stage(self.layer, "attn.scores"),
                           select if self.head is None else {"head": self.head, **select})

    @property
    def text(self) -> str:
        head = "" if self.head is None else f".{self.head}"
        return f"{self.layer}{head}:{self.query}>{self.key}"


@dataclass(frozen=True)
class Patch:
    """Replace what a site selects by its value in a run on another prompt."""

    site: stages.Site
    source: str

    @property
    def text(self) -> str:
        return self.site.text


@dataclass(frozen=True)
class Steer:
    """Add alpha × (residual of `toward` − residual of `away`, at their last positions, after block
    `layer`) to every position's residual stream after that block: activation addition."""

    layer: int
    toward: str
    away: str
    alpha: float

    @property
    def site(self) -> stages.Site:
        return stages.Site(stages.block_stage(self.layer, "resid_out"))

    @property
    def text(self) -> str:
        return f"{self.layer}"


Intervention = Ablate | Cut | Patch | Steer


# --- parsing what users type --------------------------------------------------------------------

_ABLATE = re.compile(r"(?P<layer>\d+)(?:\.(?P<part>\d+|mlp))?(?:=(?P<how>\w+))?")


def parse_ablate(text: str) -> Ablate:
    """'2.1' (a head), '2' (every head of a layer), '2.mlp' (the MLP), each optionally '=mean'."""
    m = _ABLATE.fullmatch(text.strip())
    if not m or m["how"] not in (None, "zero", "mean"):
        raise ParameterError("ablate", f"{text!r} is not L.H, L or L.mlp (optionally =mean), e.g. 2.1 or 3.mlp=mean")
    part = m["part"]
    return Ablate(int(m["layer"]), head=int(part) if part not in (None, "mlp") else None, mlp=part == "mlp",
                  mean=m["how"] == "mean")


def parse_cut(text: str) -> Cut:
    """'2.1:4>0' (head 1 of layer 2, query 4's edge to key 0) or '2:4>0' (that edge in every head)."""
    try:
        site = stages.parse_site(text)
    except ParameterError:
        site = None
    if site is None or stages.kind(site.stage) != "attn.scores" or not {"query", "key"} <= set(site.select):
        raise ParameterError("cut", f"{text!r} is not L.H:Q>K or L:Q>K, e.g. 2.1:4>0 (layer 2, head 1, query 4's "
                                    f"edge to key 0)")
    return Cut(site.layer, site.select.get("head"), site.select["query"], site.select["key"])


# --- checking them against the model and the prompt --------------------------------------------

def check(interventions: Sequence[Intervention], lm: LoadedModel, n_tokens: int,
          source_lengths: dict[str, int] | None = None) -> list[Intervention]:
    """The interventions with negative positions resolved, or a ParameterError naming the valid range."""
    c = lm.config
    out = []
    for iv in interventions:
        kind = type(iv).__name__.lower()
        if isinstance(iv, (Ablate, Cut, Steer)):
            if not 0 <= iv.layer < c.n_layer:
                raise ParameterError(kind, f"{iv.text}: layer {iv.layer} does not exist; {lm.name} has layers "
                                           f"0..{c.n_layer - 1}")
            head = getattr(iv, "head", None)
            if head is not None and not 0 <= head < c.n_head:
                raise ParameterError(kind, f"{iv.text}: head {head} does not exist; {lm.name} has heads "
                                           f"0..{c.n_head - 1}")
        if isinstance(iv, Cut):
            for axis, index in (("query", iv.query), ("key", iv.key)):
                if not -n_tokens <= index < n_tokens:
                    raise ParameterError("cut", f"{iv.text}: {axis} {index} is out of range; the prompt has "
                                                f"positions 0..{n_tokens - 1} (or -{n_tokens}..-1)")
            iv = Cut(iv.layer, iv.head, iv.query % n_tokens, iv.key % n_tokens)
        elif isinstance(iv, Steer) and not math.isfinite(iv.alpha):
            raise ParameterError("alpha", f"{iv.alpha} is not a finite number")
        elif isinstance(iv, Patch):
            iv = Patch(check_patch_site(iv, lm, n_tokens, (source_lengths or {}).get(iv.source)), iv.source)
        out.append(iv)
    check_cuts_leave_a_key(out)
    return out


def check_patch_site(patch: Patch, lm: LoadedModel, n_tokens: int, n_source: int | None) -> stages.Site:
    site = patch.site
    why = stages.why_not_editable(site.stage)
    if why is not None:
        raise ParameterError("patch", f"{site.stage} cannot be patched: {why}")
    lengths = [n for n in (n_tokens, n_source) if n is not None]
    if len(set(lengths)) > 1:
        open_axes = [a for a in stages.axes(site.stage) if a in ("position", "query", "key") and a not in site.select]
        if open_axes:
            raise ParameterError("patch", f"{site.text}: the prompts are {n_tokens} and {n_source} tokens long, so "
                                          f"{open_axes[0]} must be pinned, e.g. {site.stage}[{open_axes[0]}=3]")
    return stages.check_site(site, lm.config.n_layer, {"head": lm.config.n_head, "position": min(lengths)})


def check_cuts_leave_a_key(interventions: Sequence[Intervention]) -> None:
    """A softmax needs at least one key: no row may lose every edge the mask left it."""
    cut: dict[tuple, set[int]] = {}
    for iv in interventions:
        if isinstance(iv, Cut) and iv.key <= iv.query:
            cut.setdefault((iv.layer, iv.head, iv.query), set()).add(iv.key)
    for (layer, head, query), keys in cut.items():
        also = cut.get((layer, None, query), set()) if head is not None else set()
        if keys | also >= set(range(query + 1)):
            where = f"{layer}.{head}" if head is not None else f"layer {layer}"
            raise ParameterError("cut", f"{where}: cutting every edge of query {query} (keys 0..{query}) leaves the "
                                        f"softmax nothing to share; keep at least one key")


def is_masked(cut: Cut) -> bool:
    """An edge to the future: the causal mask deleted it already, so cutting it changes nothing."""
    return cut.key > cut.query


# --- turning them into taps ---------------------------------------------------------------------

class Replace(Edit):
    """Replaces what a site selects by the same selection of a tensor recorded on another prompt."""

    def __init__(self, site: stages.Site, source: torch.Tensor):
        super().__init__(site, change=None)
        self.source = source  # with the batch axis, where the stage has one

    def replacement(self, selected: torch.Tensor, index: tuple) -> torch.Tensor:
        return self.source.to(selected.device, selected.dtype)[index]


def _batched(stage: str, t: torch.Tensor) -> torch.Tensor:
    return t[None] if stages.axes(stage)[0] == "batch" else t


def edit_taps(interventions: Sequence[Intervention], lm: LoadedModel, ids: list[int],
          directions: dict[Steer, torch.Tensor] | None = None) -> list[Tap]:
    """The taps that carry out these (checked) interventions on a run over `ids`."""
    directions = directions if directions is not None else steering_directions(interventions, lm)
    plain: Trace | None = None
    taps: list[Tap] = []
    for iv in interventions:
        if isinstance(iv, Cut):
            if not is_masked(iv):
                taps.append(Edit(iv.site, lambda s: torch.full_like(s, float("-inf"))))
        elif isinstance(iv, Ablate):
            if not iv.mean:
                taps.append(Edit(iv.site, torch.zeros_like))
                continue
            plain = plain or trace_ids(lm, ids, stages=["attn.mix", "mlp.out"])
            recorded = plain[iv.site.stage]  # (heads, T, d_head) or (T, d_model)
            axis = stages.position_axis(iv.site.stage)
            mean = recorded.mean(dim=axis, keepdim=True)
            if iv.head is not None:
                mean = mean[iv.head]
            taps.append(Edit(iv.site, lambda x, m=mean: m.to(x.dtype).expand_as(x)))
        elif isinstance(iv, Patch):
            source = trace_ids(lm, encode_prompt(lm, iv.source), iv.source, stages=[iv.site.stage])
            taps.append(Replace(iv.site, _batched(iv.site.stage, source[iv.site.stage])))
        elif isinstance(iv, Steer):
            taps.append(Edit(iv.site, lambda x, d=directions[iv], a=iv.alpha: x + a * d.to(x.dtype)))
    return taps


def steering_directions(interventions: Sequence[Intervention], lm: LoadedModel) -> dict[Steer, torch.Tensor]:
    return {iv: steering_direction(lm, iv) for iv in interventions if isinstance(iv, Steer)}


def steering_direction(lm: LoadedModel, steer: Steer) -> torch.Tensor:
    """The residual stream after the block at the last position of `toward`, minus that of `away`."""
    stage = steer.site.stage
    ends = [trace_ids(lm, encode_prompt(lm, text), text, layers=[steer.layer], stages=["resid_out"])[stage][-1]
            for text in (steer.toward, steer.away)]
    return ends[0] - ends[1]


# --- the result ----------------------------------------------------------------------------------

@dataclass
class Candidate:
    """One token's place in both distributions."""

    id: int
    text: str
    logit_before: float
    logit_after: float
    prob_before: float
    prob_after: float
    rank_before: int  # 1 = the most likely
    rank_after: int


@dataclass
class RowChange:
    """A cut head's attention row for the cut query, before and after."""

    layer: int
    head: int
    query: int
    before: list[float]
    after: list[float]


@dataclass
class Done:
    """One intervention as carried out: what it was, and whether it could change anything."""

    kind: str  # ablate, cut, patch, steer
    text: str  # as typed, positions resolved
    site: str
    layer: int | None
    no_op: bool = False  # a cut of an edge the mask had deleted already
    detail: dict = field(default_factory=dict)  # the numbers its sentence needs


@dataclass
class InterventionResult:
    model: dict
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    position: int  # the position whose next token is compared (the last)
    done: list[Done]
    rows: list[Candidate]  # the union of both top-k lists, in before-rank order
    kl_bits: float  # KL(before ‖ after), in bits
    top_changed: bool
    cut_rows: list[RowChange]
    rest_before: Rest  # the tokens the rows leave out, in each run
    rest_after: Rest
    before: Trace = field(repr=False)
    after: Trace = field(repr=False)

    @property
    def token_bytes(self) -> list[bytes]:
        return self.before.token_bytes


def intervene(lm: LoadedModel, prompt: str, interventions: Sequence[Intervention], top_k: int = TOP_K,
              stages_kept: Sequence[str] | None = None) -> InterventionResult:
    """The plain pass and the edited pass over `prompt`, compared at its last position."""
    ids = encode_prompt(lm, prompt)
    sources = {iv.source: len(encode_prompt(lm, iv.source)) for iv in interventions if isinstance(iv, Patch)}
    checked = check(interventions, lm, len(ids), sources)
    directions = steering_directions(checked, lm)
    before = trace_ids(lm, ids, prompt, stages=stages_kept)
    after = trace_ids(lm, ids, prompt, stages=stages_kept, taps=edit_taps(checked, lm, ids, directions))
    last = len(ids) - 1
    rows, kl, changed = compare(before["logits"][last], after["logits"][last], top_k, lm.token_text)
    return InterventionResult(
        model=before.model, prompt=prompt, tokens=list(before.token_texts), token_ids=ids, position=last,
        done=[describe(iv, lm, directions) for iv in checked], rows=rows, kl_bits=kl, top_changed=changed,
        cut_rows=cut_rows(checked, before, after, lm.config.n_head),
        rest_before=rest_of(as_guesses(rows, after=False), lm.config.vocab_size),
        rest_after=rest_of(as_guesses(rows, after=True), lm.config.vocab_size), before=before, after=after)


def compare(before: torch.Tensor, after: torch.Tensor, top_k: int, token_text) -> tuple[list[Candidate], float, bool]:
    """Both distributions over the union of their top-k tokens, KL(before ‖ after) in bits, whether the top moved."""
    p, q = next_token_probs(before).double(), next_token_probs(after).double()
    k = min(top_k, p.numel())
    ids = list(dict.fromkeys(torch.topk(p, k).indices.tolist() + torch.topk(q, k).indices.tolist()))
    ids.sort(key=lambda i: -p[i].item())
    rank_p, rank_q = ranks(p), ranks(q)
    rows = [Candidate(i, token_text(i), before[i].item(), after[i].item(), p[i].item(), q[i].item(),
                      rank_p[i], rank_q[i]) for i in ids]
    kept = p > 0
    kl = (p[kept] * (p[kept].log() - q[kept].log())).sum().item() / math.log(2)
    return rows, max(kl, 0.0), int(p.argmax()) != int(q.argmax())


def ranks(p: torch.Tensor) -> dict[int, int]:
    order = torch.argsort(p, descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, p.numel() + 1)
    return dict(enumerate(rank.tolist()))


def cut_rows(interventions, before: Trace, after: Trace, n_head: int) -> list[RowChange]:
    rows = []
    for iv in interventions:
        if not isinstance(iv, Cut) or is_masked(iv):
            continue
        name = stages.block_stage(iv.layer, "attn.weights")
        if name not in before or name not in after:
            continue
        for head in ([iv.head] if iv.head is not None else range(n_head)):
            rows.append(RowChange(iv.layer, head, iv.query, before[name][head, iv.query, : iv.query + 1].tolist(),
                                  after[name][head, iv.query, : iv.query + 1].tolist()))
    return rows


def describe(iv: Intervention, lm: LoadedModel, directions: dict[Steer, torch.Tensor]) -> Done:
    kind = type(iv).__name__.lower()
    if isinstance(iv, Patch):
        return Done(kind, iv.text, iv.site.stage, iv.site.layer, detail={"source": iv.source})
    detail = {"n_layer": lm.config.n_layer, "n_head": lm.config.n_head}
    if isinstance(iv, Steer):
        detail.update(toward=iv.toward, away=iv.away, alpha=iv.alpha, norm=directions[iv].norm().item())
    if isinstance(iv, Ablate):
        detail.update(head=iv.head, mlp=iv.mlp, mean=iv.mean)
    if isinstance(iv, Cut):
        detail.update(head=iv.head, query=iv.query, key=iv.key)
    return Done(kind, iv.text, iv.site.stage, iv.layer, no_op=isinstance(iv, Cut) and is_masked(iv), detail=detail)


def as_guesses(rows: list[Candidate], after: bool) -> list[Guess]:
    """One side of the comparison, as next-token guesses (the same ids on both sides)."""
    return [Guess(r.id, r.text, r.logit_after if after else r.logit_before, r.prob_after if after else r.prob_before)
            for r in rows]
