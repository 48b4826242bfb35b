"""One forward pass followed at one position: the numbers `tracegpt trace` shows, stage by stage.

    summary = forward_summary(trace, focus=1, top_k=10, token_text=lm.token_text)

For each block: how LayerNorm rescales the followed token's vector, where each head takes its
attention from, how much the attention and FFN updates add to the residual stream, which
neurons fire. Then the final LayerNorm and the next-token candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import stages
from ..model import next_token_probs
from ..tracer import Trace
from .attention import score_formula
from .numbers import norm, std

TOP_NEURONS = 3


@dataclass
class Guess:
    """A next-token candidate: its id, text, logit and probability (softmax over the whole vocabulary)."""

    id: int
    text: str
    logit: float
    prob: float


@dataclass
class Rest:
    """What a list of candidates leaves out: how many tokens, holding how much probability together."""

    n: int
    prob: float


def rest_of(shown: list[Guess], n_tokens: int) -> Rest:
    """The tokens of a distribution over n_tokens that `shown` does not list."""
    return Rest(n_tokens - len(shown), max(0.0, 1.0 - sum(g.prob for g in shown)))


@dataclass
class Actual:
    """The token that really comes next in the prompt, as the model ranked it at the followed position."""

    guess: Guess
    rank: int  # 1 = the model's top guess


@dataclass
class HeadSource:
    """Where one head's followed row puts most of its weight, and its runner-up (None on a one-token prompt)."""

    head: int
    source: int
    weight: float
    second: int | None
    second_weight: float | None


@dataclass
class Neuron:
    index: int
    value: float


@dataclass
class BlockSummary:
    layer: int
    stream_in_std: float  # the residual stream entering the block
    ln1_std: float
    heads: list[HeadSource]
    attn_out_norm: float
    stream_in_norm: float
    resid_attn_norm: float
    resid_attn_std: float
    ln2_std: float
    d_mlp: int
    n_active: int  # neurons above 0 after the activation
    top_neurons: list[Neuron]
    mlp_out_norm: float
    resid_out_norm: float
    change_norm: float  # ‖resid_out − the stream entering‖: all the block changed; 0 for a block that learned nothing
    change_ratio: float  # that, over ‖the stream entering‖


@dataclass
class ForwardSummary:
    model: dict
    prompt: str
    focus: int
    tokens: list[str]
    token_ids: list[int]
    token_bytes: list[bytes]
    n_masked: int  # edges the causal mask removes
    embed_token_norm: float
    embed_position_norm: float
    embed_sum_norm: float
    blocks: list[BlockSummary]
    last_stream_std: float | None  # the last block's output, when recorded
    ln_f_std: float
    top: list[Guess]
    rest: Rest  # the rest of the vocabulary
    actual: Actual | None  # when the followed position is not the last: what the prompt has next
    tied: bool  # the logits reuse the token embedding (False: a separate output head)
    score_formula: str  # the score in the first block shown, as computed: Q·Kᵀ/√64, Q·Kᵀ/(√64·3)
    scaled_by_layer: bool  # the scale differs from block to block (scale_attn_by_inverse_layer_idx)


def actual_next(trace: Trace, position: int, token_text) -> Actual | None:
    """The prompt's own next token after `position`, with the model's probability and rank for it."""
    if position >= trace.n_tokens - 1:
        return None
    logits = trace["logits"].select(stages.position_axis("logits"), position).float()
    probs = next_token_probs(logits)
    token = trace.token_ids[position + 1]
    rank = int((probs > probs[token]).sum()) + 1
    return Actual(Guess(token, token_text(token), logits[token].item(), probs[token].item()), rank)


def next_tokens(trace: Trace, position: int, k: int, token_text) -> list[Guess]:
    """The k most likely next tokens after `position`, from its recorded logits."""
    logits = trace["logits"].select(stages.position_axis("logits"), position).float()
    probs = next_token_probs(logits)
    top = torch.topk(probs, min(k, probs.numel()))
    return [Guess(int(i), token_text(int(i)), logits[i].item(), p.item()) for p, i in zip(top.values, top.indices)]


def head_sources(weights: torch.Tensor, focus: int) -> list[HeadSource]:
    """weights: (n_head, T) rows of the followed query."""
    out = []
    for h, row in enumerate(weights):
        order = torch.argsort(row[: focus + 1].float(), descending=True).tolist()
        second = order[1] if len(order) > 1 else None
        out.append(HeadSource(h, order[0], row[order[0]].item(), second,
                              None if second is None else row[second].item()))
    return out


def block_summary(trace: Trace, layer: int, focus: int) -> BlockSummary:
    def at(kind: str) -> torch.Tensor:
        return trace[stages.block_stage(layer, kind)][focus]

    resid_attn, attn_out = at("resid_attn"), at("attn.out")
    stream_in = resid_attn - attn_out  # the stream entering the block, recovered exactly
    weights = trace[stages.block_stage(layer, "attn.weights")][:, focus, :]  # (n_head, T)
    change = at("resid_out").float() - stream_in.float()  # both updates of the block, added
    act = at("mlp.act").float()
    top = torch.topk(act, min(TOP_NEURONS, act.numel()))
    return BlockSummary(
        layer=layer, stream_in_std=std(stream_in), ln1_std=std(at("ln1")), heads=head_sources(weights, focus),
        attn_out_norm=norm(attn_out), stream_in_norm=norm(stream_in), resid_attn_norm=norm(resid_attn),
        resid_attn_std=std(resid_attn), ln2_std=std(at("ln2")), d_mlp=act.numel(), n_active=int((act > 0).sum()),
        top_neurons=[Neuron(int(i), v) for v, i in zip(top.values.tolist(), top.indices)],
        mlp_out_norm=norm(at("mlp.out")), resid_out_norm=norm(at("resid_out")), change_norm=norm(change),
        change_ratio=norm(change) / max(norm(stream_in), 1e-12))


def forward_summary(trace: Trace, focus: int, top_k: int, token_text,
                    layers: list[int] | None = None) -> ForwardSummary:
    """The followed position through every recorded block (or the chosen `layers`)."""
    n = trace.n_tokens
    m = trace.model
    last = stages.block_stage(m["n_layer"] - 1, "resid_out")
    layers = layers if layers is not None else trace.layers()
    scales = m["attn_scales"]
    first = layers[0] if layers else 0
    return ForwardSummary(
        model=trace.model, prompt=trace.prompt, focus=focus, tokens=list(trace.token_texts),
        token_ids=list(trace.token_ids), token_bytes=list(trace.token_bytes), n_masked=n * (n - 1) // 2,
        embed_token_norm=norm(trace["embed.token"][focus]), embed_position_norm=norm(trace["embed.position"][focus]),
        embed_sum_norm=norm(trace["embed.sum"][focus]),
        blocks=[block_summary(trace, layer, focus) for layer in layers],
        last_stream_std=std(trace[last][focus]) if last in trace else None, ln_f_std=std(trace["ln_f"][focus]),
        top=(top := next_tokens(trace, focus, top_k, token_text)), rest=rest_of(top, trace.model["vocab_size"]),
        actual=actual_next(trace, focus, token_text), tied=m["tie_embeddings"],
        score_formula=score_formula(scales[first], m["d_model"] // m["n_head"], first, qk="Q·Kᵀ"),
        scaled_by_layer=len(set(scales)) > 1)
