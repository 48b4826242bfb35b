"""`tracegpt neuron` through the CLI: the embedded model's own index, --prompt, --json, exports, another
model's index built with --build-index, and every mistake as one line."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from tracegpt import loader
from tracegpt.analysis import neurons
from tracegpt.texts import quoted

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def doc():
    from typer.testing import CliRunner

    from tracegpt.cli import app

    r = CliRunner().invoke(app, ["neuron", "2.403", "--prompt", "It was like an unskilful", "--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_the_embedded_model_ships_its_index(lm):
    path = neurons.default_index_path(lm)
    assert path == loader.ASSETS / "shakespeare.neurons.npz" and path.stat().st_size <= 1.5e6
    index = neurons.read_index(path, lm)  # built for the shipped weights
    assert index.meta["corpus"]["kind"] == "training" and index.n_tokens == lm.card["corpus"]["train_tokens"]
    assert lm.card["neuron_index"]["file"] == path.name
    assert lm.card["neuron_index"]["weights_sha256"] == index.meta["weights"][0]["sha256"]


def test_json_has_every_part(doc):
    assert doc["neuron"] == {"name": "2.403", "layer": 2, "index": 403, "site": "blocks.2.mlp.act[neuron=403]",
                             "d_mlp": 1024}
    assert len(doc["writes"]["up"]) == len(doc["writes"]["down"]) == 10
    assert doc["writes"]["up"][0]["value"] > 0 > doc["writes"]["down"][0]["value"]
    assert len(doc["contexts"]) == 8
    acts = [c["activation"] for c in doc["contexts"]]
    assert acts == sorted(acts, reverse=True) and acts[0] == doc["distribution"]["max"]
    for c in doc["contexts"]:  # the rerun's value at the firing token is the stored one
        assert abs(c["tokens"][c["firing"]]["activation"] - c["activation"]) < 1e-3
    p = doc["prompt"]
    assert p["tokens"][p["max"]["position"]]["text"] == " an"
    assert p["standing"]["above_level"] is not None


def test_printed_tokens_are_the_weights_product(run_cli, lm):
    """The view's first rows: the tokens and values a by-hand product of the weights gives."""
    m = lm.model
    row = m.h[2].mlp.c_proj.weight[403].detach().double()
    effect = m.wte.weight.detach().double() @ ((row - row.mean()) * m.ln_f.weight.detach().double())
    up, down = effect.argsort(descending=True)[:3].tolist(), effect.argsort()[:3].tolist()
    r = run_cli("neuron", "2.403", "--width", 120)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("pushes up"))) + 1
    for i in range(3):
        words = lines[first + i].split()
        assert words[0] == quoted(lm.token_text(up[i])) and words[1] == f"{effect[up[i]].item():+.3f}"
        assert words[2] == quoted(lm.token_text(down[i])) and words[3] == f"{effect[down[i]].item():+.3f}"
    assert "direct effect only" in r.stdout


@pytest.mark.parametrize("width", [80, 140])
def test_view_fits_the_width(run_cli, width):
    r = run_cli("neuron", "3.443", "--prompt", "HAMLET.\nTo be", "--width", width)
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= width
    for part in ("What it writes", "Where it fires", "On your prompt", "colour = activation"):
        assert part in r.stdout
    assert r.stdout.count("⟦") == 8 + 1  # 8 contexts, and the sentence that explains the marks


def test_svg_and_html_export(run_cli, tmp_path):
    r = run_cli("neuron", "0.7", "--svg", tmp_path / "n.svg", "--html", tmp_path / "n.html")
    assert r.exit_code == 0, r.stderr
    assert ET.parse(tmp_path / "n.svg").getroot().tag.endswith("svg")
    assert "Where it fires" in (tmp_path / "n.html").read_text()


@pytest.mark.parametrize("args, fragments", [
    (["neuron"], ["LAYER.NEURON", "--build-index"]),
    (["neuron", "2"], ["neuron '2' is not LAYER.NEURON", "layers 0..3 and neurons 0..1023"]),
    (["neuron", "9.1"], ["layer 9 does not exist", "layers 0..3"]),
    (["neuron", "2.5000"], ["neuron 5000 does not exist", "neurons 0..1023"]),
    (["neuron", "2.403", "--top-k", "0"], ["--top-k 0"]),
    (["neuron", "2.403", "--index", "/nonexistent/i.npz"], ["--index /nonexistent/i.npz: no such file"]),
    (["neuron", "2.403", "--out", "x.npz"], ["--out is for --build-index"]),
    (["neuron", "2.403", "--json", "--svg", "x.svg"], ["--svg saves the view"]),
    (["neuron", "2.403", "--prompt", ""], ["prompt is empty"]),
])
def test_mistakes_are_one_line(run_cli, args, fragments):
    assert_one_line_error(run_cli(*args), *fragments, code=2)


def test_a_broken_index_is_one_line(run_cli, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    assert_one_line_error(run_cli("neuron", "2.403", "--index", bad), str(bad), "not a readable", code=1)


@pytest.mark.parametrize("args, fragments", [
    (["--build-index"], ["needs --out FILE"]),
    (["--build-index", "--out", "/nonexistent/dir/x.npz"], ["folder /nonexistent/dir does not exist"]),
    (["--build-index", "--out", "{tmp}"], ["is a directory"]),
    (["--build-index", "--out", "{tmp}/x.npz", "--text", "/nonexistent.txt"],
     ["--text /nonexistent.txt: no such file"]),
    (["--build-index", "--out", "{tmp}/x.npz", "--text", "{tmp}"], ["is a directory"]),
    (["--build-index", "--out", "{tmp}/x.npz", "--text", "{tmp}/latin1.txt"], ["not UTF-8", "0xe9"]),
    (["--build-index", "--out", "{tmp}/x.npz", "--text", "{tmp}/empty.txt"], ["the file is empty"]),
    (["2.403", "--build-index", "--out", "{tmp}/x.npz"], ["leave out a neuron"]),
    (["--build-index", "--out", "{tmp}/x.npz", "--prompt", "hi"], ["leave out --prompt"]),
    (["--build-index", "--out", "{assets}/shakespeare.safetensors", "--text", "{tmp}/ok.txt"],
     ["tracegpt never writes over the model it reads"]),
])
def test_build_index_mistakes_are_one_line(run_cli, tmp_path, args, fragments):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "ok.txt").write_text("To be, or not to be")
    args = [a.format(tmp=tmp_path, assets=loader.ASSETS) for a in args]
    assert_one_line_error(run_cli("neuron", *args), *fragments, code=2)
    assert not (tmp_path / "x.npz").exists()


@pytest.fixture(scope="module")
def checkpoint(made):
    return made["3L3H-tied"][0]


def test_another_model_without_an_index_shows_what_it_can(run_cli, checkpoint):
    r = run_cli("neuron", "1.5", "--model", checkpoint, "--prompt", "Good morrow", "--width", 100)
    assert r.exit_code == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "What it writes" in flat and "On your prompt" in flat and "Where it fires" not in flat
    assert "--build-index --model" in flat and "--text FILE --out FILE" in flat
    r = run_cli("neuron", "1.5", "--model", checkpoint, "--json")
    assert r.json()["contexts"] is None and r.json()["neuron"]["d_mlp"] == 192


def test_another_model_with_its_own_index(run_cli, checkpoint, tmp_path):
    out = tmp_path / "ck.npz"
    r = run_cli("neuron", "--build-index", "--model", checkpoint, "--text", DATA / "twelfth_night_act2.txt",
                "--out", out, "--json")
    assert r.exit_code == 0, r.stderr
    summary = r.json()
    assert summary["path"] == str(out) and summary["bytes"] == out.stat().st_size
    assert summary["n_layer"] == 3 and summary["d_mlp"] == 192 and summary["corpus"]["file"] == "twelfth_night_act2.txt"
    assert r.stderr == ""  # no progress bar when standard error is not a terminal
    r = run_cli("neuron", "2.17", "--model", checkpoint, "--index", out, "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert len(doc["contexts"]) == 8 and doc["index"]["file"] == "ck.npz"
    lm = loader.load(str(checkpoint))
    index = neurons.read_index(out, lm)
    np.testing.assert_allclose([c["activation"] for c in doc["contexts"]], index.activation[2, 17], atol=1e-6)
    r = run_cli("neuron", "--build-index", "--model", checkpoint, "--text", DATA / "heldout_tails.txt", "--out", out)
    assert r.exit_code == 0 and f"Wrote {out}" in " ".join(r.stdout.split()), r.stderr


def test_an_index_of_another_model_is_refused(run_cli, checkpoint):
    assert_one_line_error(run_cli("neuron", "1.5", "--model", checkpoint, "--index",
                                  loader.ASSETS / "shakespeare.neurons.npz"), "is for a model of 4 layers", code=1)


def test_a_checkpoint_needs_a_text_to_build(run_cli, checkpoint, tmp_path):
    assert_one_line_error(run_cli("neuron", "--build-index", "--model", checkpoint, "--out", tmp_path / "x.npz"),
                          "needs --text FILE", code=2)
