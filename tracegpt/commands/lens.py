"""`tracegpt lens`: the logit lens, as a view, JSON, SVG or HTML."""

from __future__ import annotations

from pathlib import Path

from .common import check_not_the_model, check_outputs, emit_json, loading, read_prompt, show


def run(prompt: str, model: str | None, device: str, dtype: str, position: int | None, as_json: bool,
        svg: Path | None, html: Path | None, width: int | None, color: bool) -> None:
    check_outputs(as_json, svg, html)
    prompt = read_prompt(prompt, model)  # before torch is imported

    from .. import export, loader
    from ..analysis.lens import logit_lens
    from ..tracer import check_position, run_trace
    from ..views import lens as lens_view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    trace = run_trace(lm, prompt, stages=["embed.sum", "resid_out"])
    lens = logit_lens(lm, trace, check_position(trace.n_tokens, position))
    if as_json:
        emit_json(export.lens_to_dict(lens))
        return
    show(lambda console: lens_view.render(lens, console.width), width, color, svg, html, "tracegpt lens")
