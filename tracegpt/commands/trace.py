"""`tracegpt trace`: load, record every stage, then print the view or the JSON."""

from __future__ import annotations

import sys

from ..errors import UsageError
from .common import check_not_the_model, check_writable, emit_json, parse_indices, read_prompt


def run(prompt: str, model: str | None, device: str, dtype: str, top_k: int, layers: str | None,
          position: int | None, as_json: bool, save, width: int | None, color: bool) -> None:
    if top_k < 1:
        raise UsageError(f"--top-k {top_k} is out of range; it must be at least 1")
    if save is not None:
        check_writable(save, "--save")
    prompt = read_prompt(prompt, model)  # before torch is imported: a usage error should not wait for it

    from .. import costs, export, loader
    from ..analysis.forward import forward_summary
    from ..tracer import check_position, encode_prompt, run_trace
    from ..views import common
    from ..views import trace as trace_view

    lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, save=save)
    shown = parse_indices(layers, "--layers", "layers", lm.config.n_layer, lm.name)
    note = costs.check_trace_fits(lm.config, len(encode_prompt(lm, prompt)), lm.model.wte.weight.dtype, shown)
    if note:
        print(note, file=sys.stderr, flush=True)
    t = run_trace(lm, prompt, layers=shown)
    focus = check_position(t.n_tokens, position)
    top_k = min(top_k, lm.config.vocab_size)
    if save is not None:
        export.save_npz(t, save)
    if as_json:
        emit_json(export.trace_to_dict(t, lm.token_text, focus=focus, top_k=top_k))
        return
    console = common.make_console(width=width, color=color)
    console.print(trace_view.render(forward_summary(t, focus, top_k, lm.token_text, layers=shown)))
