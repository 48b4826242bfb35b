"""The sampling stage: one position's logits in, one token out, every filter step kept.

    logits -> / temperature -> top-k cut -> top-p cut -> renormalised probabilities -> one draw

The draw is explicit: a uniform number u in [0, 1) from a seeded torch.Generator, and the
token whose slice of the cumulative (renormalised) probabilities holds u. Recording u and
the slices lets the view show exactly why that token came out.

Greedy decoding (--greedy, or temperature 0) skips all of it and takes the highest logit;
its reported probability is then the model's own (softmax at temperature 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .errors import ParameterError

# Logits arrive in float32, whose rounding moves a probability by ~1e-7: a set whose mass
# reaches p within this much counts as reaching it (so p = 0.8 over 0.5, 0.3, 0.2 keeps two).
TOP_P_TOLERANCE = 1e-6
KEEP_CANDIDATES = 10  # rows of the pipeline kept per step (the chosen token is always added)
PREFIX = 256  # how many of the most likely tokens to sort first
MAX_LISTED = 50  # kept tokens a whole-pipeline table lists; more are summed in one line
CUT_ROWS = 3  # cut tokens listed after the kept ones, to show where the cut falls


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int | None = None  # None: no top-k cut
    top_p: float = 1.0  # 1: no top-p cut
    greedy: bool = False

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    def check(self) -> None:
        """A usage error naming the first value out of range, and the range."""
        t, p, k = self.temperature, self.top_p, self.top_k
        if not math.isfinite(t) or t < 0:
            raise ParameterError("temperature", f"{given(t)} is out of range; it must be a number ≥ 0 (0 means greedy)")
        if not (math.isfinite(p) and 0 < p <= 1):
            raise ParameterError("top_p", f"{given(p)} is out of range; it must be in (0, 1]")
        if k is not None and k < 1:
            raise ParameterError("top_k", f"{k} is out of range; it must be at least 1")


def given(x: float) -> str:
    """A number as it was typed: 1.0000001 stays 1.0000001 (not rounded to 1), 0.0 is 0."""
    return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e16 else repr(x)


@dataclass
class Candidate:
    """One token's way through the pipeline."""

    id: int
    rank: int  # by logit, from 0
    logit: float
    scaled: float  # logit / temperature
    p_temperature: float  # softmax of the scaled logits over the whole vocabulary
    in_top_k: bool
    in_top_p: bool
    prob: float  # in the renormalised distribution the draw used; 0 when cut
    cum_start: float  # where its slice of [0, 1) starts in that distribution
    text: str = ""  # filled in by whoever knows the tokenizer


@dataclass
class Sampled:
    """What the sampling stage did at one step."""

    token_id: int
    prob: float  # the chosen token's probability in the distribution the draw used
    model_prob: float  # its probability before temperature and filters (softmax at T=1)
    draw: float | None  # the uniform number u; None for greedy
    greedy: bool
    n_vocab: int
    n_top_k: int  # tokens left after the top-k cut
    n_top_p: int  # tokens left after the top-p cut: those the draw chose among
    mass_top_p: float  # their share of the post-top-k distribution, before renormalising
    mass_top_k: float = 1.0  # the share of p(T) the top-k cut keeps
    candidates: list[Candidate] = field(default_factory=list)  # highest logits first, chosen included

    def rest(self, shown: list[Candidate]) -> tuple[int, float]:
        """How many tokens the draw could take besides `shown`, and their probability together."""
        n_drawable = self.n_vocab if self.greedy else self.n_top_p
        return n_drawable - len(shown), max(0.0, 1.0 - sum(c.prob for c in shown))

    def top(self, n: int = 5) -> list[Candidate]:
        """The n most probable tokens of the distribution the draw used (cut tokens left out)."""
        return [c for c in self.candidates if c.prob > 0][:n]

    @property
    def chosen(self) -> Candidate:
        return next(c for c in self.candidates if c.id == self.token_id)


def sample(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None,
           keep: int = KEEP_CANDIDATES, every_kept: bool = False) -> Sampled:
    """Pick the next token from one position's logits (vocab_size,), recording every step.

    `every_kept` records every token the cuts kept (up to MAX_LISTED) and the first few they cut,
    for a table of the whole pipeline; otherwise the leading `keep` and the drawn one.
    """
    if settings.is_greedy:
        # No cumulative sums, no draw: float32 is exact enough, and on a CPU its softmax over
        # the vocabulary is several times faster than float64's (which was ~5% of a decoding step).
        return _greedy(logits.detach().to("cpu", torch.float32).flatten(), keep)
    # float64 on the CPU: cumulative sums over 50k tokens stay exact enough for top-p, and the
    # same seed draws the same token whatever device ran the model.
    return _sample(logits.detach().to("cpu", torch.float64).flatten(), settings, generator, keep, every_kept)


def _greedy(logits: torch.Tensor, keep: int) -> Sampled:
    top = torch.topk(logits, min(keep, logits.numel()))
    ids = top.indices.tolist()
    values = top.values.tolist()
    # One fused softmax over the vocabulary costs less than a logsumexp's several passes.
    probs = torch.softmax(logits, dim=0)[top.indices].tolist()
    candidates = []
    cum = 0.0
    for rank, (i, logit, p) in enumerate(zip(ids, values, probs)):
        candidates.append(Candidate(i, rank, logit, logit, p, True, True, p, cum))
        cum += p
    return Sampled(token_id=ids[0], prob=probs[0], model_prob=probs[0], draw=None, greedy=True,
                   n_vocab=logits.numel(), n_top_k=logits.numel(), n_top_p=logits.numel(), mass_top_p=1.0,
                   candidates=candidates)


def top_p_count(probs_desc: torch.Tensor, top_p: float) -> int:
    """How many of these probabilities (sorted high to low) form the smallest set of mass ≥ top_p."""
    if top_p >= 1:
        return probs_desc.numel()
    mass_before = torch.cumsum(probs_desc, dim=0) - probs_desc  # of the more likely tokens
    return max(1, int((mass_before < top_p - TOP_P_TOLERANCE).sum()))


def _highest_first(logits: torch.Tensor, p: torch.Tensor, limit: int, enough) -> tuple[torch.Tensor, torch.Tensor]:
    """The probabilities of the `limit` highest logits, highest first, or of fewer once `enough(values)`.

    Ordered by logit, not by p: at an extreme temperature p underflows to 0 or rounds to a tie for
    most tokens, and an order taken from p would list arbitrary tokens as the runners-up. Sorting
    all 50k logits of a GPT-2 vocabulary takes ~5 ms on a CPU; the mass that top-p and the draw
    need almost always sits in the first few hundred.
    """
    k = min(limit, PREFIX)
    while True:
        ids = torch.topk(logits, k).indices
        values = p[ids]
        if k == limit or enough(values):
            return values, ids
        k = min(limit, k * 8)


def _sample(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None,
            keep: int, every_kept: bool = False) -> Sampled:
    n_vocab = logits.numel()
    temperature, top_p = settings.temperature, settings.top_p
    # Subtracting the maximum first keeps a tiny temperature from overflowing to inf - inf.
    p_temperature = torch.softmax((logits - logits.max()) / temperature, dim=-1)
    u = torch.rand((), generator=generator, dtype=torch.float64).item()

    n_top_k = min(settings.top_k or n_vocab, n_vocab)
    if n_top_k < n_vocab:
        ids = torch.topk(logits, n_top_k).indices
        values = p_temperature[ids]
        top_k_mass = values.sum().item()
    else:
        top_k_mass = p_temperature.sum().item()
        # Enough once the kept set is complete (top-p reached) or, with no top-p, once u is covered.
        reach = top_p - TOP_P_TOLERANCE if top_p < 1 else u
        values, ids = _highest_first(logits, p_temperature, n_vocab, lambda v: v.sum().item() / top_k_mass > reach)
    after_top_k = values / top_k_mass
    n_top_p = top_p_count(after_top_k, top_p) if top_p < 1 else n_top_k
    mass_top_p = after_top_k[:n_top_p].sum().item() if n_top_p < n_top_k else 1.0
    final = after_top_k[:n_top_p] / mass_top_p  # only the prefix computed; the rest sit past u
    cum_end = torch.cumsum(final, dim=0)
    # Token i owns [cum_end[i-1], cum_end[i]); rounding can leave cum_end[-1] a hair below u.
    rank = min(int(torch.searchsorted(cum_end, torch.tensor([u], dtype=torch.float64), right=True)),
               final.numel() - 1)
    chosen = int(ids[rank])
    model_prob = math.exp(logits[chosen].item() - torch.logsumexp(logits, dim=0).item())
    if every_kept:
        keep = max(keep, min(n_top_p, MAX_LISTED) + CUT_ROWS)
    return Sampled(token_id=chosen, prob=final[rank].item(), model_prob=model_prob,
                   draw=u, greedy=False, n_vocab=n_vocab, n_top_k=n_top_k, n_top_p=n_top_p,
                   mass_top_p=mass_top_p, mass_top_k=top_k_mass,
                   candidates=_candidates(logits, temperature, p_temperature, ids, final, cum_end, n_top_k,
                                          n_top_p, rank, keep))


def _candidates(logits, temperature, p_temperature, ids, final, cum_end, n_top_k, n_top_p, chosen_rank,
                keep) -> list[Candidate]:
    """The leading `keep` tokens by logit, and the chosen one wherever it ranks."""
    leading = ids[:keep].tolist()
    if len(leading) < keep:  # top-k cut inside the leading rows: name the cut ones too, ties in the same order
        more = torch.topk(logits, min(keep, logits.numel())).indices.tolist()
        leading += [t for t in more if t not in leading][: keep - len(leading)]
    ranks = list(range(len(leading)))
    if chosen_rank >= len(leading):
        ranks.append(chosen_rank)
        leading.append(int(ids[chosen_rank]))
    # One gather per column: indexing tensors element by element costs microseconds each.
    index = torch.tensor(leading)
    logit_values = logits[index].tolist()
    p_values = p_temperature[index].tolist()
    kept_ranks = [r for r in ranks if r < n_top_p]
    kept_probs = dict(zip(kept_ranks, final[kept_ranks].tolist()))
    kept_ends = dict(zip(kept_ranks, cum_end[kept_ranks].tolist()))
    out = []
    for rank, token, logit, p in zip(ranks, leading, logit_values, p_values):
        prob = kept_probs.get(rank, 0.0)
        out.append(Candidate(id=token, rank=rank, logit=logit, scaled=logit / temperature, p_temperature=p,
                             in_top_k=rank < n_top_k, in_top_p=rank < n_top_p, prob=prob,
                             cum_start=kept_ends[rank] - prob if rank in kept_ends else 0.0))
    return out
