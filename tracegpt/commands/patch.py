"""`tracegpt patch`: activation patching sweeps of a corrupted prompt with pieces of a clean one."""

from __future__ import annotations

from pathlib import Path

from .common import check_not_the_model, check_outputs, emit_json, loading, read_prompt, show


def run(clean: str, corrupt: str, model: str | None, device: str, dtype: str, kinds: tuple[str, ...],
        answer: str | None, wrong: str | None, as_json: bool, svg: Path | None, html: Path | None, width: int | None,
        color: bool) -> None:
    check_outputs(as_json, svg, html)
    clean, corrupt = read_prompt(clean, model), read_prompt(corrupt, model)

    from .. import export, loader
    from ..analysis.patching import patching
    from ..views import patch as view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    result = patching(lm, clean, corrupt, kinds, answer=answer, wrong=wrong)
    if as_json:
        emit_json(export.patching_to_dict(result))
        return
    show(lambda _: view.render(result), width, color, svg, html, "tracegpt patch")
