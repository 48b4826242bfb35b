"""`tracegpt explain`: one forward pass as a guided walk, as a view or JSON."""

from __future__ import annotations

from .common import check_not_the_model, check_outputs, emit_json, loading, read_prompt, show


def run(prompt: str, model: str | None, device: str, dtype: str, lang: str, as_json: bool, width: int | None,
        color: bool, svg=None, html=None) -> None:
    from ..texts import load

    load(lang)  # an unknown language is a usage error before the model loads
    check_outputs(as_json, svg, html)
    prompt = read_prompt(prompt, model)  # before torch is imported

    from .. import export, loader
    from ..analysis.walk import build, narrate
    from ..tracer import run_trace
    from ..views import explain as explain_view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    narration = narrate(build(run_trace(lm, prompt), lm.token_text), lang)
    if as_json:
        emit_json(export.narration_to_dict(narration))
        return
    show(lambda console: explain_view.render(narration, console.width), width, color, svg, html, "tracegpt explain")
