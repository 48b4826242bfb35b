"""`tracegpt explain`: one forward pass as a guided walk, as a view or JSON."""

from __future__ import annotations

from .common import emit_json, read_prompt


def run(prompt: str, model: str | None, device: str, dtype: str, lang: str, as_json: bool, width: int | None,
        color: bool) -> None:
    from ..texts import load

    load(lang)  # an unknown language is a usage error before the model loads
    prompt = read_prompt(prompt, model)  # before torch is imported

    from .. import export, loader
    from ..analysis.walk import build, narrate
    from ..tracer import run_trace
    from ..views import common
    from ..views import explain as explain_view

    lm = loader.load(model, device=device, dtype=dtype)
    narration = narrate(build(run_trace(lm, prompt), lm.token_text), lang)
    if as_json:
        emit_json(export.narration_to_dict(narration))
        return
    console = common.make_console(width=width, color=color)
    console.print(explain_view.render(narration, console.width))
