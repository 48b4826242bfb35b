"""`tracegpt attribute` through the CLI: the view, --json's every term, --save's arrays, one-line errors."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import assert_one_line_error

PROMPT = "To be, or not to be, that is the"


def test_json_has_every_term_and_they_add_up(run_cli, lm):
    r = run_cli("attribute", PROMPT, "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    c = lm.config
    assert len(doc["terms"]) == 3 + c.n_layer * (c.n_head + 2)
    assert sum(t["value"] for t in doc["terms"]) == pytest.approx(doc["logit"], abs=1e-4)
    assert doc["token"]["rank"] == 1 and doc["vs"] is None and doc["position"] == len(doc["tokens"]) - 1
    assert doc["neurons"] is None


def test_a_chosen_token_against_another_at_a_chosen_position(run_cli):
    r = run_cli("attribute", PROMPT, "--token", " thee", "--vs", " you", "--position", 2, "--neurons", 1, "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["token"]["text"] == " thee" and doc["vs"]["text"] == " you" and doc["position"] == 2
    assert doc["logit"] == pytest.approx(doc["token"]["logit"] - doc["vs"]["logit"], abs=1e-5)
    assert doc["total"] == pytest.approx(doc["logit"], abs=1e-4)
    mlp = next(t["value"] for t in doc["terms"] if t["kind"] == "mlp" and t["layer"] == 1)
    split = doc["neurons"]
    assert split["layer"] == 1 and split["mlp"] == pytest.approx(mlp)
    assert sum(n["value"] for n in split["neurons"]) + split["bias"] == pytest.approx(mlp, abs=1e-5)


def test_save_keeps_the_arrays_the_terms_are_read_from(run_cli, tmp_path):
    path = tmp_path / "a.npz"
    r = run_cli("attribute", PROMPT, "--save", path, "--neurons", 2, "--width", 80)
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith(f"note: wrote {path}: 16 arrays, ")
    with np.load(path) as a:
        terms, vectors, readout = a["terms"], a["vectors"], a["readout"]
        np.testing.assert_allclose(vectors @ readout, terms[:-1], atol=1e-9)  # the last: the LayerNorm's bias
        assert a["term_kind"][-1] == "ln_f_bias" and terms.sum() == pytest.approx(float(a["logit"]), abs=1e-4)
        assert a["head_terms"].shape == (4, 4) and a["neuron_values"].shape == (1024,)
    assert "The 27 parts add up to" in r.stdout


def test_the_view_and_its_svg(run_cli, tmp_path):
    r = run_cli("attribute", "I love", "--width", 80, "--svg", tmp_path / "a.svg")
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "Where the logit of '␣you' comes from" in r.stdout and "layer \\ head" in r.stdout
    assert ET.parse(tmp_path / "a.svg").getroot().tag.endswith("svg")


@pytest.mark.parametrize("args, fragments", [
    (["--token", " you you"], ["--token ' you you' is 2 tokens", "one token"]),
    (["--token", ""], ["--token '' is 0 tokens"]),
    (["--position", 9], ["--position 9 is out of range", "0..1"]),
    (["--position", -3], ["--position -3 is out of range"]),
    (["--neurons", 9], ["--neurons 9 does not exist", "layers 0..3"]),
    (["--vs", " you"], ["--vs ' you' is the top prediction"]),
    (["--token", " thee", "--vs", " thee"], ["--vs ' thee' is the same token as --token"]),
    (["--vs", "thee thee"], ["--vs 'thee thee' is 2 tokens"]),
    (["--json", "--svg", "x.svg"], ["--svg saves the view"]),
])
def test_bad_values_are_one_line_errors(run_cli, args, fragments):
    assert_one_line_error(run_cli("attribute", "I love", *args), *fragments, code=2)


def test_an_untied_checkpoint(run_cli, made):
    folder, _ = made["2L5H-untied-flags"]
    r = run_cli("attribute", PROMPT, "--model", folder, "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["total"] == pytest.approx(doc["logit"], abs=1e-4)


@pytest.mark.parametrize("args", ["['attribute', 'x' * 1_000_000]", "['heads', '--prompt', 'x' * 1_000_000]"])
def test_a_prompt_far_too_long_is_refused_before_torch_loads(args):
    import os
    import subprocess
    import sys

    code = ("import sys; from tracegpt.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, {args}); print(r.exit_code, 'torch' in sys.modules); print(r.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "TRACEGPT_MODEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    first, message = out.split("\n", 1)
    assert first == "2 False" and "far more than shakespeare's context of 256 tokens" in message
