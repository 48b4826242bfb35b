"""Data out of tracegpt: the JSON documents the commands print, and the .npz files of --save.

The trace JSON holds summaries (shape, mean, std, min, max, the focus position's L2 norm) and
small previews; full tensors go to the .npz, keyed by the same stage names. Every other
document is the analysis's own dataclasses, field by field, so a view and its JSON agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from . import stages
from .analysis.forward import next_tokens
from .analysis.numbers import norm, std
from .files import replacing
from .tracer import Trace, check_position

SCHEMA_VERSION = 1
PREVIEW = 8  # numbers of the focus vector shown per stage


def focus_slice(trace: Trace, name: str, focus: int) -> torch.Tensor:
    return trace[name].select(stages.position_axis(name), focus)


def _num(x: float) -> float | None:
    x = float(x)
    return round(x, 6) if math.isfinite(x) else None


def stage_summary(trace: Trace, name: str, focus: int) -> dict:
    t = trace[name]
    entry = {"name": name, "layer": stages.layer_of(name), "shape": list(t.shape)}
    if not t.is_floating_point():
        entry.update(mean=None, std=None, min=None, max=None, focus_norm=None)
        entry["preview"] = focus_slice(trace, name, focus).tolist() if t.dim() > 1 else t.tolist()
        return entry
    f = t.float()
    sl = focus_slice(trace, name, focus).float()
    entry.update(mean=_num(f.mean()), std=_num(std(f)), min=_num(f.min()), max=_num(f.max()),
                 focus_norm=_num(norm(sl)))
    if stages.kind(name) == "attn.weights":
        entry["preview"] = [[_num(w) for w in row] for row in sl]  # each head's row for the focus
    else:
        entry["preview"] = [_num(v) for v in sl.flatten()[:PREVIEW]]
    return entry


def guess_dicts(guesses) -> list[dict]:
    return [{"id": g.id, "text": g.text, "logit": _num(g.logit), "prob": _num(g.prob)} for g in guesses]


def trace_to_dict(trace: Trace, token_text, focus: int | None = None, top_k: int = 10) -> dict:
    """The JSON document: model, tokens, every recorded stage summarised, the next-token top-k."""
    focus = check_position(trace.n_tokens, focus)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "model": trace.model,
        "prompt": trace.prompt,
        "focus_position": focus,
        "tokens": token_rows(trace.token_ids, trace.token_texts),
        "stages": [stage_summary(trace, n, focus) for n in trace.names()],
    }
    if "logits" in trace:
        doc["next_token"] = {"position": focus, "top": guess_dicts(next_tokens(trace, focus, top_k, token_text))}
    return doc


def npz_array(t: torch.Tensor) -> np.ndarray:
    """A stage as numpy keeps it: half types as float32, which numpy reads everywhere."""
    return (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Arrays to an .npz file, by name; the file at `path` is replaced only once the new one is whole."""
    with replacing(path) as f:
        np.savez(f, **arrays)
    return Path(path)


def save_npz(trace: Trace, path: str | Path) -> Path:
    """Every recorded stage as a numpy array under its stage name (float32 for half types)."""
    return write_npz(path, {name: npz_array(trace[name]) for name in trace.names()})


def step_arrays(step) -> dict[str, np.ndarray]:
    """A generation step's recorded stages (its new positions), under step{N}/{stage name}."""
    return {f"step{step.number}/{name}": npz_array(t) for name, t in step.stages.items()}


def generation_arrays(ids: list[int], n_prompt: int) -> dict[str, np.ndarray]:
    return {"token_ids": np.array(ids, dtype=np.int64), "n_prompt_tokens": np.array(n_prompt, dtype=np.int64)}


# --- generate: one JSON object per step, then one when it is done ---


def candidate_dict(c) -> dict:
    return {"id": c.id, "text": c.text, "prob": _num(c.prob), "logit": _num(c.logit)}


def pipeline_dict(step) -> list[dict]:
    return [{"rank": c.rank, "id": c.id, "text": c.text, "logit": _num(c.logit), "scaled": _num(c.scaled),
             "p_temperature": _num(c.p_temperature), "in_top_k": c.in_top_k, "in_top_p": c.in_top_p,
             "prob": _num(c.prob), "slice_start": _num(c.cum_start)} for c in step.sampled.candidates]


def step_event(step, with_pipeline: bool = False) -> dict:
    s = step.sampled
    a = step.attention
    event = {
        "event": "step", "step": step.number, "id": step.token_id, "text": step.text, "prob": _num(step.prob),
        "top": [candidate_dict(c) for c in s.top(5)],
        "model_prob": _num(s.model_prob), "draw": None if s.draw is None else _num(s.draw),
        "n_top_k": s.n_top_k, "n_top_p": s.n_top_p, "mass_top_p": _num(s.mass_top_p),
        "attention": None if a is None else {"layer": a.layer, "head": a.head, "position": a.position,
                                             "text": a.text, "weight": _num(a.weight)},
        "position": step.position, "context_length": step.position, "positions_computed": step.n_computed,
        "cache_length": step.cache_length, "seconds": _num(step.seconds),
    }
    if with_pipeline:
        event["pipeline"] = pipeline_dict(step)
    return event


def done_event(gen, prompt: str, comparison=None) -> dict:
    """The last line of `generate --json`: the text, why it stopped, what it cost (and the plain run's text)."""
    s = gen.summary()
    done = {"event": "done", "prompt": prompt, "text": gen.text(), "n_prompt_tokens": s.n_prompt_tokens,
            "stop_reason": s.stop_reason, "seed": None if gen.settings.is_greedy else gen.seed,
            "token_ids": gen.new_ids, "n_new_tokens": s.n_new_tokens, "seconds": s.seconds,
            "tokens_per_s": s.tokens_per_s, "first_step_seconds": s.first_step_seconds, "use_cache": s.use_cache,
            "positions_with_cache": s.positions_with_cache, "positions_without_cache": s.positions_without_cache,
            "cache_bytes": s.cache_bytes}
    if comparison is not None:
        done["compare"] = {"seed": comparison.seed, "text": comparison.plain_text, "token_ids": comparison.plain_ids,
                           "first_difference": comparison.step}
    return {k: _num(v) if isinstance(v, float) else v for k, v in done.items()}


# --- attn: one document for one head or several ---

ATTN_SCHEMA_VERSION = 1


def _exact(x: float | None) -> float | None:
    """Nine significant digits: enough to read back the exact float32 the model produced."""
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.9g}") if math.isfinite(x) else None


def _matrix(rows) -> list[list[float | None]]:
    return [[_exact(v) for v in row] for row in rows]


def worked_dict(w) -> dict:
    return {
        "layer": w.layer, "head": w.head, "query": w.query, "key": w.key, "d_head": w.d_head, "dims": w.dims,
        "q": [_exact(x) for x in w.q], "k": [_exact(x) for x in w.k], "products": [_exact(x) for x in w.products],
        "dot_shown": _exact(w.dot_shown), "dot": _exact(w.dot), "scale": w.scale, "score": _exact(w.score),
        "recorded_score": _exact(w.recorded_score), "row_max": _exact(w.row_max),
        "row": [{"key": r.key, "score": _exact(r.score), "exp": _exact(r.exp), "weight": _exact(r.weight)}
                for r in w.row],
        "masked_keys": w.masked_keys, "sum_exp": _exact(w.sum_exp), "exp": _exact(w.exp), "weight": _exact(w.weight),
        "recorded_weight": _exact(w.recorded_weight), "v": [_exact(x) for x in w.v],
        "weighted_v": [_exact(x) for x in w.weighted_v], "mix": [_exact(x) for x in w.mix],
        "scale_text": w.scale_text,
    }


def head_dict(h) -> dict:
    p = h.pattern
    entry = {
        "head": h.head, "scale": h.scale, "scale_text": h.scale_text, "weights": _matrix(h.weights),
        "scores": _matrix(h.scores),
        "focus": {"position": h.focus.position,
                  "top": [{"position": t.position, "weight": _exact(t.weight)} for t in h.focus.top],
                  "entropy_bits": _exact(h.focus.entropy_bits), "max_entropy_bits": _exact(h.focus.max_entropy_bits)},
        "pattern": {"name": p.name, "share": _exact(p.share), "shares": {k: _exact(v) for k, v in p.shares.items()},
                    "entropy_ratio": _exact(p.entropy_ratio)},
    }
    if h.worked is not None:
        entry["worked"] = worked_dict(h.worked)
    return entry


def attention_to_dict(report) -> dict:
    """The JSON of `tracegpt attn --json`: one head's fields at the top level, several under `layers`."""
    doc = {
        "schema_version": ATTN_SCHEMA_VERSION, "model": report.model, "prompt": report.prompt,
        "focus_position": report.focus_position, "tokens": token_rows(report.token_ids, report.tokens),
        "mask": report.mask, "all_heads": report.all_heads,
    }
    if report.single is not None:
        doc.update(layer=report.single.layer, **head_dict(report.single))
    else:
        doc["layers"] = [{"layer": layer.layer, "heads": [head_dict(h) for h in layer.heads]}
                         for layer in report.layers]
    return doc


def token_rows(ids: list[int], texts: list[str]) -> list[dict]:
    """The tokens as every JSON document lists them: [{position, id, text}]."""
    return [{"position": i, "id": t, "text": s} for i, (t, s) in enumerate(zip(ids, texts))]


# --- lens ---


def lens_to_dict(lens) -> dict:
    """The JSON of `tracegpt lens --json`: one row per residual stage, one cell per position."""
    return {
        "model": lens.model,
        "prompt": lens.prompt,
        "tokens": token_rows(lens.token_ids, lens.tokens),
        "focus_position": lens.focus,
        "rows": [{"stage": stage, "layer": lens.layer(i),
                  "top": [{"id": c.id, "text": c.text, "prob": round(c.prob, 6)} for c in lens.top[i]]}
                 for i, stage in enumerate(lens.stages)],
        "final": {"id": lens.final_id, "text": lens.final_text,
                  "by_row": [{"stage": s, "rank": r, "prob": round(p, 6)}
                             for s, r, p in zip(lens.stages, lens.final_ranks, lens.final_probs)]},
    }


# --- explain ---

EXPLAIN_SCHEMA_VERSION = 1


def narration_to_dict(n) -> dict:
    """The JSON of `tracegpt explain --json`: the same walk as the view, as data."""
    return {"schema_version": EXPLAIN_SCHEMA_VERSION, "model": n.model, "prompt": n.prompt, "lang": n.lang,
            "title": n.title, "intro": n.intro, "tokens": token_rows(n.token_ids, n.tokens),
            "steps": [{"id": s.id, "title": s.title, "text": s.text, "numbers": s.numbers, "sources": s.sources}
                      for s in n.steps]}


# --- intervene ---

INTERVENE_SCHEMA_VERSION = 1


def intervention_to_dict(result) -> dict:
    """The JSON of `tracegpt intervene --json`: before and after over the same token ids, and what was done."""
    def side(after: bool) -> dict:
        return {"top": [{"id": r.id, "text": r.text, "logit": _num(r.logit_after if after else r.logit_before),
                         "prob": _num(r.prob_after if after else r.prob_before),
                         "rank": r.rank_after if after else r.rank_before} for r in result.rows]}

    return {
        "schema_version": INTERVENE_SCHEMA_VERSION, "model": result.model, "prompt": result.prompt,
        "tokens": token_rows(result.token_ids, result.tokens), "position": result.position,
        "interventions": [{"kind": d.kind, "spec": d.text, "site": d.site, "layer": d.layer, "no_op": d.no_op,
                           **{k: _num(v) if isinstance(v, float) else v for k, v in d.detail.items()}}
                          for d in result.done],
        "before": side(False), "after": side(True), "kl_bits": _num(result.kl_bits),
        "top_changed": result.top_changed,
        "cut_rows": [{"layer": r.layer, "head": r.head, "query": r.query, "before": [_num(w) for w in r.before],
                      "after": [_num(w) for w in r.after]} for r in result.cut_rows],
    }


# --- neuron ---

NEURON_SCHEMA_VERSION = 1


def neuron_to_dict(report) -> dict:
    """The JSON of `tracegpt neuron --json`: what it writes; with an index, where it fires; with --prompt, on it."""
    n = report.neuron
    doc = {
        "schema_version": NEURON_SCHEMA_VERSION, "model": report.model,
        "neuron": {"name": n.text, "layer": n.layer, "index": n.index, "site": report.site, "d_mlp": report.d_mlp},
        "writes": {"norm": _exact(report.writes.norm),
                   "method": "its row of the MLP's output projection, centred, times the final LayerNorm's weight, "
                             "times the unembedding: the logit change per unit of activation, before the final "
                             "LayerNorm's division by the stream's spread (its direct effect only)",
                   "up": [{"id": p.id, "text": p.text, "value": _exact(p.value)} for p in report.writes.up],
                   "down": [{"id": p.id, "text": p.text, "value": _exact(p.value)} for p in report.writes.down]},
        "index": None, "contexts": None, "distribution": None, "prompt": None,
    }
    if report.index is not None:
        doc["index"] = {"file": report.index.file, "corpus": report.index.corpus, "tokens": report.index.n_tokens,
                        "window": report.index.window}
        doc["contexts"] = [{"rank": rank, "activation": _exact(c.activation), "corpus_position": c.position,
                            "firing": c.firing,
                            "tokens": [{"id": i, "text": t, "activation": _exact(v)}
                                       for i, t, v in zip(c.token_ids, c.tokens, c.values)]}
                           for rank, c in enumerate(report.contexts, 1)]
        d = report.distribution
        doc["distribution"] = {"tokens": d.n_tokens, "mean": _exact(d.mean), "frac_active": _exact(d.frac_active),
                               "max": _exact(d.maximum),
                               "quantiles": [{"level": q, "value": _exact(v)} for q, v in d.quantiles]}
    p = report.prompt
    if p is not None:
        s = p.standing
        doc["prompt"] = {
            "text": p.prompt,
            "tokens": [{"position": i, "id": t, "text": s_, "activation": _exact(v)}
                       for i, (t, s_, v) in enumerate(zip(p.token_ids, p.tokens, p.values))],
            "max": {"position": p.top, "activation": _exact(p.values[p.top])},
            "standing": None if s is None else {
                "above_level": None if s.over is None else s.over[0],
                "above_value": None if s.over is None else _exact(s.over[1]),
                "below_level": None if s.under is None else s.under[0],
                "below_value": None if s.under is None else _exact(s.under[1]),
                "above_corpus_max": s.beyond_max},
        }
    return doc
