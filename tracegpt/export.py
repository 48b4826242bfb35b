"""Data out of tracegpt: the JSON documents the commands print, and the .npz files of --save.

The trace JSON holds summaries (shape, mean, std, min, max, the focus position's L2 norm) and
small previews; full tensors go to the .npz, keyed by the same stage names. Every other
document is the analysis's own dataclasses, field by field, so a view and its JSON agree.
"""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import stages
from .analysis.forward import next_tokens, rest_of
from .analysis.numbers import norm, std
from .files import replacing
from .tracer import Trace, check_position

SCHEMA_VERSION = 1
PREVIEW = 8  # numbers of the focus vector shown per stage


def focus_slice(trace: Trace, name: str, focus: int) -> torch.Tensor:
    return trace[name].select(stages.position_axis(name), focus)


def number(x: float | None) -> float | None:
    """Every float of every document: nine significant digits, enough to read back the float32 the model
    computed; null for a value that is not finite (or absent)."""
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.9g}") if math.isfinite(x) else None


def stage_summary(trace: Trace, name: str, focus: int) -> dict:
    t = trace[name]
    entry = {"name": name, "layer": stages.layer_of(name), "shape": list(t.shape)}
    if not t.is_floating_point():
        entry.update(mean=None, std=None, min=None, max=None, focus_norm=None)
        entry["preview"] = focus_slice(trace, name, focus).tolist() if t.dim() > 1 else t.tolist()
        return entry
    f = t.float()
    sl = focus_slice(trace, name, focus).float()
    entry.update(mean=number(f.mean()), std=number(std(f)), min=number(f.min()), max=number(f.max()),
                 focus_norm=number(norm(sl)))
    if stages.kind(name) == "attn.weights":
        entry["preview"] = [[number(w) for w in row] for row in sl]  # each head's row for the focus
    else:
        entry["preview"] = [number(v) for v in sl.flatten()[:PREVIEW]]
    return entry


def guess_dicts(guesses) -> list[dict]:
    return [{"id": g.id, "text": g.text, "logit": number(g.logit), "prob": number(g.prob)} for g in guesses]


def trace_to_dict(trace: Trace, token_text, focus: int | None = None, top_k: int = 10) -> dict:
    """The JSON document: model, tokens, every recorded stage summarised, the next-token top-k."""
    focus = check_position(trace.n_tokens, focus)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "model": trace.model,
        "prompt": trace.prompt,
        "focus_position": focus,
        "tokens": token_rows(trace.token_ids, trace.token_texts, trace.token_bytes),
        "stages": [stage_summary(trace, n, focus) for n in trace.names()],
    }
    if "logits" in trace:
        top = next_tokens(trace, focus, top_k, token_text)
        rest = rest_of(top, trace.model["vocab_size"])
        doc["next_token"] = {"position": focus, "top": guess_dicts(top),
                             "rest": {"n": rest.n, "prob": number(rest.prob)}}
    return doc


def npz_array(t: torch.Tensor) -> np.ndarray:
    """A stage as numpy keeps it: half types as float32, which numpy reads everywhere."""
    return (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()


@dataclass
class Saved:
    """What an .npz holds once written: for the line that says so."""

    path: Path
    arrays: int
    bytes: int


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Saved:
    """Arrays to an .npz file, by name; the file at `path` is replaced only once the new one is whole."""
    with replacing(path) as f:
        np.savez(f, **arrays)
    return Saved(Path(path), len(arrays), Path(path).stat().st_size)


def save_npz(trace: Trace, path: str | Path) -> Saved:
    """Every recorded stage as a numpy array under its stage name (float32 for half types), and the
    tokens' texts (token_texts, beside the ids of the `tokens` stage)."""
    arrays = {name: npz_array(trace[name]) for name in trace.names()}
    return write_npz(path, arrays | {"token_texts": np.array(trace.token_texts)})


def step_arrays(step) -> dict[str, np.ndarray]:
    """A generation step's recorded stages (its new positions), under step{N}/{stage name}."""
    return {f"step{step.number}/{name}": npz_array(t) for name, t in step.stages.items()}


def generation_arrays(ids: list[int], n_prompt: int, token_text) -> dict[str, np.ndarray]:
    return {"token_ids": np.array(ids, dtype=np.int64), "n_prompt_tokens": np.array(n_prompt, dtype=np.int64),
            "token_texts": np.array([token_text(i) for i in ids])}


# --- generate: one JSON object per step, then one when it is done ---

GENERATE_SCHEMA_VERSION = 1


def candidate_dict(c) -> dict:
    return {"id": c.id, "text": c.text, "prob": number(c.prob), "logit": number(c.logit)}


def pipeline_dict(step) -> list[dict]:
    return [{"rank": c.rank, "id": c.id, "text": c.text, "logit": number(c.logit), "scaled": number(c.scaled),
             "p_temperature": number(c.p_temperature), "in_top_k": c.in_top_k, "in_top_p": c.in_top_p,
             "prob": number(c.prob), "slice_start": number(c.cum_start)} for c in step.sampled.candidates]


def step_event(step, with_pipeline: bool = False) -> dict:
    s = step.sampled
    a = step.attention
    event = {
        "schema_version": GENERATE_SCHEMA_VERSION, "event": "step", "step": step.number, "id": step.token_id,
        "text": step.text, "prob": number(step.prob),
        "top": [candidate_dict(c) for c in s.top(5)],
        "model_prob": number(s.model_prob), "draw": None if s.draw is None else number(s.draw),
        "n_top_k": s.n_top_k, "n_top_p": s.n_top_p, "mass_top_p": number(s.mass_top_p),
        "attention": None if a is None else {"layer": a.layer, "head": a.head, "position": a.position,
                                             "text": a.text, "weight": number(a.weight)},
        "position": step.position, "context_length": step.position, "positions_computed": step.n_computed,
        "cache_length": step.cache_length, "seconds": number(step.seconds),
    }
    if with_pipeline:
        event["pipeline"] = pipeline_dict(step)
    return event


def done_event(gen, prompt: str, comparison=None) -> dict:
    """The last line of `generate --json`: the text, why it stopped, what it cost (and the plain run's text)."""
    s = gen.summary()
    done = {"schema_version": GENERATE_SCHEMA_VERSION, "event": "done", "prompt": prompt, "text": gen.text(),
            "n_prompt_tokens": s.n_prompt_tokens,
            "stop_reason": s.stop_reason, "seed": None if gen.settings.is_greedy else gen.seed,
            "token_ids": gen.new_ids, "n_new_tokens": s.n_new_tokens, "seconds": s.seconds,
            "tokens_per_s": s.tokens_per_s, "first_step_seconds": s.first_step_seconds, "use_cache": s.use_cache,
            "positions_with_cache": s.positions_with_cache, "positions_without_cache": s.positions_without_cache,
            "cache_bytes": s.cache_bytes}
    if comparison is not None:
        done["compare"] = {"seed": comparison.seed, "text": comparison.plain_text, "token_ids": comparison.plain_ids,
                           "first_difference": comparison.step}
    return {k: number(v) if isinstance(v, float) else v for k, v in done.items()}


# --- attn: one document for one head or several ---

ATTN_SCHEMA_VERSION = 1


def _matrix(rows) -> list[list[float | None]]:
    return [[number(v) for v in row] for row in rows]


def worked_dict(w) -> dict:
    return {
        "layer": w.layer, "head": w.head, "query": w.query, "key": w.key, "d_head": w.d_head, "dims": w.dims,
        "q": [number(x) for x in w.q], "k": [number(x) for x in w.k], "products": [number(x) for x in w.products],
        "dot_shown": number(w.dot_shown), "dot": number(w.dot), "scale": w.scale, "score": number(w.score),
        "recorded_score": number(w.recorded_score), "row_max": number(w.row_max),
        "row": [{"key": r.key, "score": number(r.score), "exp": number(r.exp), "weight": number(r.weight)}
                for r in w.row],
        "masked_keys": w.masked_keys, "sum_exp": number(w.sum_exp), "exp": number(w.exp), "weight": number(w.weight),
        "recorded_weight": number(w.recorded_weight), "v": [number(x) for x in w.v],
        "weighted_v": [number(x) for x in w.weighted_v], "mix": [number(x) for x in w.mix],
        "pulls": [{"key": p.key, "weight": number(p.weight), "weighted_v": [number(x) for x in p.weighted_v]}
                  for p in w.pulls],
        "scale_text": w.scale_text,
    }


def head_dict(h) -> dict:
    p = h.pattern
    entry = {
        "head": h.head, "scale": h.scale, "scale_text": h.scale_text, "weights": _matrix(h.weights),
        "scores": _matrix(h.scores),
        "focus": {"position": h.focus.position,
                  "top": [{"position": t.position, "weight": number(t.weight)} for t in h.focus.top],
                  "entropy_bits": number(h.focus.entropy_bits), "max_entropy_bits": number(h.focus.max_entropy_bits)},
        "pattern": {"name": p.name, "share": number(p.share), "shares": {k: number(v) for k, v in p.shares.items()},
                    "entropy_ratio": number(p.entropy_ratio)},
    }
    if h.worked is not None:
        entry["worked"] = worked_dict(h.worked)
    return entry


def attention_to_dict(report) -> dict:
    """The JSON of `tracegpt attn --json`: one head's fields at the top level, several under `layers`."""
    doc = {
        "schema_version": ATTN_SCHEMA_VERSION, "model": report.model, "prompt": report.prompt,
        "focus_position": report.focus_position,
        "tokens": token_rows(report.token_ids, report.tokens, report.token_bytes),
        "mask": report.mask, "all_heads": report.all_heads,
    }
    if report.single is not None:
        doc.update(layer=report.single.layer, **head_dict(report.single))
    else:
        doc["layers"] = [{"layer": layer.layer, "heads": [head_dict(h) for h in layer.heads]}
                         for layer in report.layers]
    return doc


def token_rows(ids: list[int], texts: list[str], raw: list[bytes] | None = None) -> list[dict]:
    """The tokens as every JSON document lists them: [{position, id, text}].

    A token that holds part of a UTF-8 character also gives its `bytes`, and its `text` is what it
    adds to the text decoded so far ("" until the character is complete), so the texts join back
    into the prompt: `jq -j '.tokens[].text'` prints 我, not \\xe6\\x88\\x91.
    """
    rows = [{"position": i, "id": t, "text": s} for i, (t, s) in enumerate(zip(ids, texts))]
    if raw is None:
        return rows
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for row, piece in zip(rows, raw):
        text = decoder.decode(piece)
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            row.update(text=text, bytes=list(piece))
    return rows


# --- lens ---

LENS_SCHEMA_VERSION = 1


def lens_to_dict(lens) -> dict:
    """The JSON of `tracegpt lens --json`: one row per residual stage, one cell per position."""
    return {
        "schema_version": LENS_SCHEMA_VERSION,
        "model": lens.model,
        "prompt": lens.prompt,
        "tokens": token_rows(lens.token_ids, lens.tokens, lens.token_bytes),
        "focus_position": lens.focus,
        "rows": [{"stage": stage, "layer": lens.layer(i),
                  "top": [{"id": c.id, "text": c.text, "prob": number(c.prob)} for c in lens.top[i]]}
                 for i, stage in enumerate(lens.stages)],
        "final": {"id": lens.final_id, "text": lens.final_text,
                  "by_row": [{"stage": s, "rank": r, "prob": number(p)}
                             for s, r, p in zip(lens.stages, lens.final_ranks, lens.final_probs)]},
    }


# --- explain ---

EXPLAIN_SCHEMA_VERSION = 1


def narration_to_dict(n) -> dict:
    """The JSON of `tracegpt explain --json`: the same walk as the view, as data."""
    return {"schema_version": EXPLAIN_SCHEMA_VERSION, "model": n.model, "prompt": n.prompt, "lang": n.lang,
            "title": n.title, "intro": n.intro, "tokens": token_rows(n.token_ids, n.tokens, n.token_bytes),
            "steps": [{"id": s.id, "title": s.title, "text": s.text,
                       "numbers": {k: number(v) if isinstance(v, float) else v for k, v in s.numbers.items()},
                       "sources": s.sources} for s in n.steps]}


# --- intervene ---

INTERVENE_SCHEMA_VERSION = 1


def intervention_to_dict(result) -> dict:
    """The JSON of `tracegpt intervene --json`: before and after over the same token ids, and what was done."""
    def side(after: bool) -> dict:
        return {"top": [{"id": r.id, "text": r.text, "logit": number(r.logit_after if after else r.logit_before),
                         "prob": number(r.prob_after if after else r.prob_before),
                         "rank": r.rank_after if after else r.rank_before} for r in result.rows]}

    return {
        "schema_version": INTERVENE_SCHEMA_VERSION, "model": result.model, "prompt": result.prompt,
        "tokens": token_rows(result.token_ids, result.tokens, result.token_bytes), "position": result.position,
        "interventions": [{"kind": d.kind, "spec": d.text, "site": d.site, "layer": d.layer, "no_op": d.no_op,
                           **{k: number(v) if isinstance(v, float) else v for k, v in d.detail.items()}}
                          for d in result.done],
        "before": side(False), "after": side(True), "kl_bits": number(result.kl_bits),
        "top_changed": result.top_changed,
        "cut_rows": [{"layer": r.layer, "head": r.head, "query": r.query, "before": [number(w) for w in r.before],
                      "after": [number(w) for w in r.after]} for r in result.cut_rows],
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
        "metric": {"clean": number(result.metric_clean), "corrupt": number(result.metric_corrupt)},
        "sweeps": [{"kind": s.kind, "rows": s.rows, "columns": s.columns,
                    "values": [[number(v) for v in row] for row in s.values],
                    "estimates": [[number(v) for v in row] for row in s.estimates]} for s in result.sweeps],
    }


# --- score: one JSON object per scored token, then one with the summary ---
# (numbers with _exact's significant digits: a probability of 2e-07 must not print as 0)


def score_token_event(model: str, t) -> dict:
    """One analysis.scoring.TokenScore as a JSON Lines event."""
    return {"event": "token", "model": model, "position": t.position, "id": t.id, "text": t.text,
            "prob": number(t.prob), "bits": number(t.bits), "rank": t.rank, "context": t.context,
            "top": [{"id": c.id, "text": c.text, "prob": number(c.prob)} for c in t.top]}


def score_summary_dict(s) -> dict:
    """An analysis.scoring.Summary, with the windows it was scored in."""
    plan = s.plan
    return {"model": s.model, "n_tokens": s.n_tokens, "n_scored": s.n_scored, "n_bytes": s.n_bytes,
            "total_bits": number(s.total_bits), "bits_per_token": number(s.bits_per_token),
            "nats_per_token": number(s.nats_per_token), "bits_per_char": number(s.bits_per_char),
            "perplexity": number(s.perplexity), "n_top1": s.n_top1,
            "windows": {"window": plan.window, "stride": plan.stride, "n_windows": plan.n_windows,
                        "min_context": plan.min_context}}


def score_done_event(s) -> dict:
    return {"event": "done", **score_summary_dict(s)}


def score_worked_event(model: str, w) -> dict:
    """One position worked out (analysis.scoring.Worked): the distribution's top and the cross-entropy."""
    def candidate(c) -> dict:
        return {"rank": c.rank, "id": c.id, "text": c.text, "logit": number(c.logit), "prob": number(c.prob),
                "is_true": c.is_true}

    return {"event": "position", "model": model, "position": w.position, "context_start": w.context_start,
            "n_vocab": w.n_vocab, "true": candidate(w.true), "top": [candidate(c) for c in w.candidates],
            "max_logit": number(w.max_logit), "logsumexp": number(w.logsumexp), "nats": number(w.nats),
            "bits": number(w.bits), "prob": number(w.prob)}


def score_comparison_event(c, spans) -> dict:
    """Two models on one text (analysis.scoring.Comparison), per word; `spans` are the words listed."""
    return {"event": "comparison", "models": [s.model for s in c.summaries], "n_words": len(c.spans),
            "n_bytes": c.n_bytes, "bits": [number(b) for b in c.bits],
            "bits_per_char": [number(b) for b in c.bits_per_char], "n_first_better": c.n_first_better,
            "words": [{"start": s.start, "end": s.end, "text": s.text, "bits": [number(b) for b in s.bits],
                       "bits_per_char": [number(b) for b in s.bits_per_char], "difference": number(s.difference)}
                      for s in spans]}


def save_score_npz(path: str | Path, scores: dict) -> Saved:
    """Per-token arrays of each analysis.scoring.Score, indexed by position, under '{prefix}ids' and so on.

    `scores` maps a key prefix ('' for the model scored, 'vs/' for the second) to a Score. Position 0
    is never scored: its prob and bits are NaN, its rank 0.
    """
    arrays = {}
    for prefix, s in scores.items():
        r = s.scored
        arrays.update({f"{prefix}ids": r.ids, f"{prefix}probs": r.probs, f"{prefix}bits": r.bits,
                       f"{prefix}ranks": r.ranks, f"{prefix}context": r.context, f"{prefix}top_ids": r.top_ids,
                       f"{prefix}top_probs": r.top_probs, f"{prefix}n_bytes": s.n_bytes})
    return write_npz(path, arrays)
# --- neuron ---

NEURON_SCHEMA_VERSION = 1


def neuron_to_dict(report) -> dict:
    """The JSON of `tracegpt neuron --json`: what it writes; with an index, where it fires; with --prompt, on it."""
    n = report.neuron
    doc = {
        "schema_version": NEURON_SCHEMA_VERSION, "model": report.model,
        "neuron": {"name": n.text, "layer": n.layer, "index": n.index, "site": report.site, "d_mlp": report.d_mlp},
        "writes": {"norm": number(report.writes.norm),
                   "method": "its row of the MLP's output projection, centred, times the final LayerNorm's weight, "
                             "times the unembedding: the logit change per unit of activation, before the final "
                             "LayerNorm's division by the stream's spread (its direct effect only)",
                   "up": [{"id": p.id, "text": p.text, "value": number(p.value)} for p in report.writes.up],
                   "down": [{"id": p.id, "text": p.text, "value": number(p.value)} for p in report.writes.down]},
        "index": None, "contexts": None, "distribution": None, "prompt": None,
    }
    if report.index is not None:
        doc["index"] = {"file": report.index.file, "corpus": report.index.corpus, "tokens": report.index.n_tokens,
                        "window": report.index.window}
        doc["contexts"] = [{"rank": rank, "activation": number(c.activation), "corpus_position": c.position,
                            "firing": c.firing,
                            "tokens": [{"id": i, "text": t, "activation": number(v)}
                                       for i, t, v in zip(c.token_ids, c.tokens, c.values)]}
                           for rank, c in enumerate(report.contexts, 1)]
        d = report.distribution
        doc["distribution"] = {"tokens": d.n_tokens, "mean": number(d.mean), "frac_active": number(d.frac_active),
                               "max": number(d.maximum),
                               "quantiles": [{"level": q, "value": number(v)} for q, v in d.quantiles]}
    p = report.prompt
    if p is not None:
        s = p.standing
        doc["prompt"] = {
            "text": p.prompt,
            "tokens": [{"position": i, "id": t, "text": s_, "activation": number(v)}
                       for i, (t, s_, v) in enumerate(zip(p.token_ids, p.tokens, p.values))],
            "max": {"position": p.top, "activation": number(p.values[p.top])},
            "standing": None if s is None else {
                "above_level": None if s.over is None else s.over[0],
                "above_value": None if s.over is None else number(s.over[1]),
                "below_level": None if s.under is None else s.under[0],
                "below_value": None if s.under is None else number(s.under[1]),
                "above_corpus_max": s.beyond_max},
        }
    return doc
# --- attribute ---

ATTRIBUTE_SCHEMA_VERSION = 1


def attribution_to_dict(a) -> dict:
    """The JSON of `tracegpt attribute --json`: every term, and the logit they add up to."""
    def token(i, text, logit, prob, rank):
        return {"id": i, "text": text, "logit": number(logit), "prob": number(prob), "rank": rank}

    split = a.neurons
    return {
        "schema_version": ATTRIBUTE_SCHEMA_VERSION, "model": a.model, "prompt": a.prompt,
        "tokens": token_rows(a.token_ids, a.tokens), "position": a.position,
        "token": token(a.target, a.target_text, a.target_logit, a.prob, a.rank),
        "vs": None if a.vs is None else token(a.vs, a.vs_text, a.vs_logit, a.vs_prob, a.vs_rank),
        "logit": number(a.logit), "total": number(a.total), "sigma": number(a.sigma),
        "terms": [{"kind": t.kind, "layer": t.layer, "head": t.head, "value": number(t.value)} for t in a.terms],
        "neurons": None if split is None else {
            "layer": split.layer, "mlp": number(split.mlp), "bias": number(split.bias), "total": number(split.total),
            "neurons": [{"index": n.index, "activation": number(n.activation), "weight": number(n.weight),
                         "value": number(n.value)} for n in split.neurons]},
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


def save_attribution(a, path: str | Path) -> Saved:
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
        "loss": {"repeated": number(m.loss_repeated) if m.loss_repeated is not None else None,
                 "other": number(m.loss_other) if m.loss_other is not None else None,
                 "n_repeated": m.n_repeated, "n_other": m.n_other, "chance": number(m.chance_loss)},
        "checked": m.checked, "role_share": ROLE_SHARE,
        "heads": [{"layer": h.layer, "head": h.head, "role": h.role, "strongest": h.strongest,
                   "scores": {"previous": number(h.previous), "first": number(h.first), "self": number(h.itself),
                              "duplicate": None if h.duplicate is None else number(h.duplicate),
                              "induction": None if h.induction is None else number(h.induction)},
                   "entropy_bits": number(h.entropy_bits),
                   "loss_ablated": None if h.loss_ablated is None else number(h.loss_ablated),
                   "loss_ablated_other": None if h.loss_ablated_other is None else number(h.loss_ablated_other)}
                  for h in m.heads],
    }
