"""How fast `tracegpt generate` decodes, against Hugging Face transformers on the same weights.

    python benchmarks/generate_speed.py [--repeats 3] [--threads N] [--skip-slow]

Measures new tokens/s for 128 greedy tokens from a 16-token prompt, with and without the KV
cache, on the embedded model and on a GPT-2-small-sized model with random weights (12 layers,
12 heads, d_model 768, n_ctx 1024, vocab 50257); in the same process, transformers'
GPT2LMHeadModel.generate (greedy) on the same weights, converted with
tracegpt.weights.to_hf_state_dict and built from a hand-made GPT2Config (nothing is
downloaded). Then the cache's speed-up over no cache when the context grows to 256 tokens.

Each figure is the best of --repeats runs, tracegpt and transformers interleaved, so that
load from other processes hurts both alike; tokens per CPU-second (this process's CPU time)
are printed beside tokens/s because they barely move when other processes share the CPU.
Model loading is never timed; tracegpt's time is that of its whole loop (forward pass,
sampling stage, step records). The no-cache run of the GPT-2-small-sized model takes
minutes on a small CPU: it runs once, or not at all with --skip-slow.

Targets (issue 6): cached ≥ 1.5× transformers on the embedded model, ≥ 1.0× on the
GPT-2-small-sized one; cache ≥ 3× no cache at 256 tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Torch's OpenMP threads spin while they wait; on a shared machine that distorts every figure.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tracegpt import loader, tokenizer  # noqa: E402
from tracegpt.generation import AttentionSpec, Generation  # noqa: E402
from tracegpt.loader import LoadedModel  # noqa: E402
from tracegpt.model import GPT, GPTConfig  # noqa: E402
from tracegpt.sampling import SamplingSettings  # noqa: E402
from tracegpt.weights import to_hf_state_dict  # noqa: E402

N_NEW = 128
N_PROMPT = 16
LONG_PROMPT = 128  # + 128 new tokens: the context grows to 256
GREEDY = SamplingSettings(greedy=True)
GPT2_SMALL = GPTConfig(n_layer=12, n_head=12, d_model=768, n_ctx=1024, vocab_size=50257)


# --- models ---


def synthetic_encoding(n_vocab: int):
    """A tokenizer with n_vocab ids whose texts are placeholders: random weights mean nothing anyway."""
    ranks = {bytes([i]): i for i in range(256)}
    ranks.update({f"<{i}>".encode(): i for i in range(256, n_vocab - 1)})
    return tokenizer.encoding_from_ranks("synthetic", ranks)


def random_gpt2_small() -> LoadedModel:
    torch.manual_seed(0)
    model = GPT(GPT2_SMALL)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)  # GPT-2's initialisation: logits stay in a realistic range
    return LoadedModel(name="gpt2-small-sized (random)", model=model.eval(), encoding=synthetic_encoding(50257))


def to_transformers(lm: LoadedModel):
    from transformers import GPT2Config, GPT2LMHeadModel

    c = lm.config
    config = GPT2Config(vocab_size=c.vocab_size, n_positions=c.n_ctx, n_embd=c.d_model, n_layer=c.n_layer,
                        n_head=c.n_head, n_inner=c.d_mlp, activation_function=c.activation,
                        layer_norm_epsilon=c.layer_norm_eps, tie_word_embeddings=c.tie_embeddings,
                        scale_attn_weights=c.scale_attn_weights,
                        scale_attn_by_inverse_layer_idx=c.scale_attn_by_inverse_layer_idx,
                        reorder_and_upcast_attn=c.upcast_attn, bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(config)
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(lm.model.state_dict()), strict=False)
    missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias"))]
    if missing or unexpected:
        raise SystemExit(f"weights do not map onto transformers: missing {missing[:3]}, unexpected {unexpected[:3]}")
    hf.generation_config.eos_token_id = None  # never stop early: both sides make exactly N tokens
    hf.generation_config.pad_token_id = 0
    return hf.eval()


# --- timed runs ---


class Clock:
    """Wall time, and this process's CPU time: on a shared machine the second is what we cost."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def tracegpt_run(lm: LoadedModel, ids: list[int], n_new: int, use_cache: bool, attention=None):
    """(clock, new ids); by default the plain loop: no attention column, nothing recorded."""
    gen = Generation(lm, ids, GREEDY, n_new, use_cache=use_cache, attention=attention, keep_logits=False,
                     stop_at_end_of_text=False)
    with Clock() as clock:
        for _ in gen:
            pass
    return clock, gen.new_ids


def hf_run(hf, ids: list[int], n_new: int):
    x = torch.tensor([ids])
    with torch.inference_mode(), Clock() as clock:
        out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, min_new_tokens=n_new,
                          do_sample=False, use_cache=True)
    return clock, out[0, len(ids):].tolist()


def best_rate(runs: dict, repeats: int, n_new: int) -> tuple[dict, dict]:
    """Best (wall, CPU) tokens/s of each named run over `repeats` rounds, interleaved within a round."""
    best = {name: (0.0, 0.0) for name in runs}
    tokens = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            clock, ids = fn()
            best[name] = (max(best[name][0], n_new / clock.wall), max(best[name][1], n_new / clock.cpu))
            tokens[name] = ids
    return best, tokens


def prompt_ids(lm: LoadedModel, n: int) -> list[int]:
    if lm.name == loader.EMBEDDED:
        ids = lm.encode("ROMEO:\nBut soft, what light through yonder window breaks? It is the east. " * 20)
    else:
        ids = torch.randint(0, lm.config.vocab_size - 1, (n,), generator=torch.Generator().manual_seed(1)).tolist()
    return ids[:n]


# --- report ---


def agreement(a: list[int], b: list[int]) -> str:
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{same}/{len(a)} tokens equal before the first difference"


def bench_model(lm: LoadedModel, repeats: int, skip_slow: bool) -> dict:
    hf = to_transformers(lm)
    ids = prompt_ids(lm, N_PROMPT)
    # Warm-up: first calls allocate and pick kernels.
    tracegpt_run(lm, ids, 4, True)
    hf_run(hf, ids, 4)
    runs = {
        "tracegpt, cache": lambda: tracegpt_run(lm, ids, N_NEW, True),
        "transformers": lambda: hf_run(hf, ids, N_NEW),
    }
    if lm.name == loader.EMBEDDED:
        last_block = AttentionSpec(lm.config.n_layer - 1)  # what the CLI's 'looks at' column costs
        runs["tracegpt, cache + looks-at column"] = lambda: tracegpt_run(lm, ids, N_NEW, True, last_block)
    rates, tokens = best_rate(runs, repeats, N_NEW)
    slow = lm.config.n_layer > 4
    if not (slow and skip_slow):
        no_cache, _ = best_rate({"tracegpt, no cache": lambda: tracegpt_run(lm, ids, N_NEW, False)},
                                1 if slow else repeats, N_NEW)
        rates.update(no_cache)
    return {"rates": rates, "agree": agreement(tokens["tracegpt, cache"], tokens["transformers"])}


def bench_long_context(lm: LoadedModel, repeats: int) -> dict:
    ids = prompt_ids(lm, LONG_PROMPT)
    n_new = lm.config.n_ctx - LONG_PROMPT + 1  # the last step reads the full 256-token context
    rates, _ = best_rate({"cache": lambda: tracegpt_run(lm, ids, n_new, True),
                          "no cache": lambda: tracegpt_run(lm, ids, n_new, False)}, repeats, n_new)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds per figure; the best is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-slow", action="store_true", help="skip the no-cache run of the GPT-2-small-sized model")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{N_NEW} greedy tokens from a {N_PROMPT}-token prompt; best of {args.repeats}; ratio = to transformers;"
          f" tokens/s by the wall clock, and per second of this process's CPU time\n", flush=True)

    embedded = loader.load()
    results = {"embedded (4×256)": bench_model(embedded, args.repeats, args.skip_slow),
               "GPT-2-small-sized": bench_model(random_gpt2_small(), args.repeats, args.skip_slow)}
    long_context = bench_long_context(embedded, args.repeats)

    targets = {"embedded (4×256)": 1.5, "GPT-2-small-sized": 1.0}
    print(f"{'model':<20} {'run':<34} {'tokens/s':>9} {'ratio':>7}   {'per CPU-s':>9} {'ratio':>7}")
    for model_name, r in results.items():
        hf_wall, hf_cpu = r["rates"]["transformers"]
        for run_name, (wall, cpu) in r["rates"].items():
            print(f"{model_name:<20} {run_name:<34} {wall:>9.1f} {wall / hf_wall:>6.2f}×   "
                  f"{cpu:>9.1f} {cpu / hf_cpu:>6.2f}×")
        ratio = r["rates"]["tracegpt, cache"][0] / hf_wall
        verdict = "met" if ratio >= targets[model_name] else "MISSED"
        print(f"{'':<20} target cached ≥ {targets[model_name]}× transformers: {ratio:.2f}× {verdict}; "
              f"greedy tokens: {r['agree']}\n")
    (cache_wall, cache_cpu), (none_wall, none_cpu) = long_context["cache"], long_context["no cache"]
    speedup = cache_wall / none_wall
    print(f"embedded, context growing {LONG_PROMPT} → {embedded.config.n_ctx}: cache {cache_wall:.1f}, "
          f"no cache {none_wall:.1f} tokens/s: {speedup:.2f}× (per CPU-second {cache_cpu / none_cpu:.2f}×; "
          f"target ≥ 3×: {'met' if speedup >= 3 else 'MISSED'})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
