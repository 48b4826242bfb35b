"""The compact GPT: exactly the GPT-2 architecture, written in the order it is explained.

tokens -> token embedding + position embedding -> blocks (LayerNorm -> attention -> add;
LayerNorm -> MLP -> add) -> final LayerNorm -> logits over the vocabulary.

Every intermediate tensor is shown to the taps (tracegpt.taps) that need it, under its stage
name (tracegpt.stages), and a tap may replace it. With no taps, or none that needs a block's
routing table, attention runs through torch's fused kernel; a tracer (tracegpt.tracer) is a
tap that keeps what it is asked for.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .taps import BlockTaps, Tap, plan


@dataclass
class GPTConfig:
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    d_model: int = 256  # width of the residual stream
    n_ctx: int = 256  # longest context (learned positions)
    vocab_size: int = 4096  # tokens, <|endoftext|> included
    d_mlp: int = 0  # hidden width of the MLP; 0 means 4 * d_model, as in GPT-2
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_new"  # GPT-2's tanh approximation of GELU
    tie_embeddings: bool = True  # the output head reuses the token embedding
    scale_attn_weights: bool = True  # divide scores by sqrt(d_head)
    scale_attn_by_inverse_layer_idx: bool = False  # also divide by (layer index + 1)
    upcast_attn: bool = False  # compute scores and softmax in float32 whatever the dtype
    dropout: float = 0.0  # only while training: regularises a small model that sees its corpus many times
    extra: dict = field(default_factory=dict, compare=False)  # notes carried from a checkpoint

    def __post_init__(self):
        if self.d_mlp == 0:
            self.d_mlp = 4 * self.d_model
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unsupported activation {self.activation!r}; supported: {', '.join(sorted(ACTIVATIONS))}"
            )

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head


def _gelu_tanh(x):
    # GPT-2's "gelu_new". The exact erf GELU differs by up to ~1e-3 and breaks parity.
    return F.gelu(x, approximate="tanh")


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    # Outside training, not even a call into torch: a decoding step is short enough for it to show.
    return F.dropout(x, p) if training and p > 0 else x


ACTIVATIONS = {
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}


class KVCache:
    """Keys and values of the positions already seen, one (k, v) pair per block."""

    def __init__(self, n_layer: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer

    def __len__(self) -> int:
        first = self.layers[0]
        return 0 if first is None else first[0].shape[-2]

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        past = self.layers[layer]
        if past is not None:
            k = torch.cat([past[0], k], dim=-2)
            v = torch.cat([past[1], v], dim=-2)
        self.layers[layer] = (k, v)
        return k, v

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for kv in self.layers if kv for t in kv)


class Linear(nn.Module):
    """y = x @ weight + bias, with weight stored [d_in, d_out] as GPT-2's own checkpoints store it.

    nn.Linear keeps [d_out, d_in] instead. A decoding step multiplies one vector by each weight,
    reading every weight once, and a CPU streams rows of [d_in, d_out] ~1.6× faster than it
    takes dot products with rows of [d_out, d_in] (GPT-2's Conv1D layout; Hugging Face's too).
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(d_out))
        if not self.weight.is_meta:  # on "meta" the weights come from a file, and normal_ would
            nn.init.normal_(self.weight, std=0.02)  # import a second of torch decompositions

    def forward(self, x):
        rows = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return rows.view(*x.shape[:-1], rows.shape[-1])


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = Linear(config.d_model, 3 * config.d_model)  # Q, K, V in one matmul
        self.c_proj = Linear(config.d_model, config.d_model)
        self.scale = 1.0
        if config.scale_attn_weights:
            self.scale /= math.sqrt(config.d_head)
        if config.scale_attn_by_inverse_layer_idx:
            self.scale /= layer_idx + 1
        self.upcast = config.upcast_attn
        self.layer_idx = layer_idx

    def split_heads(self, x):
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, x, at: BlockTaps, cache: KVCache | None = None):
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=2)
        q = at("attn.q", self.split_heads(q))  # what each token is looking for
        k = at("attn.k", self.split_heads(k))  # how each token can be found
        v = at("attn.v", self.split_heads(v))  # what each token carries
        if cache is not None:
            k, v = cache.extend(self.layer_idx, k, v)  # the past's keys and values, plus ours
        past = k.shape[-2] - q.shape[-2]
        if at.routing or self.upcast:
            mix = self.attend_step_by_step(q, k, v, past, at)
        else:
            mix = self.fused_attention(q, k, v, past)
        mix = at("attn.mix", mix)  # (B, nh, T, hs): each head's weighted pull of V
        B, nh, T, hs = mix.shape
        merged = mix.transpose(1, 2).reshape(B, T, nh * hs)  # heads side by side
        return at("attn.out", self.c_proj(merged))

    def attend_step_by_step(self, q, k, v, past, at: BlockTaps):
        dtype = q.dtype
        if self.upcast:
            q, k = q.float(), k.float()
        # Q·Kᵀ/√d_head, the scale applied to Q: a (T, d_head) multiply instead of a (T, T) one.
        computed = (q * self.scale) @ k.transpose(-2, -1)
        scores = at("attn.scores", computed)  # (B, nh, T, T+past)
        causal = causal_mask(q.shape[-2], past, q.device)
        mask = at("attn.mask", causal)  # True = edge kept
        changed = scores is not computed or mask is not causal
        if changed or self.upcast or at.wants("attn.weights"):
            weights = attention_weights(scores, mask, dtype)
            used = at("attn.weights", weights)  # each row: shares of the traffic
            if used is not weights or changed or self.upcast:
                return used @ v  # the routing table as edited (or upcast): V mixed by these very weights
        # The routing table as computed, only read: the fused kernel mixes V from the same q and k,
        # without writing out and rereading T×T weights (weights @ v to float rounding, and bit
        # for bit what a pass without taps computes).
        return self.fused_attention(q, k, v, past)

    def fused_attention(self, q, k, v, past):
        if past == 0:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        if q.shape[-2] == 1:  # one new token: every key is in its past, nothing to mask
            return F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        mask = causal_mask(q.shape[-2], past, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)


def attention_weights(scores: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Softmax over each row's kept edges: a masked (future) key gets exactly 0."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).to(dtype)


def head_outputs(mix: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each head's own write to the residual stream: its attn.mix through its rows of c_proj.

    mix (..., n_head, T, d_head) and c_proj's weight (d_model, d_out), stored [in, out] -> (..., n_head, T, d_out).
    Their sum over heads plus c_proj's bias is attn.out. The forward pass never computes them (it
    multiplies the joined heads once); a trace does, when they are read.
    """
    n_head, d_head = mix.shape[-3], mix.shape[-1]
    return mix @ weight.to(mix.device, mix.dtype).view(n_head, d_head, weight.shape[-1])


def next_token_probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1)


def causal_mask(n_new: int, n_past: int, device) -> torch.Tensor:
    """(n_new, n_past + n_new) booleans: query i may read key j only if j is not in its future."""
    rows = torch.arange(n_new, device=device)[:, None] + n_past
    cols = torch.arange(n_past + n_new, device=device)[None, :]
    return cols <= rows


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Linear(config.d_model, config.d_mlp)
        self.c_proj = Linear(config.d_mlp, config.d_model)
        self.act = ACTIVATIONS[config.activation]

    def forward(self, x, at: BlockTaps):
        pre = at("mlp.pre", self.c_fc(x))
        act = at("mlp.act", self.act(pre))
        return at("mlp.out", self.c_proj(act))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.dropout = config.dropout

    def forward(self, x, at: BlockTaps, cache: KVCache | None = None):
        # The residual stream x is revised by addition, never replaced.
        attn = self.attn(at("ln1", self.ln_1(x)), at, cache)
        x = at("resid_attn", x + dropout(attn, self.dropout, self.training))
        mlp = self.mlp(at("ln2", self.ln_2(x)), at)
        x = at("resid_out", x + dropout(mlp, self.dropout, self.training))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.n_ctx, config.d_model)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._decoding_copy: tuple[weakref.ref, int | None, torch.Tensor] | None = None

    def head_projection(self, layer: int) -> torch.Tensor:
        """Block `layer`'s attention output projection weight, (d_model, d_model) stored [in, out]: rows
        h·d_head..(h+1)·d_head are head h's (see head_outputs)."""
        return self.h[layer].attn.c_proj.weight.detach()

    def unembedding(self) -> torch.Tensor:
        """(vocab_size, d_model): logits = final vector @ this.T"""
        return self.wte.weight if self.lm_head is None else self.lm_head.weight

    def decoding_unembedding(self) -> torch.Tensor:
        """unembedding().T as a (d_model, vocab_size) copy of its own, for decoding on a CPU.

        The unembedding is a decoding step's largest read, multiplied by one vector; a CPU
        streams it faster stored this way round (see Linear). The copy costs the embedding's
        size again, so only runs with a KV cache ask for it; changed weights are copied anew.
        """
        w = self.unembedding()
        if w.device.type != "cpu" or (w.requires_grad and torch.is_grad_enabled()):
            return w.T
        version = None if w.is_inference() else w._version  # weights made under inference_mode keep no count
        kept = self._decoding_copy
        if kept is None or kept[0]() is not w or kept[1] != version:
            kept = self._decoding_copy = (weakref.ref(w), version, w.detach().T.contiguous())
        return kept[2]

    def unembed(self, x: torch.Tensor, decoding: bool = False) -> torch.Tensor:
        """Vectors after the final LayerNorm (..., d_model) -> logits (..., vocab_size)."""
        return x @ (self.decoding_unembedding() if decoding else self.unembedding().T)

    def read_out(self, residual: torch.Tensor) -> torch.Tensor:
        """The residual stream -> logits, as the forward pass ends: the final LayerNorm, then the unembedding."""
        return self.unembed(self.ln_f(residual))

    def forward(self, token_ids: torch.Tensor, taps: Sequence[Tap] | Tap = (), cache: KVCache | None = None,
                logits_from: int = 0):
        """token_ids (B, T) -> logits (B, T, vocab_size), each stage shown to the taps that need it.

        logits_from=k unembeds only positions k..T-1, giving (B, T - k, vocab_size): a scorer that
        needs only the later positions' predictions skips the rest of the unembedding, a third of
        GPT-2 small's work at 1024 tokens. Not with a tap that reads the logits.
        """
        past = 0 if cache is None else len(cache)
        T = token_ids.shape[1]
        if past + T > self.config.n_ctx:
            raise ValueError(f"{past + T} tokens do not fit the context of {self.config.n_ctx}")
        at = plan(taps, self.config.n_layer, self.wte.weight.dtype, offset=past, head_projection=self.head_projection)
        if logits_from and (at.wants("logits") or at.wants("probs")):
            raise ValueError("logits_from leaves out logits that a tap reads; run without it")
        at("tokens", token_ids)
        positions = torch.arange(past, past + T, device=token_ids.device)
        tok = at("embed.token", self.wte(token_ids))  # what each token is
        pos = at("embed.position", self.wpe(positions))  # where it stands: its address
        x = dropout(at("embed.sum", tok + pos), self.config.dropout, self.training)
        for i, block in enumerate(self.h):
            x = block(x, at.block(i), cache)
        x = at("ln_f", self.ln_f(x))
        logits = at("logits", self.unembed(x[:, logits_from:] if logits_from else x, decoding=cache is not None))
        if at.wants("probs"):
            at("probs", next_token_probs(logits))
        return logits

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
