"""The logit lens: what the model would predict if the residual stream stopped here.

After the embedding and after each block, every position's residual vector goes through the
final LayerNorm and the unembedding, exactly as the real output does after the last block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .loader import LoadedModel
from .tracer import Trace


@dataclass
class Lens:
    stages: list[str]  # the residual stream read at each row: embed.sum, blocks.0.resid_out, ...
    probs: torch.Tensor  # (rows, T, vocab): each row's distribution at each position
    top_ids: torch.Tensor  # (rows, T)
    top_probs: torch.Tensor  # (rows, T)
    focus: int
    final_id: int  # the model's real prediction at the focus position
    final_ranks: list[int]  # its rank (1 = top) at each row, for the focus position
    final_probs: list[float]  # its probability at each row, for the focus position


def residual_stages(n_layer: int) -> list[str]:
    return ["embed.sum"] + [f"blocks.{i}.resid_out" for i in range(n_layer)]


@torch.no_grad()
def logit_lens(lm: LoadedModel, trace: Trace, focus: int) -> Lens:
    stages = residual_stages(lm.config.n_layer)
    stream = torch.stack([trace[s] for s in stages]).to(lm.device, lm.model.wte.weight.dtype)  # (rows, T, d)
    logits = lm.model.ln_f(stream) @ lm.model.unembedding().T
    probs = torch.softmax(logits.float(), dim=-1).cpu()
    top_probs, top_ids = probs.max(dim=-1)
    final_id = int(top_ids[-1, focus])
    focus_probs = probs[:, focus, :]
    final_p = focus_probs[:, final_id]
    ranks = (focus_probs > final_p[:, None]).sum(dim=-1) + 1
    return Lens(stages=stages, probs=probs, top_ids=top_ids, top_probs=top_probs, focus=focus,
                final_id=final_id, final_ranks=ranks.tolist(), final_probs=final_p.tolist())


def lens_to_dict(lens: Lens, trace: Trace, token_text) -> dict:
    """The JSON of `tracegpt lens --json`: one row per residual stage, one cell per position."""
    return {
        "model": trace.model,
        "prompt": trace.prompt,
        "tokens": trace.token_rows(),
        "focus_position": lens.focus,
        "rows": [
            {"stage": stage, "layer": None if i == 0 else i - 1,
             "top": [{"id": int(t), "text": token_text(int(t)), "prob": round(float(p), 6)}
                     for t, p in zip(lens.top_ids[i], lens.top_probs[i])]}
            for i, stage in enumerate(lens.stages)
        ],
        "final": {"id": lens.final_id, "text": token_text(lens.final_id),
                  "by_row": [{"stage": s, "rank": r, "prob": round(p, 6)}
                             for s, r, p in zip(lens.stages, lens.final_ranks, lens.final_probs)]},
    }
