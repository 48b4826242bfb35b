"""`tracegpt intervene`: one or more edits in one pass, compared with the plain pass."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .common import (
    check_not_the_model,
    check_outputs,
    check_writable,
    emit_json,
    loading,
    read_prompt,
    said_saved,
    show,
)


def parse(ablate: list[str], cut: list[str], patch: list[str], source: str | None, steer: int | None,
          toward: str | None, away: str | None, alpha: float, required: bool = True) -> list:
    """The interventions as data, in the order given (ablations, cuts, patches, then the steer)."""
    from .. import stages
    from ..analysis.interventions import Patch, Steer, parse_ablate, parse_cut

    if patch and source is None:
        raise UsageError("--patch needs --from PROMPT2: the prompt whose run the patched values come from")
    if source is not None and not patch:
        raise UsageError("--from gives the prompt for --patch; name the stage to patch with --patch STAGE")
    if steer is not None and (toward is None or away is None):
        raise UsageError("--steer L needs --toward TEXT and --away TEXT: the direction is their difference")
    if steer is None and (toward is not None or away is not None):
        raise UsageError("--toward and --away go with --steer L (the block after which to add the direction)")
    found = [parse_ablate(a) for a in ablate] + [parse_cut(c) for c in cut]
    found += [Patch(stages.parse_site(p), source) for p in patch]
    if steer is not None:
        found.append(Steer(steer, toward, away, alpha))
    if required and not found:
        raise UsageError("nothing to change: give --ablate L.H, --cut L.H:Q>K, --patch STAGE --from PROMPT2 or "
                         "--steer L --toward A --away B")
    return found


def run(prompt: str, model: str | None, device: str, dtype: str, interventions: list, top_k: int, as_json: bool,
        save: Path | None, save_before: Path | None, svg: Path | None, html: Path | None, width: int | None,
        color: bool) -> None:
    if top_k < 1:
        raise UsageError(f"--top-k {top_k} is out of range; it must be at least 1")
    check_outputs(as_json, svg, html)
    for path, option in ((save, "--save"), (save_before, "--save-before")):
        if path is not None:
            check_writable(path, option)
    prompt = read_prompt(prompt, model)

    from .. import export, loader
    from ..analysis.interventions import intervene
    from ..views import intervene as view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, save=save, save_before=save_before, svg=svg, html=html)
    result = intervene(lm, prompt, interventions, top_k=min(top_k, lm.config.vocab_size))
    if save is not None:
        said_saved(export.save_npz(result.after, save))
    if save_before is not None:
        said_saved(export.save_npz(result.before, save_before))
    if as_json:
        emit_json(export.intervention_to_dict(result))
        return
    show(lambda _: view.render(result), width, color, svg, html, "tracegpt intervene")
