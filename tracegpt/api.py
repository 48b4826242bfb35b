"""The Python API for testing a forward pass: interventions and patching sweeps, by model name or loaded model.

    import tracegpt
    result = tracegpt.intervene("To be, or not to be, that is the", [tracegpt.ablate(0, 3)])
    result.top_changed, result.kl_bits, result.rows[0]
    sweep = tracegpt.patching_sweep("lord is my", "lady is my").sweeps[1].arrays()["values"]  # (layers, heads)
"""

from __future__ import annotations

from collections.abc import Sequence

from . import stages
from .analysis.interventions import Ablate, Cut, Intervention, InterventionResult, Patch, Steer, check, edit_taps
from .analysis.interventions import intervene as _intervene
from .analysis.patching import PatchingResult, patching
from .generation import Generation
from .loader import LoadedModel, load
from .sampling import SamplingSettings
from .tracer import encode_prompt


def _loaded(model: str | LoadedModel | None) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load(model)


def ablate(layer: int, head: int | None = None, *, mlp: bool = False, mean: bool = False) -> Ablate:
    """Remove head `head` of block `layer` (every head with None; its FFN with mlp=True), to zeros or the mean."""
    return Ablate(layer, head, mlp=mlp, mean=mean)


def cut(layer: int, head: int | None, query: int, key: int) -> Cut:
    """Delete the edge query → key of one head's routing table (every head's with head=None)."""
    return Cut(layer, head, query, key)


def patch(site: str, source: str) -> Patch:
    """Replace a site (e.g. "blocks.1.resid_out[position=3]") by its value in a run on `source`."""
    return Patch(stages.parse_site(site), source)


def steer(layer: int, toward: str, away: str, alpha: float = 1.0) -> Steer:
    """Add alpha × (residual of `toward` − residual of `away`) after block `layer`, at every position."""
    return Steer(layer, toward, away, alpha)


def intervene(prompt: str, interventions: Sequence[Intervention], model: str | LoadedModel | None = None,
              top_k: int = 10) -> InterventionResult:
    """The plain and the edited pass over `prompt`, compared at its last position (as `tracegpt intervene`)."""
    return _intervene(_loaded(model), prompt, interventions, top_k=top_k)


def patching_sweep(clean: str, corrupt: str, model: str | LoadedModel | None = None,
                   kinds: Sequence[str] = ("resid_out", "heads"), answer: str | None = None,
                   wrong: str | None = None) -> PatchingResult:
    """Activation patching sweeps of `corrupt` with pieces of `clean` (as `tracegpt patch`)."""
    return patching(_loaded(model), clean, corrupt, tuple(kinds), answer=answer, wrong=wrong)


def generate(prompt: str, model: str | LoadedModel | None = None, max_new_tokens: int = 32, *,
             temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, greedy: bool = False,
             seed: int | None = None, stop: Sequence[str] = (), use_cache: bool = True,
             interventions: Sequence[Intervention] = ()):
    """The steps `tracegpt generate` streams, as an iterator of generation.Step (one per new token).

        run = tracegpt.generate("I love", greedy=True, max_new_tokens=8)
        for step in run:
            print(step.text, step.prob)
        run.text(), run.stop_reason, run.summary()
    """
    lm = _loaded(model)
    settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    settings.check()
    ids = encode_prompt(lm, prompt)
    edits = edit_taps(check(interventions, lm, len(ids)), lm, ids) if interventions else ()
    return Generation(lm, ids, settings, max_new_tokens, seed=seed, stop_texts=tuple(stop), use_cache=use_cache,
                      edits=edits)
