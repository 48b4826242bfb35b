"""`tracegpt trace`: load, record every stage, then print the view or the JSON."""

from __future__ import annotations

import sys

from ..errors import UsageError
from .common import (
    check_not_the_model,
    check_outputs,
    check_writable,
    emit_json,
    loading,
    parse_indices,
    read_prompt,
    said_saved,
    show,
)
from .common import note as common_note


def run(prompt: str, model: str | None, device: str, dtype: str, top_k: int, layers: str | None,
        position: int | None, as_json: bool, save, width: int | None, color: bool, svg=None, html=None) -> None:
    if top_k < 1:
        raise UsageError(f"--top-k {top_k} is out of range; it must be at least 1")
    check_outputs(as_json, svg, html)
    if save is not None:
        check_writable(save, "--save")
    prompt = read_prompt(prompt, model)  # before torch is imported: a usage error should not wait for it

    from .. import costs, export, loader
    from ..analysis.forward import forward_summary
    from ..tracer import check_position, encode_prompt, run_trace
    from ..views import trace as trace_view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, save=save, svg=svg, html=html)
    shown = parse_indices(layers, "--layers", "layers", lm.config.n_layer, lm.name)
    note = costs.check_trace_fits(lm.config, len(encode_prompt(lm, prompt)), lm.model.wte.weight.dtype, shown)
    if note:
        print(note, file=sys.stderr, flush=True)
    t = run_trace(lm, prompt, layers=shown)
    focus = check_position(t.n_tokens, position)
    if top_k > lm.config.vocab_size:
        from ..texts import say

        common_note(say("trace", "top_k_all", top_k=top_k, model=lm.name, vocab=f"{lm.config.vocab_size:,}"))
        top_k = lm.config.vocab_size
    if save is not None:
        said_saved(export.save_npz(t, save))
    if as_json:
        emit_json(export.trace_to_dict(t, lm.token_text, focus=focus, top_k=top_k))
        return
    show(lambda _: trace_view.render(forward_summary(t, focus, top_k, lm.token_text, layers=shown)),
         width, color, svg, html, "tracegpt trace")
