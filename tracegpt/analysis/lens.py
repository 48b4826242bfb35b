"""The logit lens: what the model would predict if the residual stream stopped here.

After the embedding and after each block, every position's residual vector goes through the
final LayerNorm and the unembedding (`GPT.read_out`), exactly as the real output does after
the last block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import stages
from ..loader import LoadedModel
from ..model import next_token_probs
from ..tracer import Trace


@dataclass
class Cell:
    """The top guess at one depth and position."""

    id: int
    text: str
    prob: float


@dataclass
class Lens:
    model: dict
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    stages: list[str]  # the residual stream read at each row: embed.sum, blocks.0.resid_out, ...
    probs: torch.Tensor  # (rows, T, vocab): each row's distribution at each position
    top: list[list[Cell]]  # rows × positions
    focus: int
    final_id: int  # the model's real prediction at the focus position
    final_text: str
    final_ranks: list[int]  # its rank (1 = top) at each row, for the focus position
    final_probs: list[float]  # its probability at each row, for the focus position
    tied: bool  # the unembedding is the token embedding again (False: a separate output head)
    token_bytes: list[bytes] = field(default_factory=list)
    actual: tuple[str, int, float] | None = None  # inside the prompt: its real next token, its rank and prob at the end

    def layer(self, row: int) -> int | None:
        """The block a row reads after (None for the embedding)."""
        return stages.layer_of(self.stages[row])

    @property
    def first_top_row(self) -> int | None:
        """The first row where the final prediction is already the top guess (None: only at the last)."""
        first = next(i for i, rank in enumerate(self.final_ranks) if rank == 1)
        return None if first == len(self.final_ranks) - 1 else first


def residual_stages(n_layer: int) -> list[str]:
    return stages.residual_stream(n_layer)


@torch.no_grad()
def logit_lens(lm: LoadedModel, trace: Trace, focus: int) -> Lens:
    rows = residual_stages(lm.config.n_layer)
    stream = torch.stack([trace[s] for s in rows]).to(lm.device, lm.model.wte.weight.dtype)  # (rows, T, d)
    probs = next_token_probs(lm.model.read_out(stream)).cpu()
    top_probs, top_ids = probs.max(dim=-1)
    final_id = int(top_ids[-1, focus])
    focus_probs = probs[:, focus, :]
    final_p = focus_probs[:, final_id]
    ranks = (focus_probs > final_p[:, None]).sum(dim=-1) + 1
    top = [[Cell(int(t), lm.token_text(int(t)), float(p)) for t, p in zip(ids, ps)]
           for ids, ps in zip(top_ids, top_probs)]
    actual = None
    if focus < trace.n_tokens - 1:  # the prompt says what really came next: how the model ranked it
        token = trace.token_ids[focus + 1]
        p = probs[-1, focus, token]
        actual = (lm.token_text(token), int((probs[-1, focus] > p).sum()) + 1, p.item())
    return Lens(model=trace.model, prompt=trace.prompt, tokens=list(trace.token_texts),
                token_ids=list(trace.token_ids), stages=rows, probs=probs, top=top, focus=focus,
                final_id=final_id, final_text=lm.token_text(final_id), final_ranks=ranks.tolist(),
                final_probs=final_p.tolist(), tied=lm.config.tie_embeddings, token_bytes=list(trace.token_bytes),
                actual=actual)
