"""What each head does: scores for five recognisable jobs, measured on a probe, with an ablation beside them.

    m = head_map(lm)                              # a seeded probe: random tokens, repeated once
    m = head_map(lm, prompt="To be, or not to be, that is the question: to be")
    [(h.layer, h.head, h.role, h.induction, h.loss_ablated) for h in m.heads]

The probe is `n_probes` sequences of a fixed start token (<|endoftext|> where the vocabulary has
it), `half` random tokens (distinct, never a special token), then the same tokens again: the
first half cannot be predicted, the repeated half can, but only by copying what followed the
earlier occurrence of the current token. Each head's attention weights, averaged over the
queries that have a choice (every position but the first) of every sequence, give:

    previous    the weight on the token just before (i - 1)
    first       the weight on the first token (0), where heads rest when they have nothing to do
    self        the weight on the query's own position (i)
    duplicate   the weight on earlier occurrences of the query's token
    induction   the weight on the tokens right after those earlier occurrences
    entropy     how spread out a row is, in bits (0: one key takes all)

duplicate and induction average only the queries whose token occurred before (the repeated
half, on the probe). A head's role is its strongest score among induction, duplicate, previous
and self when that reaches ROLE_SHARE; else first token if that does; else none.

The causal check: the mean next-token loss on the repeated predictions (where the current token
occurred before, so copying predicts the next one), intact and with one head's output removed
(its attn.mix zeroed: analysis.interventions' Ablate, carried out by its edit taps). An ablated
run starts from the recorded stream entering the head's block, runs the blocks from there and
reads out the predictions scored, one set at a time; the intact loss is read out of the recorded
final stream the same way, so an ablation that changes nothing gives it bit for bit. A model with more than ABLATE_ALL
heads gets its top heads ablated, and only the repeated predictions scored (the unembedding of
every position is most of an ablation's cost there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import stages
from ..errors import ParameterError
from ..loader import LoadedModel
from ..taps import NO_BLOCK_TAPS, Run, Tap, plan
from ..tracer import encode_prompt
from .interventions import Ablate, edit_taps

N_PROBES = 8
N_PROBES_BIG = 4  # the default for a model with more than ABLATE_ALL heads: its ablations cost most
HALF = 50  # random tokens per probe, then the same again: 2 × 50 + 1 positions
SEED = 0
ROLE_SHARE = 0.3  # a head has a role when it gives it 30% of its attention on average
ROLES = ("induction", "duplicate", "previous", "self", "first")  # the order a tie is broken in
ABLATE_ALL = 32  # a model with at most this many heads gets every head ablated
CHECK_TOP = 3  # otherwise: the top heads by induction and by previous-token score, and every head with that role
MAX_CHECKS = 8  # ... up to this many ablations in all (on GPT-2 small each costs ~3 s on 2 cores)


@dataclass
class HeadScore:
    layer: int
    head: int
    previous: float
    first: float
    itself: float  # the self score
    duplicate: float | None  # None where no query's token occurred before
    induction: float | None
    entropy_bits: float
    strongest: str  # the job of ROLES it gives the most attention to, whether or not that makes a role
    role: str  # one of ROLES, or "none"
    loss_ablated: float | None = None  # the repeated predictions' loss with this head removed (None: not checked)
    loss_ablated_other: float | None = None  # the other predictions' loss in the same ablated run

    def score(self, role: str) -> float | None:
        return self.itself if role == "self" else getattr(self, role)

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.head}"


@dataclass
class HeadMap:
    model: dict
    source: str  # "probe" or "prompt"
    prompt: str | None
    tokens: list[str]  # the prompt's tokens (empty for the probe)
    seed: int | None
    n_probes: int
    half: int | None  # random tokens per probe half
    start: int | None  # the probe's start token
    start_text: str | None
    n_tokens: int  # positions per sequence
    loss_other: float | None  # mean loss of the other predictions (the probe's first half)
    loss_repeated: float | None  # mean loss where the current token occurred before (intact)
    n_other: int
    n_repeated: int
    heads: list[HeadScore]
    checked: str  # "all", "some" (the top heads of two roles) or "none" (nothing repeats)
    chance_loss: float  # ln(vocabulary): the loss of an even guess

    def head(self, layer: int, head: int) -> HeadScore:
        return self.heads[layer * self.model["n_head"] + head]

    def top(self, role: str) -> HeadScore | None:
        """The head with the highest score for a role (None where the score is undefined)."""
        scored = [h for h in self.heads if h.score(role) is not None]
        return max(scored, key=lambda h: h.score(role)) if scored else None


# --- the probe ----------------------------------------------------------------------------------

def probe_tokens(lm: LoadedModel, n_probes: int = N_PROBES, half: int = HALF, seed: int = SEED) -> list[list[int]]:
    """n_probes sequences: a fixed start token, `half` distinct random tokens, the same again."""
    c = lm.config
    specials = {lm.encoding.encode_single_token(s) for s in lm.encoding.special_tokens_set}
    start = lm.end_of_text if lm.end_of_text is not None else 0
    usable = [i for i in range(min(c.vocab_size, lm.encoding.n_vocab)) if i not in specials and i != start]
    most = min((c.n_ctx - 1) // 2, len(usable))
    if not 1 <= half <= most:
        raise ParameterError("half", f"{half} is out of range; {lm.name} fits 1..{most} random tokens per half")
    if n_probes < 1:
        raise ParameterError("probes", f"{n_probes} is out of range; it must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    pool = torch.tensor(usable)
    out = []
    for _ in range(n_probes):
        drawn = pool[torch.randperm(len(usable), generator=gen)[:half]].tolist()
        out.append([start, *drawn, *drawn])
    return out


# --- scores from attention weights ----------------------------------------------------------------

def earlier_occurrences(ids: torch.Tensor) -> torch.Tensor:
    """(B, T, T) booleans: key j < query i holds the query's token."""
    same = ids[:, :, None] == ids[:, None, :]
    return same & torch.ones_like(same[0]).tril(-1)


def after_earlier(ids: torch.Tensor) -> torch.Tensor:
    """(B, T, T) booleans: key j is right after an earlier occurrence of the query's token (j − 1 < i)."""
    earlier = earlier_occurrences(ids)
    out = torch.zeros_like(earlier)
    out[:, :, 1:] = earlier[:, :, :-1]
    return out


def entropy_bits(weights: torch.Tensor) -> torch.Tensor:
    """Row entropies in bits, for weights (..., T): 0 log 0 counts as 0."""
    w = weights.double()
    logs = torch.where(w > 0, w.log2(), torch.zeros_like(w))
    return -(w * logs).sum(-1)


@dataclass
class LayerScores:
    """One block's heads, averaged over the queries that have a choice: each a (n_head,) tensor."""

    previous: torch.Tensor
    first: torch.Tensor
    itself: torch.Tensor
    duplicate: torch.Tensor | None
    induction: torch.Tensor | None
    entropy_bits: torch.Tensor


def layer_scores(weights: torch.Tensor, ids: torch.Tensor) -> LayerScores:
    """weights (B, H, T, T), rows = queries; ids (B, T). Rows 1.. count (row 0 has no choice)."""
    w = weights.double()
    if w.shape[-1] < 2:
        raise ParameterError("prompt", "is one token; head scores need at least two (a query with a choice)")
    previous = torch.diagonal(w, offset=-1, dim1=-2, dim2=-1)  # (B, H, T - 1): rows 1..
    first = w[:, :, 1:, 0]
    itself = torch.diagonal(w, dim1=-2, dim2=-1)[:, :, 1:]
    earlier = earlier_occurrences(ids)  # (B, T, T)
    repeated = earlier.any(-1)  # (B, T): queries whose token occurred before
    n = int(repeated.sum())
    duplicate = induction = None
    if n:
        on = repeated[:, None, :].double()  # (B, 1, T)
        duplicate = ((w * earlier[:, None].double()).sum(-1) * on).sum((0, 2)) / n
        induction = ((w * after_earlier(ids)[:, None].double()).sum(-1) * on).sum((0, 2)) / n
    return LayerScores(previous=previous.mean((0, 2)), first=first.mean((0, 2)), itself=itself.mean((0, 2)),
                       duplicate=duplicate, induction=induction,
                       entropy_bits=entropy_bits(w[:, :, 1:, :]).mean((0, 2)))


def strongest_job(scores: dict[str, float | None]) -> str:
    """The job of ROLES with the highest score (ties go to the earlier one)."""
    return max((scores[r], -ROLES.index(r), r) for r in ROLES if scores[r] is not None)[2]


def role_of(scores: dict[str, float | None]) -> str:
    """The strongest job among induction, duplicate, previous and self (≥ ROLE_SHARE); else first token; else none."""
    best = max((scores[r], -ROLES.index(r), r) for r in ROLES[:-1] if scores[r] is not None)
    if best[0] >= ROLE_SHARE:
        return best[2]
    return "first" if scores["first"] >= ROLE_SHARE else "none"


# --- one pass that records what the scores and the ablations need ---------------------------------

class HeadRecorder(Tap):
    """Every block's attention weights, reduced to scores at once, and the stream entering each block
    and leaving the last (every batch item)."""

    def __init__(self, ids: torch.Tensor, n_layer: int):
        self.ids = ids
        self.scores: dict[int, LayerScores] = {}
        self.streams: dict[str, torch.Tensor] = {}
        self.final = stages.residual_stream(n_layer)[-1]
        self.stream_names = {stages.stream_into(i) for i in range(n_layer)} | {self.final}

    def needs(self, run: Run):
        return {stages.block_stage(i, "attn.weights") for i in range(run.n_layer)} | self.stream_names

    def __call__(self, name: str, tensor: torch.Tensor, offset: int) -> None:
        if name in self.stream_names:
            self.streams[name] = tensor.detach()
        else:
            self.scores[stages.layer_of(name)] = layer_scores(tensor.detach(), self.ids.to(tensor.device))


def prediction_sets(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T - 1) booleans over the predictions (query i -> token i + 1): repeated (the query's token
    occurred before) and the others."""
    repeated = earlier_occurrences(ids).any(-1)[:, :-1]
    return repeated, ~repeated


def mean_loss(model, final: torch.Tensor, ids: torch.Tensor, chosen: torch.Tensor) -> float | None:
    """The mean next-token loss (nats) of the chosen predictions (B, T - 1), from the final stream (B, T, d).

    Only their rows go through the final LayerNorm and the unembedding: most of the cost, on a big vocabulary.
    """
    if not chosen.any():
        return None
    logits = model.read_out(final[:, :-1][chosen.to(final.device)]).float()
    return F.cross_entropy(logits, ids[:, 1:][chosen].to(logits.device)).item()


def ablated_losses(lm: LoadedModel, recorder: HeadRecorder, ids: torch.Tensor, layer: int, head: int,
                   sets: list[torch.Tensor]) -> list[float | None]:
    """Each set's loss with one head removed, run from the recorded stream entering its block."""
    model = lm.model
    n_layer = lm.config.n_layer
    taps = edit_taps([Ablate(layer, head)], lm, ids[0].tolist())
    x = recorder.streams[stages.stream_into(layer)]
    x = model.h[layer](x, plan(taps, n_layer, model.wte.weight.dtype).block(layer))
    for block in model.h[layer + 1:]:
        x = block(x, NO_BLOCK_TAPS)
    return [mean_loss(model, x, ids, chosen) for chosen in sets]


def heads_to_check(scores: list[HeadScore], n_heads: int) -> tuple[list[HeadScore], str]:
    if n_heads <= ABLATE_ALL:
        return scores, "all"
    picked: dict[str, HeadScore] = {}
    for role in ("induction", "previous"):
        ranked = sorted((h for h in scores if h.score(role) is not None), key=lambda h: -h.score(role))
        for h in [*ranked[:CHECK_TOP], *(h for h in ranked if h.role == role)]:
            if len(picked) < MAX_CHECKS:
                picked.setdefault(h.name, h)
    return list(picked.values()), "some"


def default_probes(lm: LoadedModel) -> int:
    return N_PROBES if lm.config.n_layer * lm.config.n_head <= ABLATE_ALL else N_PROBES_BIG


def head_map(lm: LoadedModel, prompt: str | None = None, n_probes: int | None = None, half: int = HALF,
             seed: int = SEED, check: bool = True) -> HeadMap:
    """Every head's scores on the probe (or on `prompt`), with each checked head's ablated loss.

    n_probes: default_probes (8; 4 for a model with more than ABLATE_ALL heads).
    """
    c = lm.config
    n_probes = default_probes(lm) if n_probes is None else n_probes
    if prompt is not None:
        rows = [encode_prompt(lm, prompt)]
        if len(rows[0]) < 2:
            raise ParameterError("prompt", f"{prompt!r} is one token; head scores need at least two")
    else:
        rows = probe_tokens(lm, n_probes, half, seed)
    ids = torch.tensor(rows)
    recorder = HeadRecorder(ids, c.n_layer)
    with torch.no_grad():
        lm.model(ids.to(lm.device), taps=[recorder])
        repeated, other = prediction_sets(ids)
        final = recorder.streams[recorder.final]
        loss_repeated, loss_other = (mean_loss(lm.model, final, ids, chosen) for chosen in (repeated, other))
        heads = []
        for layer in range(c.n_layer):
            s = recorder.scores[layer]
            for h in range(c.n_head):
                values = {"previous": s.previous[h].item(), "first": s.first[h].item(), "self": s.itself[h].item(),
                          "duplicate": None if s.duplicate is None else s.duplicate[h].item(),
                          "induction": None if s.induction is None else s.induction[h].item()}
                heads.append(HeadScore(layer, h, values["previous"], values["first"], values["self"],
                                       values["duplicate"], values["induction"], s.entropy_bits[h].item(),
                                       strongest_job(values), role_of(values)))
        checked = "none"
        if check and loss_repeated is not None:
            chosen, checked = heads_to_check(heads, len(heads))
            sets = [repeated, other] if checked == "all" else [repeated]
            for h in chosen:
                h.loss_ablated, *rest = ablated_losses(lm, recorder, ids, h.layer, h.head, sets)
                h.loss_ablated_other = rest[0] if rest else None
    start = rows[0][0] if prompt is None else None
    return HeadMap(
        model=lm.describe(), source="probe" if prompt is None else "prompt", prompt=prompt,
        tokens=[lm.token_text(i) for i in rows[0]] if prompt is not None else [],
        seed=seed if prompt is None else None, n_probes=len(rows), half=half if prompt is None else None,
        start=start, start_text=None if start is None else lm.token_text(start), n_tokens=len(rows[0]),
        loss_other=loss_other, loss_repeated=loss_repeated, n_other=int(other.sum()), n_repeated=int(repeated.sum()),
        heads=heads, checked=checked, chance_loss=math.log(c.vocab_size))
