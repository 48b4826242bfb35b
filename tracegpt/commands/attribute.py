"""`tracegpt attribute`: split one next-token logit into the parts of the model that wrote it."""

from __future__ import annotations

from pathlib import Path

from .common import check_not_the_model, check_outputs, check_writable, emit_json, read_prompt, said_saved, show


def run(prompt: str, model: str | None, device: str, dtype: str, token: str | None, vs: str | None,
        position: int | None, neurons: int | None, as_json: bool, save: Path | None, svg: Path | None,
        html: Path | None, width: int | None, color: bool) -> None:
    check_outputs(as_json, svg, html)
    if save is not None:
        check_writable(save, "--save")
    prompt = read_prompt(prompt, model)  # before torch is imported: a usage error should not wait for it

    from .. import export, loader
    from ..analysis.attribution import attribute
    from ..views import attribute as view

    lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, save=save, svg=svg, html=html)
    result = attribute(lm, prompt, token=token, vs=vs, position=position, neurons=neurons)
    if save is not None:
        said_saved(export.save_attribution(result, save))
    if as_json:
        emit_json(export.attribution_to_dict(result))
        return
    show(lambda _: view.render(result), width, color, svg, html, "tracegpt attribute")
