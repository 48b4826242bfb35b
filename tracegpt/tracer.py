"""Recording a forward pass: every stage under its name, only the stages and layers asked for.

    lm = loader.load()
    trace = run_trace(lm, "I love")
    trace["blocks.3.attn.weights"]      # (n_head, T, T) tensor, rows = queries

Names are those of `tracegpt.stages`; they are the keys of the JSON and of the .npz too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache, partial

import torch

from . import stages as stage_names
from . import tokenizer
from .errors import ParameterError, TraceGPTError, UsageError
from .loader import LoadedModel
from .model import attention_weights, head_outputs, next_token_probs
from .taps import Run, Tap

# How each derived stage is recomputed from the stages it derives from (stages.DERIVED_FROM).
DERIVE = {
    "attn.weights": lambda scores, mask, dtype: attention_weights(scores, mask, dtype),
    "probs": lambda logits, dtype: next_token_probs(logits),
}
# The stages no forward pass computes (stages.ON_READING), from their sources and the block's c_proj weight.
DERIVE_ON_READING = {
    "attn.head_out": lambda mix, weight: head_outputs(mix, weight),
}


@cache
def kept_names(n_layer: int, layers: frozenset[int] | None, patterns: tuple[str, ...] | None) -> frozenset[str]:
    """The stages a tracer keeps: those of the chosen layers matching a pattern (full name or name in the block)."""
    kept = set()
    for name in stage_names.names(n_layer):
        stage = stage_names.parse(name)
        if stage.layer is not None and layers is not None and stage.layer not in layers:
            continue
        if patterns is None or any(fnmatchcase(name, p) or fnmatchcase(stage.kind, p) for p in patterns):
            kept.add(name)
    return frozenset(kept)


@cache
def _batched(name: str) -> bool:
    return stage_names.axes(name)[0] == "batch"


# The derived stages' functions read the tracer's dicts, never the tracer itself: a bound method
# here would make a reference cycle that keeps a tracer and its tensors until the cycle collector runs.
def derive(store: dict, name: str, dtype: torch.dtype) -> torch.Tensor:
    sources = [store[source] for source in stage_names.derived_from(name)]
    return DERIVE[stage_names.kind(name)](*sources, dtype)


def derive_on_reading(store: dict, aside: dict, name: str, weight: torch.Tensor) -> torch.Tensor:
    sources = [store.get(source, aside.get(source)) for source in stage_names.derived_from(name)]
    with torch.no_grad():
        return DERIVE_ON_READING[stage_names.kind(name)](*sources, weight)


class Tracer(Tap):
    """A tap that keeps a detached copy of each wanted stage (batch item 0) on the CPU.

    With `derive`, the two largest stages are not kept but recomputed when read, by the model's
    own functions from stages kept anyway: attn.weights from attn.scores and attn.mask, probs
    from logits. Same function, same inputs: the same numbers, for about a third less memory on
    a long prompt. A stage some tap of the run may replace is kept, never derived, so the trace
    holds what the model really used. (Derived only when stages are kept in the model's own
    dtype, so the inputs are exact.) Not needing those weights, the model mixes V with its fused kernel.

    attn.head_out, which no forward pass computes, is always derived (with or without `derive`):
    from the recorded attn.mix and the block's c_proj weight as the model has it when it is read.
    Asked for without attn.mix, the tracer keeps the mix aside for it, out of the trace's names.
    """

    def __init__(self, layers: Iterable[int] | None = None, stages: Iterable[str] | None = None,
                 dtype: torch.dtype | None = None, derive: bool = False):
        self.layers = None if layers is None else frozenset(layers)
        self.patterns = None if stages is None else tuple(stages)
        self.dtype = dtype
        self.derive = derive and dtype is None
        self.store: dict[str, torch.Tensor] = {}
        self.derived: dict[str, Callable[[], torch.Tensor]] = {}
        self.aside: dict[str, torch.Tensor] = {}  # sources of on-reading stages that are not in the trace
        self.kept_aside: frozenset[str] = frozenset()

    def keeps(self, n_layer: int) -> frozenset[str]:
        return kept_names(n_layer, self.layers, self.patterns)

    def needs(self, run: Run) -> Collection[str]:
        kept = self.keeps(run.n_layer)
        on_reading = {name for name in kept if stage_names.on_reading_only(name)}
        kept -= on_reading
        if run.head_projection is not None:  # else no weights to derive them with: not recorded
            for name in on_reading:
                weight = run.head_projection(stage_names.layer_of(name))
                self.derived[name] = partial(derive_on_reading, self.store, self.aside, name, weight)
            self.kept_aside = frozenset(source for name in on_reading for source in stage_names.derived_from(name)
                                        if source not in kept)
        if not self.derive:
            return kept | self.kept_aside
        derived = {name for name in kept if stage_names.is_derived(name) and name not in run.edited
                   and all(source in kept for source in stage_names.derived_from(name))}
        for name in derived:
            self.derived[name] = partial(derive, self.store, name, run.dtype)
        return (kept - derived) | self.kept_aside

    def __call__(self, name: str, tensor: torch.Tensor, offset: int) -> None:
        kept = tensor.detach()[0] if _batched(name) else tensor.detach()
        if self.dtype is not None and kept.is_floating_point():
            kept = kept.to(self.dtype)
        (self.aside if name in self.kept_aside else self.store)[name] = kept.to("cpu")


@dataclass
class Trace:
    """One recorded forward pass: the tokens, and each recorded stage's tensor by name."""

    model: dict
    prompt: str
    token_ids: list[int]
    token_texts: list[str]
    token_bytes: list[bytes]
    tensors: dict[str, torch.Tensor] = field(repr=False)  # the stages kept as tensors
    derived: dict[str, Callable[[], torch.Tensor]] = field(default_factory=dict, repr=False)  # computed on reading

    def __getitem__(self, name: str) -> torch.Tensor:
        if name in self.tensors:
            return self.tensors[name]
        if name in self.derived:
            return self.derived[name]()
        raise KeyError(f"stage {name!r} was not recorded; recorded: {', '.join(self.names())}")

    def __contains__(self, name: str) -> bool:
        return name in self.tensors or name in self.derived

    def names(self) -> list[str]:
        """The recorded stage names, in the order the forward pass computed them."""
        return [n for n in stage_names.names(self.model["n_layer"]) if n in self]

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def layers(self) -> list[int]:
        """The blocks that have recorded stages."""
        return sorted({layer for n in self.tensors if (layer := stage_names.layer_of(n)) is not None})


def encode_prompt(lm: LoadedModel, prompt: str) -> list[int]:
    """Token ids for a prompt, or a usage error that says what is wrong and what the limit is."""
    if not prompt:
        raise UsageError("the prompt is empty; give some text (or '-' to read standard input)")
    n_ctx = lm.config.n_ctx
    tokenizer.check_prompt_bytes(prompt, n_ctx, lm.longest_token_bytes, lm.name)
    ids = lm.encode(prompt)
    if len(ids) > n_ctx:
        raise UsageError(f"the prompt is {len(ids)} tokens; {lm.name} reads at most {n_ctx} (its context)")
    return ids


class NonFiniteError(TraceGPTError):
    """The model computed NaN or an infinity: broken weights, or an overflow in a low-precision dtype."""


def all_finite(t: torch.Tensor, chunk: int = 1 << 20) -> bool:
    """No NaN nor ±inf in t. Checked a slice at a time: torch.isfinite of a whole tensor allocates
    temporaries as large as it (0.35 GB for GPT-2 small's logits at 1024 tokens)."""
    flat = t.reshape(-1)
    return all(bool(torch.isfinite(flat[i:i + chunk]).all()) for i in range(0, flat.numel(), chunk))


def first_non_finite(trace: Trace) -> str | None:
    """The first recorded stage, in the order of the pass, holding NaN or ±inf; None if every number is finite."""
    if "logits" in trace and all_finite(trace["logits"]):
        return None  # what comes out is finite, so nothing before it was NaN (the common, cheap case)
    for name in trace.names():
        t = trace[name]
        if t.is_floating_point() and not all_finite(t):
            return name
    return None


def check_finite(trace: Trace) -> Trace:
    stage = first_non_finite(trace)
    if stage is not None:
        raise NonFiniteError(f"the model produced non-finite values (NaN or ∞) at {stage}, the first stage where it "
                             f"happened; its weights may be corrupted, or a half-precision dtype overflowed")
    return trace


def check_position(n_tokens: int, position: int | None, parameter: str = "position") -> int:
    """A token position counted from 0; negative counts from the end; None is the last."""
    position = -1 if position is None else position
    if not -n_tokens <= position < n_tokens:
        raise ParameterError(parameter, f"{position} is out of range; the prompt has positions 0..{n_tokens - 1} "
                                        f"(or -{n_tokens}..-1)")
    return position % n_tokens


def check_layers(layers: Iterable[int] | None, n_layer: int, model: str) -> None:
    bad = [i for i in layers or () if not 0 <= i < n_layer]
    if bad:
        raise ParameterError("layers", f"{bad[0]} does not exist; {model} has layers 0..{n_layer - 1}")


def run_trace(lm: LoadedModel, prompt: str, layers=None, stages=None, dtype: torch.dtype | None = None,
              taps: Sequence[Tap] = ()) -> Trace:
    """Run the model once on the prompt, keeping the asked-for stages (all of them by default).

    `taps` run before the recorder, so what they change is what the trace holds.
    """
    return trace_ids(lm, encode_prompt(lm, prompt), prompt, layers, stages, dtype, taps)


def trace_ids(lm: LoadedModel, ids: list[int], prompt: str | None = None, layers=None, stages=None,
              dtype: torch.dtype | None = None, taps: Sequence[Tap] = ()) -> Trace:
    """run_trace for token ids (the prompt, if not given, is their decoded text)."""
    check_layers(layers, lm.config.n_layer, lm.name)
    tracer = Tracer(layers=layers, stages=stages, dtype=dtype, derive=True)
    with torch.no_grad():
        lm.model(torch.tensor([ids], device=lm.device), taps=[*taps, tracer])
    prompt = lm.encoding.decode(ids, errors="replace") if prompt is None else prompt
    return check_finite(trace_of(lm, prompt, ids, tracer))


def trace_of(lm: LoadedModel, prompt: str, ids: list[int], tracer: Tracer) -> Trace:
    """What a tracer recorded of one forward pass over `ids`, as a Trace."""
    return Trace(model=lm.describe(), prompt=prompt, token_ids=ids,
                 token_texts=[lm.token_text(i) for i in ids],
                 token_bytes=[tokenizer.token_bytes(lm.encoding, i) for i in ids], tensors=tracer.store,
                 derived=tracer.derived)
