"""`tracegpt patch`: activation patching sweeps of a corrupted prompt with pieces of a clean one."""

from __future__ import annotations

from pathlib import Path

from .common import check_not_the_model, check_outputs, emit_json, loading, read_prompt, save_exports


def run(clean: str, corrupt: str, model: str | None, device: str, dtype: str, kinds: tuple[str, ...],
        answer: str | None, wrong: str | None, as_json: bool, svg: Path | None, html: Path | None, width: int | None,
        color: bool) -> None:
    check_outputs(as_json, svg, html)
    clean, corrupt = read_prompt(clean, model), read_prompt(corrupt, model)

    from .. import export, loader
    from ..analysis.patching import patching
    from ..views import common
    from ..views import patch as view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    result = patching(lm, clean, corrupt, kinds, answer=answer, wrong=wrong)
    if as_json:
        emit_json(export.patching_to_dict(result))
        return
    console = common.make_console(width=width, color=color, record=bool(svg or html))
    console.print(view.render(result))
    save_exports(console, svg, html, "tracegpt patch")
