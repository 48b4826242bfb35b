"""Scoring speed: tracegpt's scoring function against transformers on the same weights and windows.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/score_speed.py [--tokens 4096] [--window 1024] [--repeats 3]

A GPT-2-small-sized model (12 layers, 12 heads, 768 wide, 1024 positions, 50257 tokens) with
random weights, in float32; its transformers twin (GPT2LMHeadModel, default attention) holds the
same weights. Both score the same token ids in the same sliding windows (analysis.scoring's
plan): tracegpt with `score_tokens` (per-token probability, bits, rank and top-5 guesses),
transformers with a forward per window and per-token cross-entropy on the rows it scores. Runs
are interleaved (the order swapped every repeat) and the ratio is the median of the repeats' ratios,
so it comes from one run on a noisy machine. The per-token losses of the two are checked to agree.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tracegpt.analysis.scoring import plan_windows, score_tokens  # noqa: E402
from tracegpt.model import GPT, GPTConfig  # noqa: E402
from tracegpt.weights import to_hf_state_dict  # noqa: E402

SMALL = GPTConfig(n_layer=12, n_head=12, d_model=768, n_ctx=1024, vocab_size=50257)


def build(config: GPTConfig):
    import transformers

    torch.manual_seed(0)
    model = GPT(config).eval()  # GPT-2's init scale (N(0, 0.02)): logits of a plausible size
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.n_ctx, n_embd=config.d_model, n_layer=config.n_layer,
        n_head=config.n_head, activation_function=config.activation, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    hf.load_state_dict(to_hf_state_dict(model.state_dict()), strict=False)
    return model, hf


@torch.no_grad()
def hf_losses(hf, ids: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """transformers' per-token cross-entropy, window by window, on the tokens each window scores."""
    losses = torch.full((len(ids),), float("nan"), dtype=torch.float64)
    for w in plan_windows(len(ids), window, stride).windows:
        logits = hf(ids[None, w.start : w.stop - 1]).logits[0]
        rows = logits[w.first - 1 - w.start :]
        losses[w.first : w.stop] = F.cross_entropy(rows, ids[w.first : w.stop], reduction="none").double()
    return losses


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--stride", type=int, default=None, help="default: half the window")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    stride = args.stride or args.window // 2
    model, hf = build(SMALL)
    ids = torch.randint(0, SMALL.vocab_size, (args.tokens,), generator=torch.Generator().manual_seed(1))
    n_windows = plan_windows(args.tokens, args.window, stride).n_windows
    print(f"GPT-2-small-sized, random weights, float32, {torch.get_num_threads()} threads; {args.tokens:,} tokens, "
          f"window {args.window}, stride {stride} ({n_windows} windows)")

    ours_s, theirs_s, ratios = [], [], []
    for repeat in range(args.repeats):
        times = {}
        # Interleaved, the order swapped every repeat: a neighbour's burst on a shared machine hits both.
        for who in (("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours")):
            t = time.perf_counter()
            if who == "ours":
                scored = score_tokens(model, ids, window=args.window, stride=stride)
            else:
                losses = hf_losses(hf, ids, args.window, stride)
            times[who] = time.perf_counter() - t
        ours_s.append(times["ours"])
        theirs_s.append(times["theirs"])
        ratios.append(times["theirs"] / times["ours"])
        ours_nats = torch.from_numpy(scored.bits[1:]) * torch.log(torch.tensor(2.0, dtype=torch.float64))
        worst = (ours_nats - losses[1:]).abs().max().item()
        print(f"repeat {repeat + 1}: tracegpt {times['ours']:.2f} s, transformers {times['theirs']:.2f} s, "
              f"ratio {ratios[-1]:.2f}; per-token losses agree within {worst:.1e} nats")
    n = args.tokens - 1
    ours, theirs = statistics.median(ours_s), statistics.median(theirs_s)
    print(f"tracegpt score:    {n / ours:,.0f} tokens/s (median {ours:.2f} s; probability, bits, rank, top-5)")
    print(f"transformers:      {n / theirs:,.0f} tokens/s (median {theirs:.2f} s; per-token cross-entropy)")
    print(f"ratio (tokens/s, tracegpt / transformers), median of the repeats: {statistics.median(ratios):.2f}")

if __name__ == "__main__":
    main()
