"""Speed of tracing, as ratios measured in one run (shared machines are noisy; compare within a run).

    python benchmarks/trace_speed.py [--repeats 20]

Reports: load + 16-token forward of the embedded model; untraced vs traced forward of a
256-token prompt (target: traced <= 1.5x untraced); end-to-end `tracegpt trace "I love"` next
to `python -c "import torch"`; a 1 MB prompt's context-limit error; `tracegpt --help`, which
must not import torch at all.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

import tracegpt  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(fns: dict, repeats: int) -> dict:
    """Medians of several functions measured in turn, so a slow spell hits them all alike."""
    for fn in fns.values():
        fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def wall(cmd: list[str], repeats: int) -> float:
    return timed(lambda: subprocess.run(cmd, check=True, capture_output=True), repeats)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    policy = os.environ["OMP_WAIT_POLICY"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY={policy}")

    start = time.perf_counter()
    lm = tracegpt.load()
    ids16 = torch.tensor([lm.encode("To be, or not to be, that is the question: whether 'tis nobler")[:16]])
    with torch.no_grad():
        lm.model(ids16)
    print(f"load embedded model + first 16-token forward: {time.perf_counter() - start:.3f} s")

    text = open(os.path.join(os.path.dirname(__file__), "..", "tests", "data", "twelfth_night_act2.txt")).read()
    prompt = lm.encoding.decode(lm.encode(text)[:256])
    ids = torch.tensor([lm.encode(prompt)])
    assert ids.shape[1] == 256

    def untraced():
        with torch.no_grad():
            lm.model(ids)

    def traced():
        tracegpt.run_trace(lm, prompt)

    t = interleaved({"untraced": untraced, "traced": traced}, args.repeats)
    n_stages = len(tracegpt.stage_names(lm.config.n_layer))
    print(f"256-token forward: untraced {t['untraced'] * 1e3:.1f} ms, traced (all {n_stages} stages) "
          f"{t['traced'] * 1e3:.1f} ms, ratio {t['traced'] / t['untraced']:.2f}x (target <= 1.5x)")

    n = max(3, args.repeats // 4)
    exe = [sys.executable, "-m", "tracegpt"]
    cli = interleaved({
        "import torch": lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True),
        "trace": lambda: subprocess.run(exe + ["trace", "I love"], check=True, capture_output=True),
        "--help": lambda: subprocess.run(exe + ["--help"], check=True, capture_output=True),
    }, n)
    print(f"end to end: python -c 'import torch' {cli['import torch']:.2f} s, tracegpt trace \"I love\" "
          f"{cli['trace']:.2f} s ({cli['trace'] / cli['import torch']:.2f}x the torch import), "
          f"tracegpt --help {cli['--help']:.2f} s")
    megabyte = ("To be, or not to be, that is the question. " * 24_000)[:1_000_000].encode()
    start = time.perf_counter()
    r = subprocess.run(exe + ["trace", "-"], input=megabyte, capture_output=True)
    print(f"1 MB prompt on standard input: exit {r.returncode} in {time.perf_counter() - start:.2f} s "
          f"(target < 2 s), {r.stderr.decode().strip()!r}")
    probe = "import sys, tracegpt.cli; print('torch' in sys.modules)"
    loads_torch = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    print(f"`tracegpt --help` imports torch: {loads_torch}")


if __name__ == "__main__":
    main()
