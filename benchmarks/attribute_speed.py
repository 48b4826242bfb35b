"""Speed of `tracegpt attribute` and `tracegpt heads`. A script, not a test.

    python benchmarks/attribute_speed.py [--repeats 10] [--skip-small]

  attribute   the split of one logit (its trace of the stages it reads, then the terms) next to a
              plain traced forward of the same prompt (every stage, run_trace), interleaved medians
              in one run: embedded model at 16 and 256 tokens, GPT-2-small-sized at 256
              (target: <= 1.5x)
  heads       head_map on the embedded model (target: seconds) and on a GPT-2-small-sized
              random-weight model (12 x 12 heads, 768 wide, 50257 tokens; target: within a minute)

The GPT-2-small-sized checkpoint is written to a temp folder first (benchmarks/checkpoint_memory.py's
writer). Shared machines are noisy: compare the figures of one run with each other.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from checkpoint_memory import job_write, prompt_of  # noqa: E402
from trace_speed import interleaved  # noqa: E402

import tracegpt  # noqa: E402
from tracegpt.analysis.attribution import attribute  # noqa: E402
from tracegpt.analysis.heads import (  # noqa: E402
    MAX_CHECKS,
    HeadRecorder,
    ablated_losses,
    head_map,
    prediction_sets,
    probe_tokens,
)


def seconds(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def attribute_ratio(lm, prompt: str, repeats: int, label: str) -> None:
    n = len(lm.encode(prompt))
    t = interleaved({"attribute": lambda: attribute(lm, prompt), "trace": lambda: tracegpt.run_trace(lm, prompt)},
                    repeats)
    print(f"attribute, {label}, {n} tokens: {t['attribute'] * 1e3:.1f} ms vs traced forward {t['trace'] * 1e3:.1f} ms"
          f" = {t['attribute'] / t['trace']:.2f}x")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-small", action="store_true", help="only the embedded model")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    lm = tracegpt.load()
    attribute_ratio(lm, "I love", args.repeats, "embedded")
    attribute_ratio(lm, prompt_of(lm, 256), args.repeats, "embedded")
    times = seconds(lambda: head_map(lm), 3)
    print(f"heads, embedded (8 probes x 101 tokens, 16 heads ablated): median {statistics.median(times):.2f} s "
          f"(runs: {', '.join(f'{s:.2f}' for s in times)})")
    if args.skip_small:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "small"
        job_write(folder, "small")
        small = tracegpt.load(str(folder))
        attribute_ratio(small, prompt_of(small, 256), max(3, args.repeats // 3), "GPT-2-small-sized")
        start = time.perf_counter()
        m = head_map(small)
        took = time.perf_counter() - start
        checked = [h for h in m.heads if h.loss_ablated is not None]
        print(f"heads, GPT-2-small-sized ({m.n_probes} probes x 101 tokens, {len(checked)} of {len(m.heads)} heads "
              f"ablated, in blocks {', '.join(str(h.layer) for h in checked)}): {took:.1f} s")
        print(f"  the worst case, {MAX_CHECKS} ablations all in block 0: about {worst_case(small, m):.1f} s")


def worst_case(lm, m) -> float:
    """The intact pass, then MAX_CHECKS ablations that each rerun every block: the most head_map can cost."""
    ids = torch.tensor(probe_tokens(lm, m.n_probes))
    start = time.perf_counter()
    with torch.no_grad():
        recorder = HeadRecorder(ids, lm.config.n_layer)
        lm.model(ids, taps=[recorder])
        repeated, _ = prediction_sets(ids)
        for head in range(MAX_CHECKS):
            ablated_losses(lm, recorder, ids, 0, head % lm.config.n_head, [repeated])
    return time.perf_counter() - start

if __name__ == "__main__":
    main()
