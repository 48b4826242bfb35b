"""`tracegpt attn`: one head's routing table, built from the recorded Q, K, scores, mask and weights.

The view and `--json` both come from one `analysis.attention.AttentionReport`, so the terminal
and the JSON can never disagree about a number.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .common import check_not_the_model, check_outputs, emit_json, loading, parse_indices, read_prompt, show

DEFAULT_PROMPT = "To be, or not to be, that is the question:"


def run(prompt: str | None, model: str | None, device: str, dtype: str, layer: str | None, head: str | None,
        query: int | None, key: int | None, position: int | None, scores: bool, as_json: bool,
        svg: Path | None, html: Path | None, width: int | None, color: bool) -> None:
    check_outputs(as_json, svg, html)
    text = DEFAULT_PROMPT if prompt is None else read_prompt(prompt, model)  # before torch is imported

    from .. import export, loader
    from ..analysis.attention import attention_report
    from ..tracer import check_position, encode_prompt, run_trace
    from ..views import attn as attn_view

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    layers = parse_indices(layer, "--layer", "layers", lm.config.n_layer, lm.name, default=lm.config.n_layer - 1)
    # No --head: every head of a layer as one line each; --head all: every head's heatmap.
    every = head is not None and head.strip().lower() == "all"
    heads = list(range(lm.config.n_head)) if every else parse_indices(head, "--head", "heads", lm.config.n_head,
                                                                       lm.name, default=None)
    n_tokens = len(encode_prompt(lm, text))
    focus = check_position(n_tokens, position)
    cell = check_cell(query, key, n_tokens)
    if heads is None and (scores or cell):
        option = "--scores" if scores else "--query/--key"
        raise UsageError(f"{option} works on one head's grid; choose one with --head 0..{lm.config.n_head - 1}")

    trace = run_trace(lm, text, layers=layers, stages=["attn.*"])
    report = attention_report(trace, lm, layers, heads, focus, cell)
    if as_json:
        emit_json(export.attention_to_dict(report))
        return
    show(lambda _: attn_view.render(report, scores=scores, default_prompt=prompt is None),
         width, color, svg, html, "tracegpt attn")


# --- checking what the user asked for ---------------------------------------------------------------


def check_cell(query: int | None, key: int | None, n_tokens: int) -> tuple[int, int] | None:
    if query is None and key is None:
        return None
    if query is None or key is None:
        given, missing = ("--query", "--key") if key is None else ("--key", "--query")
        raise UsageError(f"{given} needs {missing} too: they name the one cell (query row, key column) to work by hand")
    from ..tracer import check_position

    q = check_position(n_tokens, query, "query")
    k = check_position(n_tokens, key, "key")
    if k > q:
        raise UsageError(f"--key {key} is after --query {query}: the causal mask forbids a query from reading a "
                         f"future key; choose a key 0..{q}")
    return q, k
