"""A trace as data: the JSON document of `tracegpt trace --json`, and the .npz of `--save`.

The JSON holds summaries (shape, mean, std, min, max, the focus position's L2 norm) and
small previews; full tensors go to the .npz, keyed by the same stage names.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .errors import TraceGPTError, UsageError
from . import stages
from .tracer import Trace

SCHEMA_VERSION = 1
PREVIEW = 8  # numbers of the focus vector shown per stage


def check_position(trace: Trace, position: int | None) -> int:
    """The focus position, counted from 0; negative counts from the end (-1 = last, the default)."""
    n = trace.n_tokens
    position = -1 if position is None else position
    if not -n <= position < n:
        raise UsageError(f"--position {position} is out of range; the prompt has positions 0..{n - 1} (or -{n}..-1)")
    return position % n


def layer_of(name: str) -> int | None:
    return int(name.split(".")[1]) if name.startswith("blocks.") else None


def focus_slice(trace: Trace, name: str, focus: int) -> torch.Tensor:
    t = trace[name]
    return t.select(stages.position_axis(name), focus)


def _num(x: float) -> float | None:
    x = float(x)
    return round(x, 6) if math.isfinite(x) else None


def stage_summary(trace: Trace, name: str, focus: int) -> dict:
    t = trace[name]
    entry = {"name": name, "layer": layer_of(name), "shape": list(t.shape)}
    if not t.is_floating_point():
        entry.update(mean=None, std=None, min=None, max=None, focus_norm=None)
        entry["preview"] = focus_slice(trace, name, focus).tolist() if t.dim() > 1 else t.tolist()
        return entry
    f = t.float()
    sl = focus_slice(trace, name, focus).float()
    entry.update(mean=_num(f.mean()), std=_num(f.std()) if f.numel() > 1 else 0.0, min=_num(f.min()),
                 max=_num(f.max()), focus_norm=_num(sl.norm()))
    if name.endswith("attn.weights"):
        entry["preview"] = [[_num(w) for w in row] for row in sl]  # each head's row for the focus
    else:
        entry["preview"] = [_num(v) for v in sl.flatten()[:PREVIEW]]
    return entry


def top_tokens(trace: Trace, focus: int, k: int, encoding_text) -> list[dict]:
    logits = focus_slice(trace, "logits", focus).float()
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs, min(k, probs.numel()))
    return [{"id": int(i), "text": encoding_text(int(i)), "logit": _num(logits[i]), "prob": _num(p)}
            for p, i in zip(top.values, top.indices)]


def trace_to_dict(trace: Trace, token_text, focus: int | None = None, top_k: int = 10) -> dict:
    """The JSON document: model, tokens, every recorded stage summarised, the next-token top-k."""
    focus = check_position(trace, focus)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "model": trace.model,
        "prompt": trace.prompt,
        "focus_position": focus,
        "tokens": trace.token_rows(),
        "stages": [stage_summary(trace, n, focus) for n in trace.names()],
    }
    if "logits" in trace:
        doc["next_token"] = {"position": focus, "top": top_tokens(trace, focus, top_k, token_text)}
    return doc


def save_npz(trace: Trace, path: str | Path) -> Path:
    """Every recorded stage as a numpy array under its stage name (float32 for half types)."""
    path = Path(path)
    arrays = {}
    for name in trace.names():
        t = trace[name]
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        arrays[name] = t.numpy()
    try:
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        raise TraceGPTError(f"cannot write {path}: {e.strerror or e}") from None
    return path


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


def done_event(done: dict) -> dict:
    return {k: _num(v) if isinstance(v, float) else v for k, v in done.items()}
