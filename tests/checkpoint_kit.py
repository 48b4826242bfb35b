"""Small GPT-2 checkpoints made on the spot, as transformers and `tokenizers` save them.

Shared by the tests that read checkpoints (test_checkpoints, test_bad_checkpoints,
test_checkpoint_fuzz); conftest.py's `bpe_dir` and `made` fixtures make them once a run.
Nothing is downloaded: random-weight GPT2LMHeadModels from small, odd configs, and a
byte-level BPE trained on a few KB of varied text.
"""

import json
import shutil
import struct
from pathlib import Path

import torch

HERE = Path(__file__).parent
TRAINING_TEXT = (HERE / "data" / "twelfth_night_act2.txt").read_text()[:5000] + """
Le cœur a ses raisons que la raison ne connaît point. Über allen Gipfeln ist Ruh. ¿Dónde está?
Καλημέρα κόσμε. Привет, мир! こんにちは世界。你好，世界。안녕하세요. مرحبا بالعالم
Prices: $3.50, €12, £7 — 25% off!!! Call 555-0199 at 10:30am. x = [1, 2, 3]; y = {'a': 1}
Tabs\tand\tnewlines\n\nand    wide     gaps. 🙂🙃 😀 🚀✨ — emoji too.
"""
# Small and odd on purpose: head counts of 3, 5 and 7, widths that are no power of two,
# a vocabulary padded past the tokenizer's, the arithmetic flags GPT-2 has, and an untied head.
# Seeds are ones whose greedy continuation is not a single token repeated.
CONFIGS = {
    "3L3H-tied": dict(seed=0, n_layer=3, n_head=3, n_embd=48, n_positions=128),
    "2L5H-untied-flags": dict(seed=3, n_layer=2, n_head=5, n_embd=35, n_positions=120, n_inner=50, extra_vocab=4,
                              activation_function="gelu", layer_norm_epsilon=1e-2, tie_word_embeddings=False,
                              scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True),
    "4L7H-hub-bin": dict(seed=1, n_layer=4, n_head=7, n_embd=56, n_positions=128, activation_function="gelu_new"),
}


def train_bpe(folder: Path) -> Path:
    """A byte-level BPE trained on TRAINING_TEXT, saved as GPT-2's vocab.json + merges.txt.

    tokenizer.json is saved too, as tokenizer.json.kept: used only where a test asks for it.
    """
    import tokenizers

    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([TRAINING_TEXT], vocab_size=397, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(folder))
    bpe.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer.json").rename(folder / "tokenizer.json.kept")
    return folder


def vocab_size_of(bpe_dir: Path) -> int:
    return len(json.loads((bpe_dir / "vocab.json").read_text()))


def random_hf_model(name: str, vocab_size: int):
    import transformers

    kwargs = dict(CONFIGS[name])
    seed = kwargs.pop("seed")
    vocab_size += kwargs.pop("extra_vocab", 0)
    config = transformers.GPT2Config(vocab_size=vocab_size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0, **kwargs)
    config._attn_implementation = "eager"  # the reference arithmetic; attentions can be returned
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)  # far from the init, so a wrong transpose, scale or bias shows
    return hf


def hub_style_state(hf) -> dict:
    """The layout of the hub's gpt2 pytorch_model.bin: no `transformer.` prefix, mask buffers, no lm_head."""
    state = {}
    n_ctx = hf.config.n_positions
    for name, tensor in hf.transformer.state_dict().items():
        state[name] = tensor.clone()
    for i in range(hf.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n_ctx, n_ctx)).view(1, 1, n_ctx, n_ctx)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def copy_tokenizer(bpe_dir: Path, folder: Path):
    for file in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_dir / file, folder / file)


def make_checkpoints(root: Path, bpe_dir: Path) -> dict:
    """name -> (checkpoint folder, the transformers model it was saved from), one per CONFIGS entry
    and a sharded copy of 3L3H-tied."""
    out = {}
    for name in CONFIGS:
        hf = random_hf_model(name, vocab_size_of(bpe_dir))
        folder = root / name
        if name.endswith("hub-bin"):
            folder.mkdir()
            hf.config.save_pretrained(folder)
            torch.save(hub_style_state(hf), folder / "pytorch_model.bin")
        else:
            hf.save_pretrained(folder)
        copy_tokenizer(bpe_dir, folder)
        out[name] = (folder, hf)
    hf = out["3L3H-tied"][1]
    sharded = root / "3L3H-tied-sharded"
    hf.save_pretrained(sharded, max_shard_size="30KB")
    copy_tokenizer(bpe_dir, sharded)
    out["3L3H-tied-sharded"] = (sharded, hf)
    return out


def broken_copy(made, tmp_path, name="3L3H-tied") -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(made[name][0], folder)
    return folder


def edit_config(folder: Path, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


# Safetensors files taken apart: an 8-byte little-endian header length, the JSON header, the data.


def read_safetensors_parts(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_safetensors(path, header: bytes, body: bytes):
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)


def rewrite_header(path, change):
    header, body = read_safetensors_parts(path)
    change(header)
    write_safetensors(path, json.dumps(header).encode(), body)
