import json
import os
import stat

import numpy as np
import pytest
from conftest import assert_one_line_error


def test_json_is_the_only_thing_on_stdout(run_cli):
    r = run_cli("trace", "I love", "--json", "--top-k", "3")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert [t["text"] for t in doc["tokens"]] == ["I", " love"]
    assert len(doc["next_token"]["top"]) == 3
    assert doc["model"]["name"] == "shakespeare"


def test_prompt_from_standard_input(run_cli):
    r = run_cli("trace", "-", "--json", input=b"I love\n")
    assert r.exit_code == 0, r.stderr
    assert r.json()["prompt"] == "I love"


def test_layers_and_position_choose_what_is_recorded_and_followed(run_cli):
    doc = run_cli("trace", "I love thee", "--json", "--layers", "1-2", "--position", "0").json()
    assert {s["layer"] for s in doc["stages"]} == {None, 1, 2}
    assert doc["focus_position"] == 0 and doc["next_token"]["position"] == 0


def test_save_writes_every_stage(run_cli, tmp_path):
    path = tmp_path / "t.npz"
    r = run_cli("trace", "I love", "--save", path, "--json")
    assert r.exit_code == 0, r.stderr
    with np.load(path) as npz:
        assert sorted(npz.files) == sorted([s["name"] for s in r.json()["stages"]] + ["token_texts"])
        assert list(npz["token_texts"]) == [t["text"] for t in r.json()["tokens"]]
    assert r.stderr.startswith(f"note: wrote {path}: {len(r.json()['stages']) + 1} arrays, ")


def test_view_is_printed_by_default(run_cli):
    r = run_cli("trace", "I love", "--width", "100")
    assert r.exit_code == 0, r.stderr
    for heading in ("Embedding", "Block 0", "Block 3", "Final LayerNorm", "Logits", "Next token"):
        assert heading in r.stdout
    assert "\x1b[" not in r.stdout  # not a terminal: no escape codes


@pytest.mark.parametrize("args, fragments, code", [
    (["trace", ""], ["prompt is empty"], 2),
    (["trace", " thee" * 300], ["at most 256"], 2),
    (["trace", "x" * 1_000_000], ["context of 256 tokens"], 2),
    (["trace", "I love", "--layers", "4"], ["0..3"], 2),
    (["trace", "I love", "--layers", "x"], ["--layers"], 2),
    (["trace", "I love", "--position", "2"], ["--position 2", "0..1"], 2),
    (["trace", "I love", "--top-k", "0"], ["--top-k 0", "at least 1"], 2),
    (["trace", "I love", "--model", "nope"], ["unknown model 'nope'"], 2),
    (["trace", "I love", "--save", "/nonexistent/dir/t.npz"], ["--save", "does not exist"], 2),
    (["trace", "I love", "--device", "cuda:7"], ["--device"], 2),
])
def test_bad_input_is_one_line(run_cli, args, fragments, code):
    assert_one_line_error(run_cli(*args), *fragments, code=code)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_save_path(run_cli, tmp_path):
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    assert_one_line_error(run_cli("trace", "I love", "--save", tmp_path / "t.npz"), "not writable")


def test_unwritable_save_path_is_a_directory(run_cli, tmp_path):
    assert_one_line_error(run_cli("trace", "I love", "--save", tmp_path), "is a directory", code=2)


def test_json_stays_small_for_a_full_context_prompt(run_cli):
    doc = run_cli("trace", " thee" * 256, "--json").stdout
    assert len(doc.encode()) < 5_000_000
    assert json.loads(doc)["tokens"][-1]["position"] == 255
