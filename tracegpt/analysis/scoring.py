"""Scoring a text: the probability the model gave, at every position, to the token that really came next.

This is how training grades a model (teacher forcing): the whole text goes in at once, the
logits at position p - 1 are compared with the token at p, and -log p(that token) is its loss.
A text longer than the context is scored in sliding windows of `window` tokens that advance by
`stride`; each window scores only the tokens no earlier window scored, so every token but the
first is scored once, and after the first window with at least window - stride tokens before it.

`score_tokens` is the one function that computes it: `tracegpt score`, `tracegpt.score`, the
embedded model's quality test and the training command's held-out figure all call it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import costs, tokenizer
from ..errors import ParameterError, UsageError
from ..loader import LoadedModel
from ..model import GPT, GPTConfig

LN2 = math.log(2)
TOP_K = 5  # the model's top guesses kept at every position
WORKED_TOP = 10  # candidates listed when one position is worked out


# --- the windows ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """One forward pass: the model reads tokens start..stop-2 and scores the tokens at first..stop-1.

    The token at position p is predicted by the logits at p - 1, from the p - start tokens before it.
    """

    start: int
    first: int
    stop: int

    @property
    def n_read(self) -> int:
        return self.stop - 1 - self.start

    @property
    def n_scored(self) -> int:
        return self.stop - self.first

    @property
    def min_context(self) -> int:
        return self.first - self.start


@dataclass(frozen=True)
class WindowPlan:
    """Windows of `window` tokens advancing by `stride`, together scoring positions 1..n_tokens-1 once each."""

    n_tokens: int
    window: int
    stride: int
    windows: tuple[Window, ...]

    @property
    def n_windows(self) -> int:
        return len(self.windows)

    @property
    def min_context(self) -> int | None:
        """The least context of a token scored after the first window; None when one window scores them all."""
        later = self.windows[1:]
        return min(w.min_context for w in later) if later else None


def resolve_window(n_ctx: int, window: int | None, stride: int | None, model: str) -> tuple[int, int]:
    """The window (default: the context) and stride (default: half the window), or a ParameterError."""
    window = n_ctx if window is None else window
    if not 1 <= window <= n_ctx:
        raise ParameterError("window", f"{window} is out of range; {model} reads 1..{n_ctx} tokens at once "
                                       "(its context)")
    stride = max(1, window // 2) if stride is None else stride
    if not 1 <= stride <= window:
        raise ParameterError("stride", f"{stride} is out of range; it must be in 1..{window} (the window): "
                                       "each window starts this many tokens after the one before")
    return window, stride


def plan_windows(n_tokens: int, window: int, stride: int) -> WindowPlan:
    windows, start, first = [], 0, 1
    while True:
        stop = min(start + window + 1, n_tokens)
        windows.append(Window(start=start, first=first, stop=stop))
        if stop == n_tokens:
            break
        start, first = start + stride, stop
    return WindowPlan(n_tokens=n_tokens, window=window, stride=stride, windows=tuple(windows))


# --- memory, said before the work ------------------------------------------------------------------

def score_bytes(config: GPTConfig, n_tokens: int, window: int, top_k: int = TOP_K,
                dtype: torch.dtype = torch.float32) -> int:
    """Bytes scoring needs beyond the weights: one window's logits and activations, and the per-token results."""
    T, V, size = min(window, n_tokens), config.vocab_size, dtype.itemsize
    logits = T * V * (size + 3 * 4)  # the logits; in float32: a copy, the log-probabilities, a comparison
    activations = (8 * T * config.d_model + 2 * T * config.d_mlp) * size + config.n_head * T * T * 4
    per_token = 160 + 16 * top_k  # ids, probabilities, bits, ranks, top guesses; the token's id and text
    return logits + activations + n_tokens * per_token


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_fits(config: GPTConfig, n_tokens: int, window: int, top_k: int, dtype: torch.dtype, model: str) -> None:
    need = score_bytes(config, n_tokens, window, top_k, dtype)
    available = costs.memory_available()
    if available is not None and need > available:
        raise UsageError(f"scoring {n_tokens:,} tokens with {model} in windows of {window:,} needs about "
                         f"{_size(need)}, more than the {_size(available)} of memory available; use a smaller "
                         "window or a shorter text")


# --- the scoring function --------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkedNumbers:
    """One position's whole predicted distribution, boiled down to what the cross-entropy needs."""

    position: int
    context_start: int  # the window's first token: the model read tokens context_start..position-1
    true_id: int
    true_logit: float
    true_rank: int
    logsumexp: float  # log of the sum of exp(logit) over the vocabulary: softmax's normaliser
    max_logit: float
    n_vocab: int
    top_ids: tuple[int, ...]  # the highest logits, best first
    top_logits: tuple[float, ...]


@dataclass
class Scored:
    """What score_tokens computes: arrays indexed by position. Position 0 is never scored (NaN, rank 0)."""

    ids: np.ndarray  # (n,) int64
    probs: np.ndarray  # (n,) float64: p(the token that came), as the model gave it
    bits: np.ndarray  # (n,) float64: -log2 of that
    ranks: np.ndarray  # (n,) int64: 1 when it was the model's top guess
    context: np.ndarray  # (n,) int64: how many tokens the model read before it
    top_ids: np.ndarray  # (n, top_k) int64: the model's top guesses there, best first
    top_probs: np.ndarray  # (n, top_k) float64
    plan: WindowPlan
    worked: WorkedNumbers | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def n_scored(self) -> int:
        return len(self.ids) - 1

    @property
    def total_bits(self) -> float:
        return float(self.bits[1:].sum())

    @property
    def nats_per_token(self) -> float:
        return self.total_bits * LN2 / self.n_scored

    @property
    def n_top1(self) -> int:
        return int((self.ranks[1:] == 1).sum())


def check_scoreable(n_tokens: int) -> None:
    if n_tokens < 2:
        raise UsageError("the text is one token, so there is nothing to score: each token is graded on the "
                         "tokens before it, and the first has none; give at least two tokens of text")


def check_position(position: int | None, n_tokens: int) -> int | None:
    """A position to work out, counted from 0 (negative from the end); 0 has nothing before it."""
    if position is None:
        return None
    if not -n_tokens <= position < n_tokens or position % n_tokens == 0:
        raise ParameterError("position", f"{position} is out of range; the scored positions are "
                                         f"1..{n_tokens - 1} (or -{n_tokens - 1}..-1): position 0 has nothing "
                                         "before it to be predicted from")
    return position % n_tokens


@torch.no_grad()
def score_tokens(model: GPT, ids: Sequence[int] | torch.Tensor, window: int | None = None,
                 stride: int | None = None, top_k: int = TOP_K, position: int | None = None,
                 name: str = "the model") -> Scored:
    """Teacher forcing over token ids: one forward pass per window, log-softmax in float32, sums in float64.

    `position` keeps that position's whole distribution too (Scored.worked). The model runs in
    eval mode (no dropout) and is put back as it was.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten().cpu()
    n = len(ids)
    check_scoreable(n)
    config = model.config
    window, stride = resolve_window(config.n_ctx, window, stride, name)
    if top_k < 0:
        raise ParameterError("top_k", f"{top_k} is out of range; it must be at least 0")
    top_k = min(top_k, config.vocab_size)
    position = check_position(position, n)
    check_fits(config, n, window, top_k, model.wte.weight.dtype, name)
    plan = plan_windows(n, window, stride)

    probs, bits = np.full(n, np.nan), np.full(n, np.nan)
    ranks, context = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    top_ids, top_probs = np.zeros((n, top_k), dtype=np.int64), np.full((n, top_k), np.nan)
    worked = None
    device = model.wte.weight.device
    was_training = model.training
    model.eval()
    try:
        for w in plan.windows:
            # (n_scored, vocab): only the rows that predict first..stop-1 are unembedded
            rows = model(ids[None, w.start : w.stop - 1].to(device), logits_from=w.first - 1 - w.start)[0].float()
            targets = ids[w.first : w.stop].to(device)
            log_probs = torch.log_softmax(rows, dim=-1)  # (several times faster than logsumexp on a CPU)
            true_logit = rows.gather(1, targets[:, None])
            logp = log_probs.gather(1, targets[:, None])[:, 0].double()
            new = slice(w.first, w.stop)
            bits[new] = (-logp / LN2).cpu().numpy()
            probs[new] = logp.exp().cpu().numpy()
            above = torch.gt(rows, true_logit, out=torch.empty_like(rows))  # summed as floats: faster than bools
            ranks[new] = (above.sum(dim=-1) + 1).long().cpu().numpy()
            context[new] = np.arange(w.first, w.stop) - w.start
            if top_k:
                top = log_probs.topk(top_k, dim=-1)
                top_ids[new] = top.indices.cpu().numpy()
                top_probs[new] = top.values.double().exp().cpu().numpy()
            if position is not None and w.first <= position < w.stop:
                worked = _worked(rows[position - w.first], int(ids[position]), position, w.start)
    finally:
        model.train(was_training)
    return Scored(ids=ids.numpy(), probs=probs, bits=bits, ranks=ranks, context=context, top_ids=top_ids,
                  top_probs=top_probs, plan=plan, worked=worked)


def _worked(row: torch.Tensor, true_id: int, position: int, start: int) -> WorkedNumbers:
    top = row.topk(min(WORKED_TOP, row.numel()))
    true_logit = row[true_id]
    return WorkedNumbers(position=position, context_start=start, true_id=true_id, true_logit=float(true_logit),
                         true_rank=int((row > true_logit).sum()) + 1, logsumexp=float(torch.logsumexp(row, 0)),
                         max_logit=float(row.max()), n_vocab=row.numel(), top_ids=tuple(top.indices.tolist()),
                         top_logits=tuple(top.values.tolist()))


# --- a text, scored: rows, the summary, one position worked out -------------------------------------

@dataclass(frozen=True)
class Candidate:
    id: int
    text: str
    prob: float


@dataclass(frozen=True)
class TokenScore:
    """One scored token: what the model gave the token that came, and what it expected instead."""

    position: int
    id: int
    text: str
    prob: float
    bits: float  # surprisal: -log2 prob
    rank: int  # 1 = the model's top guess
    context: int  # tokens the model read before it
    top: tuple[Candidate, ...]  # the model's top guesses there, best first


@dataclass(frozen=True)
class Summary:
    model: str
    n_tokens: int
    n_scored: int  # every token but the first
    n_bytes: int  # UTF-8 bytes of the scored tokens: bits per character counts these, as the card does
    total_bits: float
    n_top1: int  # positions where the token that came was the model's top guess
    plan: WindowPlan

    @property
    def bits_per_token(self) -> float:
        return self.total_bits / self.n_scored

    @property
    def nats_per_token(self) -> float:
        return self.bits_per_token * LN2

    @property
    def bits_per_char(self) -> float:
        return self.total_bits / self.n_bytes

    @property
    def perplexity(self) -> float:
        """2 ** bits per token: the model was as unsure as a fair choice among this many tokens."""
        return 2.0 ** self.bits_per_token

    @property
    def top1_share(self) -> float:
        return self.n_top1 / self.n_scored


@dataclass(frozen=True)
class WorkedCandidate:
    rank: int
    id: int
    text: str
    logit: float
    prob: float
    is_true: bool


@dataclass(frozen=True)
class Worked:
    """One position as training sees it: the predicted distribution and the cross-entropy of the true token."""

    position: int
    token: TokenScore
    context_start: int
    n_vocab: int
    max_logit: float
    logsumexp: float
    true_logit: float
    candidates: tuple[WorkedCandidate, ...]  # the top ones, best first
    true: WorkedCandidate  # the token that came (among the candidates or not)

    @property
    def true_listed(self) -> bool:
        return self.true.rank <= len(self.candidates)

    @property
    def n_between(self) -> int:
        """Tokens ranked between the last candidate listed and the token that came (0 when it is listed)."""
        return max(0, self.true.rank - len(self.candidates) - 1)

    @property
    def nats(self) -> float:
        """-log p(true) = log sum exp(logits) - logit(true)."""
        return self.logsumexp - self.true_logit

    @property
    def bits(self) -> float:
        return self.nats / LN2

    @property
    def prob(self) -> float:
        return math.exp(-self.nats)

    @property
    def logsumexp_above_max(self) -> float:
        """ln sum exp(logit - largest logit): what the normaliser adds to the largest logit."""
        return self.logsumexp - self.max_logit


@dataclass
class Score:
    """A text scored by one model: every token's row (built on demand), the summary, a position worked out."""

    model: dict  # LoadedModel.describe()
    text: str
    scored: Scored
    texts: list[str]  # each token's text
    n_bytes: np.ndarray  # each token's UTF-8 bytes
    token_text: Callable[[int], str]
    summary: Summary
    worked: Worked | None = None

    def row(self, position: int) -> TokenScore:
        s = self.scored
        top = tuple(Candidate(id=int(i), text=self.token_text(int(i)), prob=float(p))
                    for i, p in zip(s.top_ids[position], s.top_probs[position]))
        return TokenScore(position=position, id=int(s.ids[position]), text=self.texts[position],
                          prob=float(s.probs[position]), bits=float(s.bits[position]), rank=int(s.ranks[position]),
                          context=int(s.context[position]), top=top)

    def rows(self) -> Iterator[TokenScore]:
        """Every scored token, in order (position 1 on)."""
        return (self.row(p) for p in range(1, self.scored.n_tokens))

    @property
    def tokens(self) -> list[TokenScore]:
        return list(self.rows())

    def most_surprising(self, n: int) -> list[TokenScore]:
        """The n tokens with the most bits, most first (earlier first among equals)."""
        bits = self.scored.bits[1:]
        order = np.argsort(-bits, kind="stable")[:n]
        return [self.row(int(i) + 1) for i in order]


def summarise(name: str, scored: Scored, n_bytes: np.ndarray) -> Summary:
    return Summary(model=name, n_tokens=scored.n_tokens, n_scored=scored.n_scored, n_bytes=int(n_bytes[1:].sum()),
                   total_bits=scored.total_bits, n_top1=scored.n_top1, plan=scored.plan)


def worked_out(numbers: WorkedNumbers, token: TokenScore, token_text: Callable[[int], str]) -> Worked:
    def candidate(rank: int, token_id: int, logit: float) -> WorkedCandidate:
        return WorkedCandidate(rank=rank, id=token_id, text=token_text(token_id), logit=logit,
                               prob=math.exp(logit - numbers.logsumexp), is_true=token_id == numbers.true_id)

    listed = tuple(candidate(rank, i, z) for rank, (i, z) in enumerate(zip(numbers.top_ids, numbers.top_logits), 1))
    true = candidate(numbers.true_rank, numbers.true_id, numbers.true_logit)
    return Worked(position=numbers.position, token=token, context_start=numbers.context_start,
                  n_vocab=numbers.n_vocab, max_logit=numbers.max_logit, logsumexp=numbers.logsumexp,
                  true_logit=numbers.true_logit, candidates=listed, true=true)


def score(text: str, model: LoadedModel | str | None = None, *, window: int | None = None,
          stride: int | None = None, top_k: int = TOP_K, position: int | None = None, device: str = "cpu",
          dtype: str = "float32") -> Score:
    """Score a text with a model (a LoadedModel, or a name or path for tracegpt.load; default the embedded one).

        s = tracegpt.score("To be, or not to be")
        s.summary.bits_per_char, s.summary.perplexity
        [(t.text, t.prob, t.bits) for t in s.tokens]
    """
    if not text:
        raise UsageError("the text is empty, so there is nothing to score; give some text")
    if isinstance(model, LoadedModel):
        lm = model
    else:
        from .. import loader

        lm = loader.load(model, device=device, dtype=dtype)
    ids = lm.encode(text)
    scored = score_tokens(lm.model, ids, window=window, stride=stride, top_k=top_k, position=position, name=lm.name)
    n_bytes = np.array([len(tokenizer.token_bytes(lm.encoding, i)) for i in ids], dtype=np.int64)
    result = Score(model=lm.describe(), text=text, scored=scored, texts=[lm.token_text(i) for i in ids],
                   n_bytes=n_bytes, token_text=lm.token_text, summary=summarise(lm.name, scored, n_bytes))
    if scored.worked is not None:
        result.worked = worked_out(scored.worked, result.row(scored.worked.position), lm.token_text)
    return result


# --- two models on one text ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SpanScore:
    """One word of the text (with the whitespace before it) and the bits each model spent on it.

    Tokens differ between tokenizers, bytes do not: a token's bits are spread evenly over its
    bytes, and a word collects the bits of its bytes.
    """

    start: int  # byte offsets in the text's UTF-8
    end: int
    text: str
    bits: tuple[float, float]

    @property
    def n_bytes(self) -> int:
        return self.end - self.start

    @property
    def bits_per_char(self) -> tuple[float, float]:
        return self.bits[0] / self.n_bytes, self.bits[1] / self.n_bytes

    @property
    def difference(self) -> float:
        """Bits the first model spent on this word beyond the second's (negative: fewer)."""
        return self.bits[0] - self.bits[1]


@dataclass(frozen=True)
class Comparison:
    summaries: tuple[Summary, Summary]
    spans: tuple[SpanScore, ...]  # every word that both models scored, in the order of the text
    n_first_better: int  # words on which the first model spent fewer bits

    @property
    def n_bytes(self) -> int:
        return sum(s.n_bytes for s in self.spans)

    @property
    def bits(self) -> tuple[float, float]:
        return sum(s.bits[0] for s in self.spans), sum(s.bits[1] for s in self.spans)

    @property
    def bits_per_char(self) -> tuple[float, float]:
        a, b = self.bits
        return a / self.n_bytes, b / self.n_bytes

    def disagreements(self, n: int) -> list[SpanScore]:
        """The n words on which the two models' bits differ most, most first."""
        return sorted(self.spans, key=lambda s: -abs(s.difference))[:n]


WORD = re.compile(rb"\s*\S+")


def byte_bits(s: Score) -> np.ndarray:
    """Each byte of the text's UTF-8, charged an even share of its token's bits (NaN: the first, unscored token)."""
    return np.repeat(s.scored.bits / s.n_bytes, s.n_bytes)


def compare(a: Score, b: Score) -> Comparison:
    """The same text under two models, per word: bits per character, since their tokens differ."""
    if a.text != b.text:
        raise UsageError("the two scores are of different texts; compare scores of the same text")
    data = a.text.encode("utf-8")
    bounds = [(m.start(), m.end()) for m in WORD.finditer(data)] or [(0, len(data))]
    bounds[-1] = (bounds[-1][0], len(data))  # trailing whitespace joins the last word
    starts = np.array([s for s, _ in bounds])
    sums = [np.add.reduceat(byte_bits(x), starts) for x in (a, b)]
    spans = tuple(SpanScore(start=s, end=e, text=data[s:e].decode("utf-8"), bits=(float(x), float(y)))
                  for (s, e), x, y in zip(bounds, *sums) if not (math.isnan(x) or math.isnan(y)))
    if not spans:
        raise UsageError("the text is a single word, and its first token is never scored; give a longer text")
    return Comparison(summaries=(a.summary, b.summary), spans=spans,
                      n_first_better=sum(s.difference < 0 for s in spans))
