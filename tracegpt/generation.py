"""The generation loop: one forward pass per new token, only the last position's logits used.

    ids -> model -> logits[-1] -> sampling stage -> one token appended -> repeat

With the KV cache (the default) the first step computes every prompt position and each
later step only the newest token, reading the earlier keys and values from the cache;
without it, every step recomputes the whole context. `Generation` yields one `Step` at a
time, so a caller can show each token as it comes, and keeps what the run cost.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import perf_counter

import torch

from . import stages
from .errors import ParameterError, UsageError
from .loader import LoadedModel
from .model import KVCache
from .sampling import Sampled, SamplingSettings, sample
from .taps import Tap
from .tracer import NonFiniteError, Tracer, trace_ids

STOP_REASONS = ("end_of_text", "stop_text", "max_new_tokens", "context", "interrupted")
# A one-token step of a model this small is ~150 ops of tens of microseconds each: waking
# other threads for each op costs more than sharing it saves (the embedded model decoded 12%
# faster on one thread of two; GPT-2-small-sized, 500 MB of weights, equally fast on either).
ONE_THREAD_BELOW_BYTES = 64 * 2**20


@dataclass(frozen=True)
class AttentionSpec:
    """Which attention to summarise per step: a block, and one head or (None) the mean of all."""

    layer: int
    head: int | None = None


@dataclass
class AttentionPeek:
    """Where the newest position of a step's forward pass looked hardest."""

    layer: int
    head: int | None
    from_position: int  # the newest position of the step's pass (it reads itself too; that is not counted)
    position: int  # the earlier position it gives the most weight to
    text: str
    weight: float


@dataclass
class RunInfo:
    """What a run is about to do, for the header of the view."""

    model: dict
    prompt: str
    n_prompt_tokens: int
    settings: SamplingSettings
    seed: int
    use_cache: bool
    max_new_tokens: int
    attention: AttentionSpec | None
    interventions: list = field(default_factory=list)  # analysis.interventions.Done: what every step changes


@dataclass
class RunSummary:
    """What a finished run did and cost."""

    n_new_tokens: int
    n_prompt_tokens: int
    stop_reason: str | None
    seconds: float
    tokens_per_s: float
    first_step_seconds: float  # the prompt's step
    use_cache: bool
    positions_with_cache: int  # positions a cached run computes (this run's count, with or without a cache)
    positions_without_cache: int  # positions a run without a cache computes
    cache_bytes: int  # what the KV cache holds (or would hold, without one)


@dataclass
class Step:
    number: int  # 1 for the first new token
    token_id: int
    text: str
    sampled: Sampled
    position: int  # where the new token lands; also how many tokens the forward pass saw
    n_computed: int  # positions this step's forward pass computed
    cache_length: int  # positions held in the KV cache after the forward pass (0 without a cache)
    attention: AttentionPeek | None
    seconds: float  # forward pass + sampling
    logits: torch.Tensor | None = field(default=None, repr=False)  # (vocab,) of the last position, float32
    stages: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # the new positions only

    @property
    def prob(self) -> float:
        return self.sampled.prob


class PreallocatedKVCache(KVCache):
    """A KV cache that allocates the run's whole length at once, so a step writes one row per block.

    The base KVCache appends with torch.cat, which copies every cached position at every step
    (O(n) per token); here that copy was ~10% of a step. Results are identical: the model sees
    the same keys and values, as views of the filled part of each buffer.
    """

    def __init__(self, n_layer: int, capacity: int):
        super().__init__(n_layer)
        self.capacity = capacity
        self.lengths = [0] * n_layer
        self.buffers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer

    def __len__(self) -> int:
        return self.lengths[0]

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        start = self.lengths[layer]
        end = start + k.shape[-2]
        if self.buffers[layer] is None:
            self._grow(layer, k, v, max(end, self.capacity))
        elif end > self.buffers[layer][0].shape[-2]:  # past the planned length: double, as a list does
            self._grow(layer, k, v, max(end, 2 * self.buffers[layer][0].shape[-2]))
        k_buf, v_buf = self.buffers[layer]
        k_buf[:, :, start:end] = k
        v_buf[:, :, start:end] = v
        self.lengths[layer] = end
        self.layers[layer] = (k_buf[:, :, :end], v_buf[:, :, :end])
        return self.layers[layer]

    def _grow(self, layer: int, k: torch.Tensor, v: torch.Tensor, size: int) -> None:
        B, n_head, _, d_head = k.shape
        k_buf, v_buf = k.new_empty(B, n_head, size, d_head), v.new_empty(B, n_head, size, d_head)
        if self.buffers[layer] is not None:
            n = self.lengths[layer]
            k_buf[:, :, :n], v_buf[:, :, :n] = self.buffers[layer][0][:, :, :n], self.buffers[layer][1][:, :, :n]
        self.buffers[layer] = (k_buf, v_buf)


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first step (from 1) at which two runs drew different tokens; None if one is a prefix of the other."""
    return next((i for i, (x, y) in enumerate(zip(a, b), 1) if x != y), None)


@dataclass
class Comparison:
    """An edited run beside the plain run with the same seed: where their texts part."""

    seed: int | None  # None for greedy runs, which need none
    prompt: str
    plain_text: str
    plain_ids: list[int]
    step: int | None  # the first step that drew another token; None: no step differed
    edited_token: str | None  # what each run drew there
    plain_token: str | None


def compare_runs(edited: Generation, plain: Generation) -> Comparison:
    step = first_difference(edited.new_ids, plain.new_ids)
    text = edited.lm.token_text
    seed = None if plain.settings.is_greedy else plain.seed
    prompt = plain.lm.encoding.decode(plain.prompt_ids, errors="replace")
    return Comparison(seed=seed, prompt=prompt, plain_text=plain.text(), plain_ids=plain.new_ids, step=step,
                      edited_token=None if step is None else text(edited.new_ids[step - 1]),
                      plain_token=None if step is None else text(plain.new_ids[step - 1]))


def check_max_new_tokens(n: int) -> None:
    if n < 1:
        raise ParameterError("max_new_tokens", f"{n} is out of range; it must be at least 1")


def check_attention(spec: AttentionSpec, lm: LoadedModel) -> None:
    c = lm.config
    if not 0 <= spec.layer < c.n_layer:
        raise ParameterError("layer", f"{spec.layer} does not exist; {lm.name} has layers 0..{c.n_layer - 1}")
    if spec.head is not None and not 0 <= spec.head < c.n_head:
        raise ParameterError("head", f"{spec.head} does not exist; {lm.name} has heads 0..{c.n_head - 1}")


@contextmanager
def cpu_threads(n: int | None):
    """torch's CPU threads set to n for the block (None: left as they are)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def new_seed() -> int:
    # 32 bits: short enough to type back in with --seed.
    return secrets.randbits(32)


class Generation:
    """One run. Iterate it for the steps; afterwards `stop_reason` and the summary say how it went."""

    def __init__(self, lm: LoadedModel, prompt_ids: list[int], settings: SamplingSettings, max_new_tokens: int,
                 seed: int | None = None, stop_texts: tuple[str, ...] = (), use_cache: bool = True,
                 attention: AttentionSpec | None = None, record: bool = False, keep_logits: bool = True,
                 stop_at_end_of_text: bool = True, edits: Sequence[Tap] = (), list_step: int | None = None):
        check_max_new_tokens(max_new_tokens)
        n_ctx = lm.config.n_ctx
        if not 0 < len(prompt_ids) <= n_ctx:
            raise UsageError(f"the prompt is {len(prompt_ids)} tokens; {lm.name} reads 1..{n_ctx}")
        if attention is not None:
            check_attention(attention, lm)
        self.lm = lm
        self.settings = settings
        self.prompt_ids = list(prompt_ids)
        self.ids = list(prompt_ids)
        self.asked = max_new_tokens
        # The last forward pass may fill the whole context and still yield one more token.
        self.room = n_ctx - len(prompt_ids) + 1
        self.max_new_tokens = min(max_new_tokens, self.room)
        self.seed = new_seed() if seed is None else seed
        self.generator = torch.Generator().manual_seed(self.seed)
        self.stop_texts = tuple(stop_texts)
        # The last token drawn is never fed back: the cache holds at most prompt + new - 1 positions.
        capacity = len(prompt_ids) + self.max_new_tokens - 1
        self.cache = PreallocatedKVCache(lm.config.n_layer, capacity) if use_cache else None
        self.small_model = lm.device.type == "cpu" and sum(
            p.numel() * p.element_size() for p in lm.model.parameters()) < ONE_THREAD_BELOW_BYTES
        self.attention = attention
        self.record = record
        self.keep_logits = keep_logits
        self.stop_at_end_of_text = stop_at_end_of_text
        self.edits = tuple(edits)  # taps that change every step's pass (interventions), before any recorder
        self.list_step = list_step  # the step whose sampling keeps every kept candidate (--show-sampling)
        self.steps_done = 0
        self.seconds = 0.0
        self.first_step_seconds = 0.0
        self.stop_reason: str | None = None

    @property
    def capped(self) -> bool:
        return self.max_new_tokens < self.asked

    @property
    def use_cache(self) -> bool:
        return self.cache is not None

    @property
    def new_ids(self) -> list[int]:
        return self.ids[len(self.prompt_ids):]

    def text(self) -> str:
        """The generated text (an <|endoftext|> that ended the run left out)."""
        eot = self.lm.end_of_text
        return self.lm.encoding.decode([i for i in self.new_ids if i != eot], errors="replace")

    def __iter__(self) -> Iterator[Step]:
        while self.stop_reason is None:
            step = self._step()
            yield step
            self.stop_reason = self._stop_reason(step)

    # --- one step ---

    def _step(self) -> Step:
        start = perf_counter()
        feed = self._feed()
        tracer = self._tracer()
        taps = self.edits if tracer is None else (*self.edits, tracer)
        # inference_mode per step, not around the loop: a generator's `with` would stay open
        # across each yield and leak into the caller's code.
        threads = 1 if self.small_model and len(feed) == 1 else None
        with torch.inference_mode(), cpu_threads(threads):
            logits = self.lm.model(torch.tensor([feed], device=self.lm.device), taps=taps, cache=self.cache)[0, -1]
            if not torch.isfinite(logits).all():
                self._refuse_non_finite()
            sampled = sample(logits, self.settings, self.generator, every_kept=self.steps_done + 1 == self.list_step)
        seconds = perf_counter() - start
        first = self.steps_done == 0
        self.seconds += seconds
        self.first_step_seconds = seconds if first else self.first_step_seconds
        self.steps_done += 1

        position = len(self.ids)
        self.ids.append(sampled.token_id)
        for c in sampled.candidates:
            c.text = self.lm.token_text(c.id)
        # Without a cache the forward pass recomputed everything, but only the first step's
        # prompt and each later step's one token are new.
        n_new = len(feed) if self.cache is not None or first else 1
        return Step(number=self.steps_done, token_id=sampled.token_id, text=self.lm.token_text(sampled.token_id),
                    sampled=sampled, position=position, n_computed=len(feed),
                    cache_length=len(self.cache) if self.cache is not None else 0,
                    attention=self._peek(tracer, position), seconds=seconds,
                    logits=logits.float().cpu() if self.keep_logits else None,
                    stages=self._new_columns(tracer, n_new))

    def _refuse_non_finite(self) -> None:
        """Say where the numbers broke: a full trace of this context finds the first stage."""
        trace_ids(self.lm, self.ids)  # raises NonFiniteError naming the stage
        raise NonFiniteError(f"the model produced non-finite logits at step {self.steps_done + 1}")

    def _feed(self) -> list[int]:
        """The ids this step's forward pass reads: all of them, or with a cache only the uncached ones."""
        # A copy: self.ids grows at the end of the step, and the step reports what was read.
        return self.ids[len(self.cache):] if self.cache is not None else list(self.ids)

    def _tracer(self) -> Tracer | None:
        """What this step records: every stage, or the weights the attention column reads, or nothing."""
        if self.record:
            return Tracer()
        if self.attention is not None:
            return Tracer(layers=[self.attention.layer], stages=["attn.weights"])
        return None

    def _peek(self, tracer: Tracer | None, position: int) -> AttentionPeek | None:
        spec = self.attention
        if spec is None:
            return None
        weights = tracer.store[stages.block_stage(spec.layer, "attn.weights")]
        weights = weights[:, -1, :].float().cpu()  # (n_head, context): the newest position's row
        row = weights.mean(dim=0) if spec.head is None else weights[spec.head]
        newest = position - 1
        if newest == 0:
            return None  # a one-token context: no earlier token to look at, only itself
        best = int(torch.argmax(row[:newest]))  # the earlier tokens only: what it gathers, not what it is
        return AttentionPeek(layer=spec.layer, head=spec.head, from_position=newest, position=best,
                             text=self.lm.token_text(self.ids[best]), weight=row[best].item())

    def _new_columns(self, tracer: Tracer | None, n_new: int) -> dict[str, torch.Tensor]:
        """The recorded stages of the positions new at this step (all of them, with or without a cache)."""
        if not self.record:
            return {}
        out = {}
        derived = ((name, derive()) for name, derive in tracer.derived.items())  # attn.head_out: no pass computes it
        for name, tensor in [*tracer.store.items(), *derived]:
            axis = stages.position_axis(name)
            out[name] = tensor.narrow(axis, tensor.shape[axis] - n_new, n_new)
        return out

    def _stop_reason(self, step: Step) -> str | None:
        if self.stop_at_end_of_text and self.lm.end_of_text is not None and step.token_id == self.lm.end_of_text:
            return "end_of_text"
        if self.stop_texts and any(s in self.text() for s in self.stop_texts):
            return "stop_text"
        if self.steps_done >= self.max_new_tokens:
            return "context" if self.capped else "max_new_tokens"
        return None

    # --- what the run is and cost ---

    def info(self, prompt: str, interventions: list | None = None) -> RunInfo:
        return RunInfo(model=self.lm.describe(), prompt=prompt, n_prompt_tokens=len(self.prompt_ids),
                       settings=self.settings, seed=self.seed, use_cache=self.use_cache,
                       max_new_tokens=self.max_new_tokens, attention=self.attention,
                       interventions=list(interventions or []))

    def summary(self) -> RunSummary:
        n, p = self.steps_done, len(self.prompt_ids)
        c = self.lm.config
        cached_positions = p + n - 1 if n else 0  # the last token drawn is never fed back
        itemsize = self.lm.model.wte.weight.element_size()
        return RunSummary(
            n_new_tokens=n, n_prompt_tokens=p, stop_reason=self.stop_reason, seconds=self.seconds,
            tokens_per_s=n / self.seconds if self.seconds else 0.0, first_step_seconds=self.first_step_seconds,
            use_cache=self.use_cache, positions_with_cache=cached_positions,
            positions_without_cache=n * p + n * (n - 1) // 2,
            cache_bytes=self.cache.nbytes() if self.cache is not None
            else 2 * c.n_layer * cached_positions * c.d_model * itemsize)
