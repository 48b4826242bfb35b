"""Bad checkpoint files: each refused before anything large is built, in one line that names the
file and what is wrong with it.

Every case runs `tracegpt trace` in a worker whose address space is capped (limited_cli), so a
file that makes tracegpt allocate gigabytes fails its case instead of eating the machine.
"""

import json
import os

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from checkpoint_kit import broken_copy, edit_config, rewrite_header, write_safetensors  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402
from limited_cli import LimitedCli  # noqa: E402

from tracegpt import loader  # noqa: E402

MEMORY = 3 * 2**30  # torch's import alone takes about 0.8 GB of address space
SECONDS = 2.0  # the bound for a refusal, torch's import not counted


@pytest.fixture(scope="module")
def cli():
    with LimitedCli(MEMORY) as limited:
        yield limited


def refused(outcome, *fragments, code=1):
    """One line naming what is wrong, quickly, with no trace of another library's formatting."""
    assert outcome.exit_code is not None, (outcome.died, outcome.stderr)
    assert_one_line_error(outcome, *fragments, code=code)
    assert "unexpected" not in outcome.stderr and "\x1b" not in outcome.stderr, outcome.stderr
    assert outcome.seconds < SECONDS, (outcome.seconds, outcome.stderr)


def trace(cli, model):
    return cli.run("trace", "hi", "--model", model)


# ---------------------------------------------------------------------------------------------
# Item 3: config.json's sizes are checked against the weights' headers before anything is built


@pytest.mark.parametrize("name, field, value, held", [
    ("3L3H-tied", "n_layer", 100_000, "holds 3 blocks (h.0 to h.2)"),
    ("3L3H-tied", "n_layer", 10**6, "holds 3 blocks (h.0 to h.2)"),
    ("3L3H-tied", "n_layer", 10**9, "holds 3 blocks (h.0 to h.2)"),
    ("3L3H-tied", "vocab_size", 10**7, "tensor 'wte.weight' has shape [397, 48] but the config needs [10000000, 48]"),
    ("3L3H-tied", "vocab_size", 10**9, "has shape [397, 48] but the config needs [1000000000, 48]"),
    ("3L3H-tied", "n_positions", 10**9, "tensor 'wpe.weight' has shape [128, 48]"),
    ("3L3H-tied", "n_embd", 3 * 10**8, "tensor 'wte.weight' has shape [397, 48] but the config needs [397, 300000000]"),
    ("3L3H-tied", "n_inner", 10**9, "tensor 'h.0.mlp.c_fc.weight' has shape [48, 192]"),
    ("4L7H-hub-bin", "n_layer", 100_000, "holds 4 blocks (h.0 to h.3)"),
    ("4L7H-hub-bin", "vocab_size", 10**7, "tensor 'wte.weight' has shape [397, 56]"),
    ("3L3H-tied-sharded", "n_layer", 100_000, "holds 3 blocks (h.0 to h.2)"),
])
def test_config_sizes_are_checked_against_the_weights_first(made, tmp_path, cli, name, field, value, held):
    folder = broken_copy(made, tmp_path, name)
    edit_config(folder, **{field: value})
    refused(trace(cli, folder), str(folder / "config.json"), f"has {field} {value}", held)


def test_the_field_is_named_as_config_json_spells_it(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 100_000  # transformers' alias of n_layer
    del config["n_layer"]
    (folder / "config.json").write_text(json.dumps(config))
    refused(trace(cli, folder), "has num_hidden_layers 100000", "holds 3 blocks")


def resave_with_vocabulary(folder, n_vocab: int):
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    wte = state["transformer.wte.weight"]
    state["transformer.wte.weight"] = torch.cat([wte, torch.zeros(n_vocab - len(wte), wte.shape[1])])
    save_file(state, str(path), metadata={"format": "pt"})
    edit_config(folder, vocab_size=n_vocab)


def test_a_vocabulary_far_past_the_tokenizer_is_refused(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path)
    resave_with_vocabulary(folder, 397 + 5000)  # weights and config agree; the tokenizer has 397 tokens
    refused(trace(cli, folder), str(folder / "config.json"), "has vocab_size 5397", "397 tokens")


def test_a_vocabulary_padded_to_a_round_number_is_accepted(made, tmp_path):
    folder = broken_copy(made, tmp_path)
    resave_with_vocabulary(folder, 512)  # 397 padded to a multiple of 128, as GPT-2 checkpoints sometimes are
    lm = loader.load(str(folder))
    assert lm.config.vocab_size == 512 and lm.card["tokenizer"]["unused_ids"] == 512 - 397
    assert lm.token_text(511) == "<|unused_511|>"


# ---------------------------------------------------------------------------------------------
# Item 4: no large allocation from a small file


def hub_state(made):
    return torch.load(made["4L7H-hub-bin"][0] / "pytorch_model.bin", weights_only=True)


def test_expanded_tensors_are_refused_before_they_are_copied(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    state = hub_state(made)
    state["wte.weight"] = torch.zeros(1, 56).expand(10**8, 56)  # 22 GB as float32, 240 bytes in the file
    torch.save(state, folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").stat().st_size < 2_000_000
    refused(trace(cli, folder), "pytorch_model.bin", "tensor 'wte.weight' has shape [100000000, 56]",
            "has vocab_size 397")


def test_a_small_pickle_of_stride_0_tensors_is_refused(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    torch.save({"wte.weight": torch.zeros(1, 16).expand(10**9, 16)}, folder / "pytorch_model.bin")
    refused(trace(cli, folder), "pytorch_model.bin", "tensor 'wte.weight' has shape [1000000000, 16]")


def test_an_expanded_tensor_of_the_right_shape_is_refused_too(made, tmp_path, cli):
    # The shapes agree with the config, but the file holds one row of it: a small file that
    # would grow into a model of any size the config names.
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    state = hub_state(made)
    state["wte.weight"] = state["wte.weight"][:1].expand(397, 56)
    torch.save(state, folder / "pytorch_model.bin")
    refused(trace(cli, folder), "pytorch_model.bin", "tensor 'wte.weight'", "holds 224 bytes for its 88928")


def test_tensors_sharing_their_data_are_refused(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    state = {k: v for k, v in hub_state(made).items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    for i in range(1, 4):  # every block a view of block 0's tensors: a model 4x the file
        for key in [k for k in state if k.startswith("h.0.")]:
            state[key.replace("h.0.", f"h.{i}.", 1)] = state[key]
    torch.save(state, folder / "pytorch_model.bin")
    refused(trace(cli, folder), "pytorch_model.bin", "share their data")


def test_overlapping_safetensors_offsets_are_refused(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path)
    path = folder / "model.safetensors"

    def overlap(header):
        header["transformer.h.1.ln_1.weight"]["data_offsets"] = header["transformer.h.0.ln_1.weight"]["data_offsets"]

    rewrite_header(path, overlap)
    refused(trace(cli, folder), str(path), "overlaps")


# ---------------------------------------------------------------------------------------------
# Item 7: config.json values of the wrong type or out of range


@pytest.mark.parametrize("changes, fragment", [
    ({"layer_norm_epsilon": float("inf")}, "layer_norm_epsilon must be a positive finite number, not inf"),
    ({"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon must be a positive finite number, not nan"),
    ({"layer_norm_epsilon": "1e-5"}, "layer_norm_epsilon must be a positive finite number, not '1e-5'"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings must be true or false, not 'yes'"),
    ({"tie_word_embeddings": 1}, "tie_word_embeddings must be true or false, not 1"),
    ({"activation_function": ["gelu"]}, "activation_function must be a string, not ['gelu']"),
    ({"architectures": "GPT2LMHeadModel"}, "architectures must be a list of names"),
    ({"architectures": [["GPT2LMHeadModel"]]}, "architectures must be a list of names"),
    ({"model_type": ["gpt2"]}, "model_type ['gpt2'] is not GPT-2"),
    ({"add_cross_attention": "no"}, "add_cross_attention must be true or false, not 'no'"),
    ({"n_layer": 3.0}, "n_layer must be a positive integer, not 3.0"),
])
def test_config_values_of_the_wrong_type_are_named(made, tmp_path, cli, changes, fragment):
    folder = broken_copy(made, tmp_path)
    edit_config(folder, **changes)
    refused(trace(cli, folder), str(folder / "config.json"), fragment)


DEEP = "[" * 100_000 + "]" * 100_000


def test_json_nested_100000_deep_is_refused(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace("{", '{"deep": ' + DEEP + ",", 1))
    refused(trace(cli, folder), str(folder / "config.json"), "nested too deeply")

    folder = broken_copy(made, tmp_path / "b")
    (folder / "vocab.json").write_text(DEEP)
    refused(trace(cli, folder), str(folder / "vocab.json"), "nested too deeply")

    folder = broken_copy(made, tmp_path / "c", "3L3H-tied-sharded")
    (folder / "model.safetensors.index.json").write_text(DEEP)
    refused(trace(cli, folder), "model.safetensors.index.json", "nested too deeply")

    folder = broken_copy(made, tmp_path / "d")
    path = folder / "model.safetensors"
    write_safetensors(path, DEEP.encode(), b"")
    refused(trace(cli, folder), str(path), "nested too deeply")


# ---------------------------------------------------------------------------------------------
# Item 8: malformed files, each named with what is wrong with it


@pytest.mark.parametrize("file", ["config.json", "vocab.json", "merges.txt"])
def test_text_files_that_are_not_utf8_are_named(made, tmp_path, cli, file):
    folder = broken_copy(made, tmp_path)
    path = folder / file
    path.write_bytes(path.read_bytes()[:-3] + b"\xc2")  # a character cut in half, as a truncated copy leaves it
    refused(trace(cli, folder), str(path), "not UTF-8 text: byte 0xc2")


def set_entry(key, value, tensor="transformer.h.0.ln_1.weight"):
    def change(header):
        header[tensor][key] = value(header[tensor][key]) if callable(value) else value
    return change


@pytest.mark.parametrize("change, fragments", [
    (set_entry("data_offsets", lambda o: [float(o[0]), o[1] + 0.5]), ["data_offsets must be two integers"]),
    (set_entry("data_offsets", lambda o: [o[0]]), ["data_offsets must be two integers"]),
    (set_entry("data_offsets", lambda o: [o[1], o[0]]), ["data_offsets"]),
    (set_entry("shape", 5), ["shape must be a list of sizes, not 5"]),
    (set_entry("shape", [-1, -48]), ["shape must be a list of sizes, not [-1, -48]"]),
    (set_entry("shape", [True, 48]), ["shape must be a list of sizes"]),
    (set_entry("shape", [7]), ["has 192 bytes for shape [7]"]),
    (set_entry("dtype", ["F32"]), ["dtype ['F32'] is not one tracegpt reads"]),
    (set_entry("dtype", "F8_E4M3"), ["dtype 'F8_E4M3' is not one tracegpt reads"]),
    (set_entry("dtype", "I32"), ["is I32, not floating point"]),
    (lambda h: h.update({"transformer.h.0.ln_1.weight": 5}), ["is not a JSON object"]),
    (lambda h: h.update({"__metadata__": {"format": ["pt"]}}), ["__metadata__ must map names to strings"]),
])
def test_malformed_safetensors_headers_are_named(made, tmp_path, cli, change, fragments):
    folder = broken_copy(made, tmp_path)
    path = folder / "model.safetensors"
    rewrite_header(path, change)
    refused(trace(cli, folder), str(path), "transformer.h.0.ln_1.weight" if "__metadata__" not in fragments[0]
            else "__metadata__", *fragments)


@pytest.mark.parametrize("file, content, fragments", [
    ("tokenizer_config.json", "[1, 2]", ["is not a JSON object"]),
    ("tokenizer_config.json", '{"added_tokens_decoder": "<|endoftext|>"}', ["added_tokens_decoder must be"]),
    ("tokenizer_config.json", '{"added_tokens_decoder": {"x": {"content": "a"}}}', ["added_tokens_decoder", "'x'"]),
    ("added_tokens.json", '["<|pad|>"]', ["is not a JSON object"]),
    ("added_tokens.json", '{"<|pad|>": "397"}', ["added token '<|pad|>' has id '397', not a token id"]),
    ("tokenizer.json", '{"added_tokens": {"id": 3}}', ["added_tokens must be a list"]),
    ("tokenizer.json", '{"added_tokens": [{"id": -3, "content": "<|x|>"}]}',
     ["added token '<|x|>' has id -3, not a token id"]),
])
def test_tokenizer_side_files_of_the_wrong_json_type_are_named(made, tmp_path, cli, file, content, fragments):
    folder = broken_copy(made, tmp_path)
    (folder / file).write_text(content)
    refused(trace(cli, folder), str(folder / file), *fragments)


def edit_vocab(folder, change):
    path = folder / "vocab.json"
    vocab = json.loads(path.read_text())
    change(vocab)
    path.write_text(json.dumps(vocab))


@pytest.mark.parametrize("change, fragment", [
    (lambda v: v.update({"Ġthe": -1}), "'Ġthe' has id -1, not a token id"),
    (lambda v: v.update({"Ġthe": True}), "'Ġthe' has id True, not a token id"),
    (lambda v: v.update({"Ġthe": 3.0}), "'Ġthe' has id 3.0, not a token id"),
])
def test_vocabulary_ids_that_are_not_token_ids_are_named(made, tmp_path, cli, change, fragment):
    folder = broken_copy(made, tmp_path)
    edit_vocab(folder, change)
    refused(trace(cli, folder), str(folder / "vocab.json"), fragment)


def tokenizer_json_only(made, tmp_path, bpe_dir, change):
    folder = broken_copy(made, tmp_path)
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    doc = json.loads((bpe_dir / "tokenizer.json.kept").read_text())
    change(doc)
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update({"model": ["BPE"]}), "not a GPT-2 style byte-level BPE tokenizer"),
    (lambda d: d.update({"pre_tokenizer": "ByteLevel"}), "not a GPT-2 style byte-level BPE tokenizer"),
    (lambda d: d["model"].update({"merges": [[1, 2]]}), "merge 1 is not a pair of tokens"),
    (lambda d: d["model"].update({"merges": 5}), "merges must be a list"),
    (lambda d: d["model"].update({"vocab": [["a", 1]]}), "is not a JSON object of token -> id"),
])
def test_a_malformed_tokenizer_json_is_named(made, tmp_path, bpe_dir, cli, change, fragment):
    folder = tokenizer_json_only(made, tmp_path, bpe_dir, change)
    refused(trace(cli, folder), str(folder / "tokenizer.json"), fragment)


def edit_index(folder, change, name="model.safetensors.index.json"):
    path = folder / name
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def first_key(doc):
    return next(iter(doc["weight_map"]))


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["weight_map"].update({first_key(d): 5}), "is not a file name"),
    (lambda d: d["weight_map"].update({first_key(d): ["model-00001-of-00002.safetensors"]}), "is not a file name"),
    (lambda d: d.update({"weight_map": ["model-00001-of-00002.safetensors"]}), "weight_map must be a JSON object"),
    (lambda d: d.pop("weight_map"), "no weight_map"),
    (lambda d: d["weight_map"].update({first_key(d): "config.json"}), "'config.json' is not a .safetensors file"),
    (lambda d: d["weight_map"].update({first_key(d): "model.safetensors.index.json"}),
     "'model.safetensors.index.json' is not a .safetensors file"),
    (lambda d: d["weight_map"].update({first_key(d): "../other/model.safetensors"}), "not a file beside the index"),
])
def test_shard_maps_that_are_not_shard_maps_are_named(made, tmp_path, cli, change, fragment):
    folder = broken_copy(made, tmp_path, "3L3H-tied-sharded")
    path = edit_index(folder, change)
    refused(trace(cli, folder), str(path), fragment)


def test_a_pytorch_shard_that_is_the_index_itself_is_named(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"weight_map": {"wte.weight": index.name}}))
    (folder / "pytorch_model.bin").rename(folder / "weights.bin")
    result = trace(cli, folder)
    refused(result, str(index), "'pytorch_model.bin.index.json' is not a .bin file")
    assert "pickle" not in result.stderr
    index.write_text(json.dumps({"weight_map": {"wte.weight": "notes.bin"}}))
    (folder / "notes.bin").write_text(json.dumps({"weight_map": {}}))  # JSON in a .bin: not a pickle at all
    result = trace(cli, folder)
    refused(result, str(folder / "notes.bin"), "not a PyTorch weights file")
    assert "pickle asks for more" not in result.stderr


@pytest.mark.parametrize("content, fragment", [
    (b"", "is empty"),
    (b"\x00" * 100, "not a PyTorch weights file"),
    (b"PK\x03\x04" + b"\x00" * 100, "cannot read"),
])
def test_pytorch_files_that_are_not_pytorch_files_are_named(made, tmp_path, cli, content, fragment):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    (folder / "pytorch_model.bin").write_bytes(content)
    refused(trace(cli, folder), str(folder / "pytorch_model.bin"), fragment)


@pytest.mark.parametrize("state, fragment", [
    ({0: torch.zeros(2)}, "key 0 is not a tensor name"),
    ({"wte.weight": 5}, "'wte.weight' is not a tensor"),
    ([torch.zeros(2)], "not a state dict"),
    ({"wte.weight": torch.zeros(397, 56, dtype=torch.int64)}, "'wte.weight' is torch.int64, not floating point"),
])
def test_pickles_that_are_not_state_dicts_are_named(made, tmp_path, cli, state, fragment):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    torch.save(state, folder / "pytorch_model.bin")
    refused(trace(cli, folder), str(folder / "pytorch_model.bin"), fragment)


def test_a_pickle_that_runs_code_is_refused_in_plain_words(made, tmp_path, cli):
    folder = broken_copy(made, tmp_path, "4L7H-hub-bin")
    torch.save({"wte.weight": torch.zeros(2), "trap": Trap()}, folder / "pytorch_model.bin")
    result = trace(cli, folder)
    refused(result, str(folder / "pytorch_model.bin"), "refused, the pickle asks for more than tensors",
            "Unsupported global")
    assert "trust" not in result.stderr  # torch's advice to load it unsafely is not passed on


class Trap:
    def __reduce__(self):
        return (print, ("this ran",))


def cache_with(made, root, repo="models--acme--tiny"):
    snapshot = root / repo / "snapshots" / ("a" * 40)
    snapshot.parent.mkdir(parents=True)
    import shutil

    shutil.copytree(made["3L3H-tied"][0], snapshot)
    (root / repo / "refs").mkdir()
    return root / repo / "refs" / "main"


@pytest.mark.parametrize("ref, fragment", [
    (b"\xff\xfe\x00a", "not a commit"),
    (b"../../../../tmp", "not a commit"),
])
def test_a_cache_ref_that_is_not_a_commit_is_named(made, tmp_path, ref, fragment, run_cli):
    main = cache_with(made, tmp_path / "hub")
    main.write_bytes(ref)
    result = run_cli("trace", "hi", "--model", "acme/tiny", env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert_one_line_error(result, str(main), fragment, code=1)


def test_a_home_folder_that_does_not_exist_is_named(run_cli, tmp_path):
    result = run_cli("trace", "hi", "--model", "~nosuchuser/ckpt")
    assert_one_line_error(result, "--model ~nosuchuser/ckpt", "no user 'nosuchuser'", code=2)
    result = run_cli("trace", "hi", "--model", "acme/tiny", env={"HF_HUB_CACHE": "~nosuchuser/hub"})
    assert_one_line_error(result, "HF_HUB_CACHE", "~nosuchuser/hub", "no user 'nosuchuser'", code=2)


def mode_0_stops_reads() -> bool:
    """False for root, who reads files whatever their mode (unless run without CAP_DAC_OVERRIDE)."""
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        os.chmod(f.name, 0)
        try:
            open(f.name).close()
            return False
        except PermissionError:
            return True


@pytest.mark.skipif(not mode_0_stops_reads(), reason="root reads files whatever their mode")
@pytest.mark.parametrize("name, file", [
    ("3L3H-tied", "config.json"), ("3L3H-tied", "model.safetensors"), ("3L3H-tied", "vocab.json"),
    ("3L3H-tied", "merges.txt"), ("4L7H-hub-bin", "pytorch_model.bin"),
    ("3L3H-tied-sharded", "model.safetensors.index.json"), ("3L3H-tied", "."),
])
def test_unreadable_files_are_named(made, tmp_path, run_cli, name, file):
    folder = broken_copy(made, tmp_path, name)
    path = folder / file
    path.chmod(0)
    try:
        result = run_cli("trace", "hi", "--model", folder if file != "." else folder / "model.safetensors")
    finally:
        path.chmod(0o755)
    assert_one_line_error(result, str(path.resolve() if file == "." else path), "permission denied", code=1)


# ---------------------------------------------------------------------------------------------
# Item 9: a vocabulary without <|endoftext|>


def test_a_vocabulary_without_end_of_text_loads_and_says_so(made, tmp_path, lm):
    folder = broken_copy(made, tmp_path)
    edit_vocab(folder, lambda v: v.pop("<|endoftext|>"))
    checkpoint = loader.load(str(folder))
    assert checkpoint.end_of_text is None
    assert checkpoint.token_text(0) == "<|unused_0|>"  # its id stays, unused
    assert loader.load(str(made["3L3H-tied"][0])).end_of_text == 0
    assert lm.end_of_text == lm.encoding.eot_token == lm.config.vocab_size - 1


def test_generate_without_end_of_text_runs_to_the_end_and_says_so_once(made, tmp_path, run_cli):
    folder = broken_copy(made, tmp_path)
    edit_vocab(folder, lambda v: v.pop("<|endoftext|>"))
    for args in ([], ["--json"]):
        r = run_cli("generate", "hi", "--model", folder, "-n", "5", "--seed", "1", *args)
        assert r.exit_code == 0, r.stderr
        assert r.stderr.count("has no <|endoftext|>") == 1
    assert json.loads(r.stdout.splitlines()[-1])["stop_reason"] == "max_new_tokens"


# ---------------------------------------------------------------------------------------------
# Writing over the model being loaded is always refused


@pytest.mark.parametrize("command, option, file", [
    ("trace", "--save", "model.safetensors"), ("attn", "--svg", "config.json"), ("lens", "--html", "vocab.json"),
    ("generate", "--save", "merges.txt")])
def test_no_output_ever_writes_over_the_model_it_read(made, tmp_path, run_cli, command, option, file):
    folder = broken_copy(made, tmp_path)
    before = (folder / file).read_bytes()
    r = run_cli(command, "hi", "--model", folder, option, folder / file)
    assert_one_line_error(r, f"{option} {folder / file}", "the model just loaded", "never writes over", code=2)
    assert (folder / file).read_bytes() == before


def test_the_embedded_models_files_are_never_written_over(run_cli):
    from tracegpt.embedded import ASSETS

    target = ASSETS / "shakespeare.safetensors"
    before = target.stat().st_size, target.stat().st_mtime_ns
    assert_one_line_error(run_cli("trace", "I love", "--save", target), "never writes over", code=2)
    assert (target.stat().st_size, target.stat().st_mtime_ns) == before
