"""`tracegpt attn`: one head's routing table, built from the recorded Q, K, scores, mask and weights.

Everything the view shows comes from the document `build_doc` returns, which is also what
`--json` prints, so the terminal and the JSON can never disagree about a number.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UsageError
from .common import check_outputs, emit_json, read_prompt, save_exports

DEFAULT_PROMPT = "To be, or not to be, that is the question:"
SCHEMA_VERSION = 1
WORKED_DIMS = 8  # dims of q, k and v the worked example shows (the JSON has the same ones)
PATTERN_SHARE = 0.5  # a head "mostly" looks somewhere when that place gets half its attention on average
DIFFUSE_RATIO = 0.9  # rows at 90% of an even split's entropy or more count as spread out
TOP_KEYS = 3


def run(prompt: str | None, model: str | None, device: str, dtype: str, layer: str | None, head: str | None,
        query: int | None, key: int | None, position: int | None, scores: bool, as_json: bool,
        svg: Path | None, html: Path | None, width: int | None, color: bool) -> None:
    check_outputs(as_json, svg, html)
    text = DEFAULT_PROMPT if prompt is None else read_prompt(prompt, model)  # before torch is imported

    from .. import loader
    from ..tracer import encode_prompt, run_trace
    from ..views import attn as attn_view
    from ..views import common

    lm = loader.load(model, device=device, dtype=dtype)
    layers = parse_indices(layer, "--layer", "layers", lm.config.n_layer, lm.name, default=lm.config.n_layer - 1)
    heads = parse_indices(head, "--head", "heads", lm.config.n_head, lm.name, default=None)
    n_tokens = len(encode_prompt(lm, text))
    focus = check_index(position, "--position", n_tokens)
    cell = check_cell(query, key, n_tokens)
    if heads is None and (scores or cell):
        option = "--scores" if scores else "--query/--key"
        raise UsageError(f"{option} works on one head's grid; choose one with --head 0..{lm.config.n_head - 1}")

    trace = run_trace(lm, text, layers=layers, stages=["attn.*"])
    doc = build_doc(trace, lm, layers, heads, focus, cell)
    if as_json:
        emit_json(doc)
        return
    console = common.make_console(width=width, color=color, record=bool(svg or html))
    console.print(attn_view.render(doc, scores=scores, default_prompt=prompt is None))
    save_exports(console, svg, html, "tracegpt attn")


# --- checking what the user asked for ---------------------------------------------------------------


def parse_indices(spec: str | None, option: str, noun: str, count: int, model: str, default: int | None):
    """'all', '2', '0,2' or '1-3' -> sorted indices; None means all (and `default` applies when spec is None)."""
    if spec is None:
        return None if default is None else [default]
    spec = spec.strip()
    if spec.lower() == "all":
        return None
    chosen = set()
    try:
        for part in spec.split(","):
            lo, sep, hi = part.strip().partition("-")
            chosen.update(range(int(lo), int(hi) + 1) if sep and lo else [int(part)])
    except ValueError:
        raise UsageError(f"{option} {spec!r} is not a number; use e.g. 2, 0,2, 1-3 or all "
                         f"({model} has {noun} 0..{count - 1})") from None
    if not chosen:
        raise UsageError(f"{option} {spec!r} selects nothing; {model} has {noun} 0..{count - 1} (counting from 0)")
    bad = sorted(i for i in chosen if not 0 <= i < count)
    if bad:
        raise UsageError(f"{option} {bad[0]} is out of range; {model} has {noun} 0..{count - 1} (counting from 0)")
    return sorted(chosen)


def check_index(value: int | None, option: str, n_tokens: int) -> int:
    """A token position from 0; negative counts from the end; None is the last."""
    value = -1 if value is None else value
    if not -n_tokens <= value < n_tokens:
        raise UsageError(f"{option} {value} is out of range; the prompt has positions 0..{n_tokens - 1} "
                         f"(or -{n_tokens}..-1)")
    return value % n_tokens


def check_cell(query: int | None, key: int | None, n_tokens: int) -> tuple[int, int] | None:
    if query is None and key is None:
        return None
    if query is None or key is None:
        given, missing = ("--query", "--key") if key is None else ("--key", "--query")
        raise UsageError(f"{given} needs {missing} too: they name the one cell (query row, key column) to work by hand")
    q = check_index(query, "--query", n_tokens)
    k = check_index(key, "--key", n_tokens)
    if k > q:
        raise UsageError(f"--key {key} is after --query {query}: the causal mask forbids a query from reading a "
                         f"future key; choose a key 0..{q}")
    return q, k


# --- the document: what --json prints and what the view draws ---------------------------------------


def build_doc(trace, lm, layers: list[int] | None, heads: list[int] | None, focus: int,
              cell: tuple[int, int] | None) -> dict:
    """One head: its fields at the top level. Several: {layers: [{layer, heads: [...]}]}."""
    layers = layers if layers is not None else list(range(lm.config.n_layer))
    head_list = heads if heads is not None else list(range(lm.config.n_head))
    doc = {
        "schema_version": SCHEMA_VERSION,
        "model": trace.model,
        "prompt": trace.prompt,
        "focus_position": focus,
        "tokens": trace.token_rows(),
        "mask": trace[f"blocks.{layers[0]}.attn.mask"].tolist(),
        "all_heads": heads is None,
    }
    entries = [{"layer": layer, "heads": [head_entry(trace, lm, layer, h, focus, cell) for h in head_list]}
               for layer in layers]
    if len(entries) == 1 and len(head_list) == 1 and heads is not None:
        doc.update(layer=layers[0], **entries[0]["heads"][0])
    else:
        doc["layers"] = entries
    return doc


def head_entry(trace, lm, layer: int, head: int, focus: int, cell: tuple[int, int] | None) -> dict:
    stage = f"blocks.{layer}.attn."
    weights = trace[stage + "weights"][head].double()
    scores = trace[stage + "scores"][head].double()
    kept = trace[stage + "mask"]
    scale = float(lm.model.h[layer].attn.scale)  # the model's own factor, whatever the checkpoint's rules
    entry = {
        "head": head,
        "scale": scale,
        "scale_text": scale_text(scale, lm.config.d_head, layer),
        "weights": matrix(weights),
        "scores": matrix(scores, kept),
        "focus": focus_summary(weights, focus),
        "pattern": pattern(weights),
    }
    if cell is not None:
        entry["worked"] = worked_example(trace, layer, head, *cell, scale) | {"scale_text": entry["scale_text"]}
    return entry


def num(x: float) -> float | None:
    """Nine significant digits: enough to read back the exact float32 the model produced."""
    x = float(x)
    return float(f"{x:.9g}") if math.isfinite(x) else None


def matrix(values, kept=None) -> list[list[float | None]]:
    rows = values.tolist()
    if kept is None:
        return [[num(v) for v in row] for row in rows]
    return [[num(v) if keep else None for v, keep in zip(row, keep_row)] for row, keep_row in zip(rows, kept.tolist())]


def scale_text(scale: float, d_head: int, layer: int) -> str:
    """How the factor came about, for the explanation; the number itself always comes from the model."""
    root = math.sqrt(d_head)
    if math.isclose(scale, 1 / root, rel_tol=1e-6):
        return f"1/√{d_head}"
    if math.isclose(scale, 1 / (root * (layer + 1)), rel_tol=1e-6):
        return f"1/(√{d_head}·{layer + 1})"
    if scale == 1.0:
        return "no scaling"
    return f"{scale:.6g}"


def entropy_bits(row) -> float:
    return sum(-w * math.log2(w) for w in row if w > 0)  # starts from +0, so one sure key gives 0.0, not -0.0


def focus_summary(weights, focus: int) -> dict:
    row = weights[focus, : focus + 1].tolist()
    order = sorted(range(len(row)), key=lambda j: -row[j])[:TOP_KEYS]
    return {
        "position": focus,
        "top": [{"position": j, "weight": num(row[j])} for j in order],
        "entropy_bits": num(entropy_bits(row)),
        "max_entropy_bits": num(math.log2(focus + 1)),
    }


def pattern(weights) -> dict:
    """What the head does on average over the queries that have a choice (every row but the first)."""
    n = weights.shape[0]
    if n == 1:
        return {"name": "single", "share": 1.0, "shares": {}, "entropy_ratio": None}
    rows = range(1, n)
    shares = {
        "previous": sum(weights[i, i - 1].item() for i in rows) / (n - 1),
        "first": sum(weights[i, 0].item() for i in rows) / (n - 1),
        "self": sum(weights[i, i].item() for i in rows) / (n - 1),
    }
    ratio = sum(entropy_bits(weights[i, : i + 1].tolist()) / math.log2(i + 1) for i in rows) / (n - 1)
    best = max(shares, key=shares.get)
    if ratio >= DIFFUSE_RATIO:
        name, share = "diffuse", ratio
    elif shares[best] >= PATTERN_SHARE:
        name, share = best, shares[best]
    else:
        name, share = "mixed", shares[best]
    return {"name": name, "share": num(share), "shares": {k: num(v) for k, v in shares.items()},
            "entropy_ratio": num(ratio)}


def worked_example(trace, layer: int, head: int, query: int, key: int, scale: float) -> dict:
    """One cell by hand, from the recorded q, k, v, scores and weights (float64 arithmetic on them)."""
    stage = f"blocks.{layer}.attn."
    q = trace[stage + "q"][head, query].double()
    k = trace[stage + "k"][head, key].double()
    v = trace[stage + "v"][head, key].double()
    products = q * k
    dot = products.sum().item()
    shown = min(WORKED_DIMS, q.numel())
    scores_row = trace[stage + "scores"][head, query].double().tolist()
    kept = trace[stage + "mask"][query].tolist()
    visible_keys = [j for j, keep in enumerate(kept) if keep]
    row_max = max(scores_row[j] for j in visible_keys)
    exps = {j: math.exp(scores_row[j] - row_max) for j in visible_keys}
    sum_exp = sum(exps.values())
    recorded_weight = trace[stage + "weights"][head, query, key].item()
    return {
        "layer": layer,
        "head": head,
        "query": query,
        "key": key,
        "d_head": q.numel(),
        "dims": list(range(shown)),
        "q": [num(x) for x in q[:shown].tolist()],
        "k": [num(x) for x in k[:shown].tolist()],
        "products": [num(x) for x in products[:shown].tolist()],
        "dot_shown": num(products[:shown].sum()),
        "dot": num(dot),
        "scale": scale,
        "score": num(dot * scale),
        "recorded_score": num(scores_row[key]),
        "row_max": num(row_max),
        "row": [{"key": j, "score": num(scores_row[j]), "exp": num(exps[j]), "weight": num(exps[j] / sum_exp)}
                for j in visible_keys],
        "masked_keys": [j for j, keep in enumerate(kept) if not keep],
        "sum_exp": num(sum_exp),
        "exp": num(exps[key]),
        "weight": num(exps[key] / sum_exp),
        "recorded_weight": num(recorded_weight),
        "v": [num(x) for x in v[:shown].tolist()],
        "weighted_v": [num(recorded_weight * x) for x in v[:shown].tolist()],
        "mix": [num(x) for x in trace[stage + "mix"][head, query, :shown].tolist()],
    }
