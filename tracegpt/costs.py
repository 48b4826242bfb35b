"""What a trace will hold in memory, said before it is taken.

A full trace keeps every stage of every block. Most stages are (tokens x width), but the
attention scores and weights are (heads x tokens x tokens) per block, and the logits and
probabilities (tokens x vocabulary): for gpt2-xl and 1024 tokens that is 16 GB in float32,
most of it attention.
"""

from __future__ import annotations

import torch

from .errors import UsageError
from .model import GPTConfig

NOTE_BYTES = 1 << 30  # say what a trace costs once it passes this


def trace_bytes(config: GPTConfig, n_tokens: int, dtype: torch.dtype = torch.float32,
                layers: list[int] | None = None) -> int:
    """Bytes a trace of every stage holds (what tracer.Tracer records: batch item 0, on the CPU).

    attn.weights and probs are not held: run_trace recomputes them from attn.scores and logits
    when they are read, one at a time.
    """
    T, d, size = n_tokens, config.d_model, dtype.itemsize
    n_blocks = config.n_layer if layers is None else len(set(layers))
    scores_size = 4 if config.upcast_attn else size  # upcast: scores in float32
    per_block = (
        10 * T * d * size  # ln1, q, k, v, mix, attn.out, resid_attn, ln2, mlp.out, resid_out
        + 2 * T * config.d_mlp * size  # mlp.pre, mlp.act
        + config.n_head * T * T * scores_size  # attn.scores
        + T * T  # attn.mask, one byte per edge
    )
    outside = 8 * T + 4 * T * d * size + T * config.vocab_size * size  # tokens; embeds, ln_f; logits
    return outside + n_blocks * per_block


def memory_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes; None where it cannot be read (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def check_trace_fits(config: GPTConfig, n_tokens: int, dtype: torch.dtype,
                     layers: list[int] | None = None) -> str | None:
    """A note to show when the trace is big; a usage error when it would not fit in memory."""
    need = trace_bytes(config, n_tokens, dtype, layers)
    n_blocks = config.n_layer if layers is None else len(set(layers))
    dtype_name = str(dtype).removeprefix("torch.")
    what = f"tracing {n_tokens:,} tokens through {n_blocks} of {config.n_layer} blocks in {dtype_name}"
    smaller = "--layers (e.g. --layers 0-1)" + ("" if dtype.itemsize <= 2 else " or --dtype bfloat16")
    available = memory_available()
    if available is not None and need > available:
        raise UsageError(f"{what} would record about {gigabytes(need)}, more than the {gigabytes(available)} of "
                         f"memory available; record less with {smaller}, or a shorter prompt")
    if need > NOTE_BYTES:
        return f"note: {what} records about {gigabytes(need)}; {smaller} record less"
    return None
