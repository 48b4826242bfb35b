"""Recording a forward pass: every stage under its name, only the stages and layers asked for.

    lm = loader.load()
    trace = run_trace(lm, "I love")
    trace["blocks.3.attn.weights"]      # (n_head, T, T) tensor, rows = queries

Names are those of `model.stage_names`; they are the keys of the JSON and of the .npz too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from . import tokenizer
from .errors import UsageError
from .loader import LoadedModel
from .model import BLOCK_STAGES, Tap, attention_weights, next_token_probs, stage_names


class Tracer(Tap):
    """A tap that keeps a detached copy of each wanted stage (batch item 0) on the CPU.

    With `derive`, the two largest stages are not kept but recomputed when read, by the model's
    own functions from stages kept anyway: attn.weights from attn.scores and attn.mask, probs
    from logits. Same function, same inputs: the same numbers, for about a third less memory on
    a long prompt. (Only when stages are kept in the model's own dtype, so the inputs are exact.)
    The model, told it need not compute those weights, mixes V with its fused kernel.
    """

    def __init__(self, layers=None, stages=None, dtype: torch.dtype | None = None, derive: bool = False,
                 _prefix: str = "", _store: dict | None = None, _derived: dict | None = None):
        self.layers = None if layers is None else set(layers)
        self.patterns = None if stages is None else list(stages)
        self.dtype = dtype
        self.derive = derive and dtype is None
        self.prefix = _prefix
        self.store: dict[str, torch.Tensor] = {} if _store is None else _store
        self.derived: dict[str, Callable[[], torch.Tensor]] = {} if _derived is None else _derived
        self.active = self._any_wanted()

    def _any_wanted(self) -> bool:
        if not self.prefix:
            return True
        layer = int(self.prefix.split(".")[1])
        if self.layers is not None and layer not in self.layers:
            return False
        return any(self.wants(f"{self.prefix}.{s}") for s in BLOCK_STAGES)

    def wants(self, name: str) -> bool:
        # Derived stages are computed on reading: the model need not compute them now.
        if (self.derive and name == "probs") or self._derives_weights(self.full_name(name)):
            return False
        return self.keeps(name)

    def _derives_weights(self, full: str) -> bool:
        """Whether these attention weights will be derived: kept, from scores and a mask kept too."""
        if not full.endswith(".attn.weights"):
            return False
        block = full.removesuffix("weights")
        return self.derive and all(self.keeps(block + s) for s in ("weights", "scores", "mask"))

    def keeps(self, name: str) -> bool:
        full = name if name.startswith(self.prefix) else self.full_name(name)
        parts = full.split(".")
        if parts[0] == "blocks" and self.layers is not None and int(parts[1]) not in self.layers:
            return False
        if self.patterns is None:
            return True
        short = ".".join(parts[2:]) if parts[0] == "blocks" else full
        return any(fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(short, p) for p in self.patterns)

    def full_name(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def __call__(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        full = self.full_name(name)
        if not (self.active and self.keeps(full)):
            return tensor
        if name == "attn.weights" and self._derives_weights(full):  # computed anyway (upcast attention)
            self._derive_weights(tensor.dtype)
            return tensor
        # Drop the batch axis; embed.position and attn.mask are shared by the batch and have none.
        kept = tensor.detach() if name in ("embed.position", "attn.mask") else tensor.detach()[0]
        if self.dtype is not None and kept.is_floating_point():
            kept = kept.to(self.dtype)
        self.store[full] = kept = kept.to("cpu")
        if self.derive and name == "logits" and self.keeps("probs"):
            self.derived["probs"] = partial(next_token_probs, kept)
        if name == "attn.mask" and self._derives_weights(self.full_name("attn.weights")):
            # The model will not compute these weights; the scores' dtype is theirs.
            self._derive_weights(self.store[self.full_name("attn.scores")].dtype)
        return tensor

    def _derive_weights(self, dtype: torch.dtype) -> None:
        scores, mask = self.store[self.full_name("attn.scores")], self.store[self.full_name("attn.mask")]
        self.derived[self.full_name("attn.weights")] = partial(attention_weights, scores, mask, dtype)

    def scoped(self, prefix: str) -> Tracer:
        return Tracer(self.layers, self.patterns, self.dtype, self.derive, _prefix=prefix, _store=self.store,
                      _derived=self.derived)


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
        return [n for n in stage_names(self.model["n_layer"]) if n in self]

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def token_rows(self) -> list[dict]:
        """The tokens as every JSON document lists them: [{position, id, text}]."""
        return [{"position": i, "id": t, "text": s} for i, (t, s) in enumerate(zip(self.token_ids, self.token_texts))]

    def layers(self) -> list[int]:
        return sorted({int(n.split(".")[1]) for n in self.tensors if n.startswith("blocks.")})


def position_axis(name: str) -> int:
    """Which axis of a stage's tensor runs over token positions (after the batch axis is dropped)."""
    short = name.split(".", 2)[-1] if name.startswith("blocks.") else name
    return 1 if short in ("attn.q", "attn.k", "attn.v", "attn.scores", "attn.weights", "attn.mix") else 0


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


def run_trace(lm: LoadedModel, prompt: str, layers=None, stages=None, dtype: torch.dtype | None = None) -> Trace:
    """Run the model once on the prompt, keeping the asked-for stages (all of them by default)."""
    ids = encode_prompt(lm, prompt)
    n_layer = lm.config.n_layer
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < n_layer]
        if bad:
            raise UsageError(f"layer {bad[0]} does not exist; {lm.name} has layers 0..{n_layer - 1}")
    tracer = Tracer(layers=layers, stages=stages, dtype=dtype, derive=True)
    with torch.no_grad():
        lm.model(torch.tensor([ids], device=lm.device), tap=tracer)
    return Trace(model=lm.describe(), prompt=prompt, token_ids=ids,
                 token_texts=[lm.token_text(i) for i in ids],
                 token_bytes=[lm.encoding.decode_single_token_bytes(i) for i in ids], tensors=tracer.store,
                 derived=tracer.derived)
