"""Local GPT-2 checkpoints against transformers: same token ids, logits, attention and greedy text.

Every checkpoint is made on the spot by tests/checkpoint_kit.py, nothing is downloaded: random-weight
GPT2LMHeadModels from small, odd configs, saved as transformers saves them (safetensors as
`save_pretrained` writes them, sharded too, and a hub-style pytorch_model.bin), and a small
byte-level BPE trained by `tokenizers`, saved in GPT-2's format. tracegpt must read them
without transformers and agree with it.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from checkpoint_kit import CONFIGS, broken_copy, edit_config, vocab_size_of  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402

from tracegpt import costs, loader  # noqa: E402
from tracegpt.checkpoints import CheckpointError  # noqa: E402
from tracegpt.checkpoints.cache import read_shard_index  # noqa: E402
from tracegpt.errors import UsageError  # noqa: E402
from tracegpt.tokenizer import TokenizerError  # noqa: E402
from tracegpt.tracer import run_trace  # noqa: E402
from tracegpt.weights import WeightsError  # noqa: E402

TEXTS = [
    "Hello world",
    "  leading spaces, and    runs of   spaces  ",
    "line one\nline two\n\n\nafter blanks\r\nwindows\tand\ttabs\t\t",
    "Café naïve façade — “quotes” ‘single’ … ",
    "Grüße aus Köln; Ελληνικά; Русский текст; 日本語のテキスト; 中文字符; 한국어",
    "emoji: 😀🎉👍🏽 👨‍👩‍👧 ❤️ and a flag 🇫🇷",
    "numbers 1234567 3.14159 -42 1e10 0x1F",
    "code:\n    def f(x):\n        return x**2  # square\n",
    "contractions: I'm you're he'll they've she'd it's DON'T",
    "O Mistress mine, where are you roaming?",
    "\x00\x01 control \x7f bytes",
    "",
]
PROMPT = "If music be the food of love, play on;"
# The parity tests run on this device (TRACEGPT_TEST_DEVICE=cuda on a GPU machine); transformers stays on the CPU.
DEVICE = os.environ.get("TRACEGPT_TEST_DEVICE", "cpu")

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Loading a checkpoint must never reach for the network."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("tracegpt tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------------------------------------
# Making checkpoints


@pytest.fixture(scope="module")
def reference_tokenizer(bpe_dir):
    return transformers.GPT2TokenizerFast.from_pretrained(str(bpe_dir))


# ---------------------------------------------------------------------------------------------
# Parity with transformers


def test_the_checkpoints_look_as_transformers_saves_them(made):
    from safetensors import safe_open

    with safe_open(str(made["3L3H-tied"][0] / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert all(k.startswith("transformer.") for k in keys) and "lm_head.weight" not in keys  # tied: not saved
    with safe_open(str(made["2L5H-untied-flags"][0] / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" in f.keys()
    hub = torch.load(made["4L7H-hub-bin"][0] / "pytorch_model.bin", weights_only=True)
    assert "wte.weight" in hub and "h.0.attn.bias" in hub and "lm_head.weight" not in hub
    assert (made["3L3H-tied-sharded"][0] / "model.safetensors.index.json").is_file()


def test_token_ids_match_transformers(bpe_dir, reference_tokenizer, made):
    lm = loader.load(str(made["3L3H-tied"][0]))
    assert lm.encoding.n_vocab == vocab_size_of(bpe_dir) and vocab_size_of(bpe_dir) % 2 == 1
    for text in TEXTS:
        ours = lm.encode(text)
        assert ours == reference_tokenizer(text)["input_ids"], text
        assert lm.encoding.decode(ours) == text
    eot = reference_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert lm.encoding.eot_token == eot == 0  # `tokenizers` puts the special token first
    assert lm.encoding.decode([eot]) == "<|endoftext|>"


def test_tokenizer_json_alone_gives_the_same_ids(bpe_dir, reference_tokenizer, made, tmp_path):
    folder = broken_copy(made, tmp_path)
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    shutil.copy(bpe_dir / "tokenizer.json.kept", folder / "tokenizer.json")
    lm = loader.load(str(folder))
    assert lm.card["tokenizer"]["source"] == "tokenizer.json"
    for text in TEXTS:
        assert lm.encode(text) == reference_tokenizer(text)["input_ids"], text


@pytest.mark.parametrize("name", [*CONFIGS, "3L3H-tied-sharded"])
def test_logits_match_transformers(made, reference_tokenizer, name):
    folder, hf = made[name]
    lm = loader.load(str(folder), device=DEVICE)
    for text in (PROMPT, TEXTS[4], "a"):
        ids = torch.tensor([lm.encode(text)])
        with torch.no_grad():
            ours = lm.model(ids.to(lm.device))[0].cpu()
            theirs = hf(ids).logits[0]
        assert ours.shape == theirs.shape
        assert (ours[-1] - theirs[-1]).abs().max().item() <= 1e-4, text
        assert (ours - theirs).abs().max().item() <= 1e-4, text


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_heads_attention_matches_transformers(made, name):
    folder, hf = made[name]
    lm = loader.load(str(folder), device=DEVICE)
    trace = run_trace(lm, PROMPT)
    with torch.no_grad():
        theirs = hf(torch.tensor([trace.token_ids]), output_attentions=True).attentions
    assert len(theirs) == hf.config.n_layer
    for layer, weights in enumerate(theirs):
        ours = trace[f"blocks.{layer}.attn.weights"]
        assert ours.shape == weights[0].shape == (hf.config.n_head, trace.n_tokens, trace.n_tokens)
        assert (ours - weights[0]).abs().max().item() <= 1e-5, layer
    # The comparison can fail: the weights are far from uniform, and layers differ.
    assert theirs[0][0].max().item() > 0.5 and not torch.allclose(theirs[0][0], theirs[-1][0])


def greedy(lm, ids: list[int], n: int) -> list[int]:
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            logits = lm.model(torch.tensor([ids], device=lm.device))[0, -1]
            ids.append(int(logits.argmax()))
    return ids


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_generation_matches_transformers(made, name):
    folder, hf = made[name]
    lm = loader.load(str(folder), device=DEVICE)
    prompt = lm.encode(PROMPT)
    ours = greedy(lm, prompt, 20)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)[0].tolist()
    assert len(theirs) == len(prompt) + 20
    assert ours == theirs
    assert len(set(ours[len(prompt):])) > 1  # not one token repeated: the test could fail


def test_a_weights_file_can_be_named_directly(made):
    folder, hf = made["3L3H-tied"]
    lm = loader.load(str(folder / "model.safetensors"))
    ids = torch.tensor([lm.encode(PROMPT)])
    with torch.no_grad():
        assert (lm.model(ids) - hf(ids).logits).abs().max().item() <= 1e-4


def test_half_precision_files_and_dtypes(made, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = broken_copy(made, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    save_file({k: v.half() for k, v in state.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    lm = loader.load(str(folder))
    assert lm.model.wte.weight.dtype == torch.float32
    assert torch.equal(lm.model.wte.weight, state["transformer.wte.weight"].half().float())
    assert torch.equal(lm.model.h[1].attn.c_attn.weight, state["transformer.h.1.attn.c_attn.weight"].half().float())
    lm16 = loader.load(str(folder), dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in lm16.model.parameters())
    trace = run_trace(lm16, PROMPT)
    assert trace["blocks.0.attn.weights"].dtype == torch.bfloat16 and trace["logits"].dtype == torch.bfloat16


def test_card_says_where_the_model_came_from(made):
    folder, _ = made["2L5H-untied-flags"]
    lm = loader.load(str(folder))
    assert lm.name == folder.name
    card = lm.card
    assert card["source"] == str(folder.absolute()) and card["origin"] == "path" and card["format"] == "safetensors"
    assert card["config"]["upcast_attn"] and card["config"]["scale_attn_by_inverse_layer_idx"]
    assert not card["config"]["tie_embeddings"] and card["config"]["activation"] == "gelu"
    assert card["tokenizer"]["unused_ids"] == 4  # the padded ids still decode
    assert lm.token_text(lm.config.vocab_size - 1) == f"<|unused_{lm.config.vocab_size - 1}|>"


def test_cli_traces_a_checkpoint_folder(made, reference_tokenizer, run_cli):
    folder, hf = made["3L3H-tied"]
    result = run_cli("trace", PROMPT, "--model", folder, "--json", "--top-k", "3")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["model"]["name"] == folder.name and doc["model"]["n_head"] == 3
    ids = [t["id"] for t in doc["tokens"]]
    assert ids == reference_tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        best = int(hf(torch.tensor([ids])).logits[0, -1].argmax())
    assert doc["next_token"]["top"][0]["id"] == best
    assert result.stderr == ""


# ---------------------------------------------------------------------------------------------
# The Hugging Face cache, by name


def fake_cache(root: Path, repo_id: str, checkpoint: Path) -> Path:
    """models--ORG--NAME with blobs, refs/main and two snapshots; refs/main names the good one."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    good, old = "a" * 40, "b" * 40
    for commit in (good, old):
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for file in checkpoint.iterdir():
            blob = repo / "blobs" / f"{commit[:4]}-{file.name}"
            blob.parent.mkdir(exist_ok=True)
            shutil.copy(file, blob)
            (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))  # as huggingface_hub links them
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(good)
    old_config = repo / "snapshots" / old / "config.json"
    old_config.unlink()
    old_config.write_text(json.dumps({"model_type": "llama"}))  # picking this snapshot would fail
    os.utime(repo / "snapshots" / old, (2e9, 2e9))  # and it is the newest: refs/main must win
    return repo


def test_a_name_resolves_in_the_cache_with_hf_hub_cache(made, tmp_path, monkeypatch):
    folder, hf = made["3L3H-tied"]
    fake_cache(tmp_path / "hub", "acme/tiny-gpt", folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    lm = loader.load("acme/tiny-gpt")
    assert lm.name == "acme/tiny-gpt" and lm.card["origin"] == "cache" and lm.card["revision"] == "a" * 40
    ids = torch.tensor([lm.encode(PROMPT)])
    with torch.no_grad():
        assert (lm.model(ids) - hf(ids).logits).abs().max().item() <= 1e-4
    with pytest.raises(CheckpointError, match="llama"):
        loader.load("acme/tiny-gpt@" + "b" * 40)  # another revision, asked for by its commit
    snapshot_file = tmp_path / "hub" / "models--acme--tiny-gpt" / "snapshots" / ("a" * 40) / "model.safetensors"
    assert snapshot_file.is_symlink()
    assert loader.load(str(snapshot_file)).card["weights"] == ["model.safetensors"]  # the link, not its blob


def test_a_name_resolves_under_hf_home_and_bare_gpt2_names_find_openai_community(made, tmp_path, monkeypatch):
    folder, _ = made["4L7H-hub-bin"]
    fake_cache(tmp_path / "home" / "hub", "openai-community/gpt2", folder)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    for name in ("gpt2", "openai-community/gpt2"):
        lm = loader.load(name)
        assert lm.name == "openai-community/gpt2" and lm.config.n_head == 7 and lm.card["format"] == "pytorch"


def test_a_name_not_in_the_cache_says_how_to_get_it(tmp_path, run_cli):
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    result = run_cli("trace", "hi", "--model", "nobody/nothing", env={"HF_HUB_CACHE": str(empty)})
    assert_one_line_error(result, "unknown model 'nobody/nothing'", "not in the local Hugging Face cache",
                          str(empty), "HF_HUB_CACHE", "hf download nobody/nothing", code=2)
    result = run_cli("trace", "hi", "--model", "gpt2", env={"HF_HUB_CACHE": str(empty)})
    assert_one_line_error(result, "models--gpt2 or models--openai-community--gpt2",
                          "hf download openai-community/gpt2", code=2)
    assert_one_line_error(run_cli("trace", "hi", "--model", "./no/such/dir"), "no such file or folder", code=2)


def test_loading_needs_neither_transformers_nor_the_network(made, tmp_path):
    fake_cache(tmp_path / "hub", "acme/tiny-gpt", made["3L3H-tied"][0])
    script = textwrap.dedent(f"""
        import socket, sys
        def refuse(*a, **k):
            raise SystemExit("network used")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import tracegpt
        lm = tracegpt.load("acme/tiny-gpt")
        trace = tracegpt.run_trace(lm, {PROMPT!r})
        assert trace["logits"].shape[0] == len(trace.token_ids)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "huggingface_hub", "tokenizers"))
        assert not loaded, loaded
        print("ok")
    """)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# What cannot be traced is refused: one line, no traceback


def test_missing_config(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    (folder / "config.json").unlink()
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "no config.json", code=1)
    assert_one_line_error(run_cli("trace", "hi", "--model", folder / "model.safetensors"), "no config.json beside")


def test_missing_weights(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "tf_model.h5").write_bytes(b"not for us")
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "no weights", "model.safetensors",
                          "tf_model.h5", code=1)


def test_missing_shard(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path, "3L3H-tied-sharded")
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), f"shard {shard.name} is missing", code=1)


def test_weights_that_do_not_match_the_config_name_the_first_tensor(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    edit_config(folder, n_embd=45)  # still divisible by 3 heads
    assert_one_line_error(run_cli("trace", "hi", "--model", folder),
                          "tensor 'wte.weight' has shape [397, 48] but the config needs [397, 45]", code=1)
    edit_config(folder, n_embd=48, n_layer=4)
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "model.safetensors: holds 3 blocks (h.0 to h.2) "
                          f"but {folder / 'config.json'} has n_layer 4", code=1)
    edit_config(folder, n_layer=2)
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "holds 3 blocks (h.0 to h.2) but",
                          "has n_layer 2", code=1)
    edit_config(folder, n_layer=3, tie_word_embeddings=False)
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "tensor 'lm_head.weight' missing", code=1)


def test_truncated_safetensors(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "model.safetensors", "truncated", code=1)
    path.write_bytes(data[:5])
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "not a safetensors file", code=1)


def test_a_pickle_that_runs_code_is_refused(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    torch.save({"wte.weight": torch.zeros(2), "trap": Trap()}, folder / "pytorch_model.bin")
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "refused", code=1)


class Trap:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("changes, fragment", [
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "model_type 'llama' is not GPT-2"),
    ({"architectures": ["GPT2ForSequenceClassification"]}, "architecture GPT2ForSequenceClassification"),
    ({"activation_function": "mish"}, "activation_function 'mish' is not one tracegpt computes"),
    ({"add_cross_attention": True}, "cross-attention"),
    ({"use_rotary_embeddings": True}, "sets use_rotary_embeddings = true"),
    ({"n_head": 5}, "must be divisible by n_head (5)"),
    ({"n_layer": "three"}, "n_layer must be a positive integer"),
    ({"reorder_and_upcast_attn": "yes"}, "reorder_and_upcast_attn must be true or false"),
])
def test_configs_tracegpt_cannot_compute_are_refused(made, tmp_path, run_cli, changes, fragment):
    folder = broken_copy(made, tmp_path)
    edit_config(folder, **changes)
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "config.json", fragment, code=1)


def test_config_keys_that_do_not_change_the_arithmetic_are_accepted(made, tmp_path):
    folder = broken_copy(made, tmp_path)
    edit_config(folder, task_specific_params={"text-generation": {"max_length": 50}}, n_ctx=64,
                my_project_note="hello", use_rotary_embeddings=False)
    lm = loader.load(str(folder))
    assert lm.config.extra["ignored_keys"] == ["my_project_note", "use_rotary_embeddings"]


def test_tokenizer_problems_are_named(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    (folder / "merges.txt").unlink()
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "merges.txt is missing", code=1)
    (folder / "vocab.json").unlink()
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "no tokenizer files", code=1)


def test_merges_out_of_id_order_are_refused(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    lines = (folder / "merges.txt").read_text().splitlines()
    lines[5], lines[9] = lines[9], lines[5]  # line 0 is "#version"
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(TokenizerError, match="tiktoken merges by id"):
        loader.load(str(folder))
    assert_one_line_error(run_cli("trace", "hi", "--model", folder), "merges.txt order", code=1)


def test_a_tokenizer_from_a_bigger_model_is_refused(made, tmp_path):
    folder = broken_copy(made, tmp_path)
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["<|extra|>"] = 1000
    (folder / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(TokenizerError, match="token id 1000 does not exist in the model"):
        loader.load(str(folder))


def test_direct_errors_are_the_right_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        loader.load("nope")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UsageError, match="folder, or a .safetensors or .bin"):
        loader.load(str(tmp_path / "notes.txt"))
    with pytest.raises(WeightsError):
        read_shard_index(tmp_path / "notes.txt")


# ---------------------------------------------------------------------------------------------
# What a trace costs, said before it is taken


def recorded_bytes(trace) -> int:
    return sum(t.numel() * t.element_size() for t in trace.tensors.values())


@pytest.mark.parametrize("name", ["3L3H-tied", "2L5H-untied-flags"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_estimate_is_what_the_tracer_records(made, name, dtype):
    lm = loader.load(str(made[name][0]), dtype=dtype)
    for layers in (None, [1]):
        trace = run_trace(lm, PROMPT, layers=layers)
        estimate = costs.trace_bytes(lm.config, trace.n_tokens, lm.model.wte.weight.dtype, layers)
        assert estimate == recorded_bytes(trace), (layers, estimate, recorded_bytes(trace))


def test_gpt2_xl_estimate_is_gigabytes():
    from tracegpt.model import GPTConfig

    xl = GPTConfig(n_layer=48, n_head=25, d_model=1600, n_ctx=1024, vocab_size=50257)
    full = costs.trace_bytes(xl, 1024, torch.float32)
    # 48 layers × 25 heads × 1024² scores alone are 5.0 GB; weights and probs are not held.
    assert 10e9 < full < 12e9
    assert costs.trace_bytes(xl, 1024, torch.bfloat16) < 0.6 * full
    assert costs.trace_bytes(xl, 1024, torch.float32, layers=[0, 1]) < 0.1 * full


def test_trace_refuses_what_would_not_fit_and_notes_what_is_big(made, run_cli, monkeypatch):
    folder = made["3L3H-tied"][0]
    monkeypatch.setattr(costs, "memory_available", lambda: 100_000)
    result = run_cli("trace", PROMPT, "--model", folder, "--json")
    assert_one_line_error(result, "more than the 0.0 GB of memory available", "--layers", "--dtype bfloat16", code=2)
    assert result.stdout == ""
    monkeypatch.setattr(costs, "memory_available", lambda: None)  # unknown: no check
    monkeypatch.setattr(costs, "NOTE_BYTES", 1000)
    result = run_cli("trace", PROMPT, "--model", folder, "--json", "--layers", "1")
    assert result.exit_code == 0
    n_tokens = len(result.json()["tokens"])
    assert result.stderr.startswith(f"note: tracing {n_tokens} tokens through 1 of 3 blocks in float32 records about")
    assert len(result.stderr.splitlines()) == 1
    assert result.json()["model"]["n_layer"] == 3
