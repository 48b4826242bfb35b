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


# --- patch ---

PATCH_SCHEMA_VERSION = 1


def patching_to_dict(result) -> dict:
    """The JSON of `tracegpt patch --json`: each sweep's exact values and first-order estimates."""
    return {
        "schema_version": PATCH_SCHEMA_VERSION, "model": result.model, "clean": result.clean,
        "corrupt": result.corrupt, "tokens": [{"position": i, "clean": a, "corrupt": b}
                                              for i, (a, b) in enumerate(zip(result.tokens, result.corrupt_tokens))],
        "answer": {"id": result.answer, "text": result.answer_text},
        "wrong": {"id": result.wrong, "text": result.wrong_text},
        "metric": {"clean": _num(result.metric_clean), "corrupt": _num(result.metric_corrupt)},
        "sweeps": [{"kind": s.kind, "rows": s.rows, "columns": s.columns,
                    "values": [[_num(v) for v in row] for row in s.values],
                    "estimates": [[_num(v) for v in row] for row in s.estimates]} for s in result.sweeps],
    }


# --- attribute ---

ATTRIBUTE_SCHEMA_VERSION = 1


def attribution_to_dict(a) -> dict:
    """The JSON of `tracegpt attribute --json`: every term, and the logit they add up to."""
    def token(i, text, logit, prob, rank):
        return {"id": i, "text": text, "logit": _exact(logit), "prob": _exact(prob), "rank": rank}

    split = a.neurons
    return {
        "schema_version": ATTRIBUTE_SCHEMA_VERSION, "model": a.model, "prompt": a.prompt,
        "tokens": token_rows(a.token_ids, a.tokens), "position": a.position,
        "token": token(a.target, a.target_text, a.target_logit, a.prob, a.rank),
        "vs": None if a.vs is None else token(a.vs, a.vs_text, a.vs_logit, a.vs_prob, a.vs_rank),
        "logit": _exact(a.logit), "total": _exact(a.total), "sigma": _exact(a.sigma),
        "terms": [{"kind": t.kind, "layer": t.layer, "head": t.head, "value": _exact(t.value)} for t in a.terms],
        "neurons": None if split is None else {
            "layer": split.layer, "mlp": _exact(split.mlp), "bias": _exact(split.bias), "total": _exact(split.total),
            "neurons": [{"index": n.index, "activation": _exact(n.activation), "weight": _exact(n.weight),
                         "value": _exact(n.value)} for n in split.neurons]},
    }


def attribution_arrays(a) -> dict[str, np.ndarray]:
    """--save: the terms (and what they were computed from) as arrays; terms[i] = vectors[i] · readout,
    but for the last term, the final LayerNorm's bias, which is read without the division by sigma."""
    arrays = {
        "terms": np.array([t.value for t in a.terms]),
        "term_kind": np.array([t.kind for t in a.terms]),
        "term_layer": np.array([-1 if t.layer is None else t.layer for t in a.terms]),
        "term_head": np.array([-1 if t.head is None else t.head for t in a.terms]),
        "vectors": np.array(a.vectors), "readout": np.array(a.readout), "head_terms": np.array(a.heads()),
        "logit": np.array(a.logit), "sigma": np.array(a.sigma), "position": np.array(a.position),
        "token": np.array(a.target), "vs": np.array(-1 if a.vs is None else a.vs),
    }
    if a.neurons is not None:
        arrays["neuron_values"] = np.array([n.value for n in a.neurons.neurons])
        arrays["neuron_activations"] = np.array([n.activation for n in a.neurons.neurons])
        arrays["neuron_weights"] = np.array([n.weight for n in a.neurons.neurons])
        arrays["neuron_layer"] = np.array(a.neurons.layer)
    return arrays


def save_attribution(a, path: str | Path) -> Path:
    return write_npz(path, attribution_arrays(a))


# --- heads ---

HEADS_SCHEMA_VERSION = 1


def heads_to_dict(m) -> dict:
    """The JSON of `tracegpt heads --json`: every head's scores, role and ablated losses."""
    from .analysis.heads import ROLE_SHARE

    return {
        "schema_version": HEADS_SCHEMA_VERSION, "model": m.model, "source": m.source, "prompt": m.prompt,
        "tokens": [{"position": i, "text": t} for i, t in enumerate(m.tokens)],
        "probe": None if m.source != "probe" else {"seed": m.seed, "n_probes": m.n_probes, "half": m.half,
                                                   "start": {"id": m.start, "text": m.start_text}},
        "n_tokens": m.n_tokens,
        "loss": {"repeated": _num(m.loss_repeated) if m.loss_repeated is not None else None,
                 "other": _num(m.loss_other) if m.loss_other is not None else None,
                 "n_repeated": m.n_repeated, "n_other": m.n_other, "chance": _num(m.chance_loss)},
        "checked": m.checked, "role_share": ROLE_SHARE,
        "heads": [{"layer": h.layer, "head": h.head, "role": h.role, "strongest": h.strongest,
                   "scores": {"previous": _num(h.previous), "first": _num(h.first), "self": _num(h.itself),
                              "duplicate": None if h.duplicate is None else _num(h.duplicate),
                              "induction": None if h.induction is None else _num(h.induction)},
                   "entropy_bits": _num(h.entropy_bits),
                   "loss_ablated": None if h.loss_ablated is None else _num(h.loss_ablated),
                   "loss_ablated_other": None if h.loss_ablated_other is None else _num(h.loss_ablated_other)}
                  for h in m.heads],
    }
