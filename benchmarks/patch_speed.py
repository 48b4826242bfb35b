"""The layer × head patching sweep on a GPT-2-small-sized model: time and memory, as ratios in one run.

    python benchmarks/patch_speed.py [--repeats 3] [--tokens 20]

Writes a random-weight GPT-2-small-sized checkpoint (12 layers × 12 heads, 768 wide, 50257 tokens)
to a temp folder, then, interleaved:
  plain    one traced forward of the clean prompt, every stage (`run_trace`)
  sweep    `tracegpt patch`'s heads sweep: 144 patched runs of the corrupted prompt (plus the two
           plain runs and the backward pass of the first-order estimate)
  hf loop  the obvious way: 144 forwards of transformers' GPT2LMHeadModel on the same weights, each
           with a forward pre-hook on one block's c_proj putting in one head's clean input
Targets: sweep ÷ plain ≤ 30; hf loop ÷ sweep ≥ 5. Peak resident memory of the sweep (and of the plain
trace) is measured in processes of their own. The sweep and the loop must agree cell by cell.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoint_memory import job_write, prompt_of  # noqa: E402


def prompts(lm, n_tokens: int) -> tuple[str, str]:
    """A clean prompt of n_tokens tokens, and the same with one token in the middle changed."""
    clean = prompt_of(lm, n_tokens)
    ids = lm.encode(clean)
    for swap in range(100, 5000):
        changed = ids[: n_tokens // 2] + [swap] + ids[n_tokens // 2 + 1:]
        corrupt = lm.encoding.decode(changed)
        if len(lm.encode(corrupt)) == n_tokens and lm.encode(corrupt) == changed:
            return clean, corrupt
    raise SystemExit("no corrupted prompt of the same length found")


def hf_loop(hf, lm, clean: str, corrupt: str, answer: int, wrong: int):
    """144 patched forwards the obvious way, with transformers' hooks: the (layers, heads) metrics."""
    import torch

    c = hf.config
    d_head = c.n_embd // c.n_head
    kept = {}

    def keep(layer):
        def hook(module, args):
            kept[layer] = args[0].detach().clone()
        return hook

    with torch.no_grad():
        handles = [hf.transformer.h[i].attn.c_proj.register_forward_pre_hook(keep(i)) for i in range(c.n_layer)]
        hf(torch.tensor([lm.encode(clean)]))
        for h in handles:
            h.remove()
        ids = torch.tensor([lm.encode(corrupt)])
        out = torch.empty(c.n_layer, c.n_head, dtype=torch.float64)
        for layer in range(c.n_layer):
            for head in range(c.n_head):
                def put(module, args, layer=layer, head=head):
                    x = args[0].clone()
                    x[..., head * d_head:(head + 1) * d_head] = kept[layer][..., head * d_head:(head + 1) * d_head]
                    return (x,)
                handle = hf.transformer.h[layer].attn.c_proj.register_forward_pre_hook(put)
                logits = hf(ids).logits[0, -1].double()
                handle.remove()
                out[layer, head] = logits[answer] - logits[wrong]
    return out


def job_memory(folder: Path, what: str, n_tokens: int) -> dict:
    import tracegpt
    from tracegpt.analysis.patching import patching

    lm = tracegpt.load(str(folder))
    clean, corrupt = prompts(lm, n_tokens)
    top2 = tracegpt.run_trace(lm, clean, stages=["logits"])["logits"][-1].topk(2).indices.tolist()
    before = memory("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) starts again from here
    if what == "sweep":
        patching(lm, clean, corrupt, ("heads",), answer=top2[0], wrong=top2[1])
    else:
        tracegpt.run_trace(lm, clean)
    return {"after_load": before, "peak": memory("VmHWM")}


def memory(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def in_process(folder: Path, what: str, n_tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--job", what, "--dir", str(folder), "--tokens", str(n_tokens)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--job")
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(job_memory(args.dir, args.job, args.tokens)))
        return

    import torch
    import transformers

    import tracegpt
    from tracegpt.analysis.patching import patching

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "small"
        job_write(folder, "small")
        lm = tracegpt.load(str(folder))
        hf = transformers.GPT2LMHeadModel.from_pretrained(folder, local_files_only=True,
                                                          attn_implementation="sdpa").eval()
        clean, corrupt = prompts(lm, args.tokens)
        # Random weights predict alike from both prompts: compare the clean run's top two tokens.
        top2 = tracegpt.run_trace(lm, clean, stages=["logits"])["logits"][-1].topk(2).indices.tolist()
        sweep = lambda: patching(lm, clean, corrupt, ("heads",), answer=top2[0], wrong=top2[1])  # noqa: E731
        result = sweep()
        loop = hf_loop(hf, lm, clean, corrupt, result.answer, result.wrong)
        scale = result.metric_clean - result.metric_corrupt
        ours = torch.tensor(result.sweeps[0].values, dtype=torch.float64) * scale + result.metric_corrupt
        agree = (ours - loop).abs().max().item()

        runs = {"plain": lambda: tracegpt.run_trace(lm, clean),
                "sweep": sweep,
                "hf loop": lambda: hf_loop(hf, lm, clean, corrupt, result.answer, result.wrong)}
        samples = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
        med = {name: statistics.median(s) for name, s in samples.items()}
        memory = {what: in_process(folder, what, args.tokens) for what in ("plain", "sweep")}

    print(f"{args.tokens}-token prompts, {hf.config.n_layer} × {hf.config.n_head} heads = "
          f"{hf.config.n_layer * hf.config.n_head} patched runs; medians of {args.repeats}, interleaved")
    for name in runs:
        print(f"  {name:8s} {med[name]:7.3f} s")
    print(f"sweep ÷ plain traced forward: {med['sweep'] / med['plain']:.1f}× (target ≤ 30)")
    print(f"hf loop ÷ sweep: {med['hf loop'] / med['sweep']:.1f}× (target ≥ 5)")
    print(f"sweep and hf loop agree within {agree:.1e} (logit difference)")
    for what, m in memory.items():
        print(f"peak RSS during the {what}: {m['peak'] / 1e9:.2f} GB "
              f"(resident before it: {m['after_load'] / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
