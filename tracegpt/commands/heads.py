"""`tracegpt heads`: a map of every head's job, scored on a probe (or a text), with ablations beside."""

from __future__ import annotations

from pathlib import Path

from .common import check_not_the_model, check_outputs, emit_json, read_prompt, show


def run(model: str | None, device: str, dtype: str, prompt: str | None, seed: int, probes: int | None, half: int,
        as_json: bool, svg: Path | None, html: Path | None, width: int | None, color: bool) -> None:
    check_outputs(as_json, svg, html)
    if prompt is not None:
        prompt = read_prompt(prompt, model)

    from .. import export, loader
    from ..analysis.heads import head_map
    from ..views import heads as view

    lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    result = head_map(lm, prompt=prompt, n_probes=probes, half=half, seed=seed)
    if as_json:
        emit_json(export.heads_to_dict(result))
        return
    show(lambda _: view.render(result), width, color, svg, html, "tracegpt heads")
