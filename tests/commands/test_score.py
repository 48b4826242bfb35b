"""`tracegpt score` through the CLI: JSON Lines, the view, --file and '-', --save, --position, --vs, bad input."""

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from tracegpt import costs

HERE = Path(__file__).parent.parent
HELDOUT = HERE / "data" / "heldout_tails.txt"
README = HERE.parent / "README.md"
LINE = "But soft, what light through yonder window breaks? It is the east, and Juliet is the sun."


def events(result) -> list[dict]:
    import json

    return [json.loads(line) for line in result.stdout.splitlines()]


def test_json_lines_one_event_per_scored_token_then_done(run_cli, lm):
    r = run_cli("score", LINE, "--json", "--top-k", "3")
    assert r.exit_code == 0, r.stderr
    out = events(r)
    n = len(lm.encode(LINE))
    tokens, done = out[:-1], out[-1]
    assert [e["event"] for e in tokens] == ["token"] * (n - 1) and done["event"] == "done"
    assert [e["position"] for e in tokens] == list(range(1, n))
    assert set(tokens[0]) == {"event", "model", "position", "id", "text", "prob", "bits", "rank", "context", "top"}
    for e in tokens:
        assert math.isclose(e["prob"], 2 ** -e["bits"], rel_tol=1e-6)
        assert len(e["top"]) == 3 and (e["rank"] == 1) == (e["top"][0]["id"] == e["id"])
    assert done["n_tokens"] == n and done["n_scored"] == n - 1 and done["n_top1"] == sum(e["rank"] == 1 for e in tokens)
    assert math.isclose(done["total_bits"], sum(e["bits"] for e in tokens), rel_tol=1e-6)
    assert math.isclose(done["bits_per_char"], done["total_bits"] / done["n_bytes"], rel_tol=1e-6)
    assert done["windows"] == {"window": 256, "stride": 128, "n_windows": 1, "min_context": None}


def test_the_heldout_figure_is_the_quality_tests(run_cli, lm):
    """`tracegpt score --file tests/data/heldout_tails.txt` reports what tests/test_loader.py measures, and the
    README quotes it."""
    from test_loader import bits_per_char

    measured = bits_per_char(lm, HELDOUT.read_text())
    r = run_cli("score", "--file", HELDOUT, "--summary", "--width", "100")
    assert r.exit_code == 0, r.stderr
    assert f"{measured:.3f} bits, over the" in r.stdout
    assert "50 windows of 256 tokens, stride 128" in " ".join(r.stdout.split())
    readme = README.read_text()
    capture = readme[readme.index("<!-- capture: tracegpt score --file tests/data/heldout_tails.txt"):]
    capture = capture[: capture.index("```\n", capture.index("```\n") + 4)]
    assert f"{measured:.3f} bits" in capture


def test_standard_input_and_a_file_give_the_same_scores(run_cli, tmp_path):
    path = tmp_path / "line.txt"
    path.write_text(LINE, encoding="utf-8")
    from_file = events(run_cli("score", "--file", path, "--json"))[-1]
    from_stdin = events(run_cli("score", "-", "--json", input=LINE + "\n"))[-1]  # one trailing newline dropped
    from_argument = events(run_cli("score", LINE, "--json"))[-1]
    assert from_file == from_stdin == from_argument


def test_the_view(run_cli):
    r = run_cli("score", LINE, "--width", "80")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    for part in ("each token tinted by its surprise", "<2 bits", "≥15 bits", "The 10 most surprising tokens:",
                 "the model's top guess", "Summary (shakespeare)", "perplexity", "top guess right"):
        assert part in out, part
    assert "Juliet" in out and "as training sees it" not in out


def test_a_position_worked_out(run_cli, lm):
    r = run_cli("score", LINE, "--position", "20", "--width", "100")
    assert r.exit_code == 0, r.stderr
    token = lm.token_text(lm.encode(LINE)[20]).replace(" ", "␣")
    assert f"Position 20, '{token}', as training sees it" in r.stdout
    assert f"−ln p('{token}') = ln Σ exp(z)" in r.stdout
    doc = [e for e in events(run_cli("score", LINE, "--position", "20", "--json")) if e["event"] == "position"]
    assert len(doc) == 1 and doc[0]["position"] == 20 and doc[0]["true"]["is_true"]
    assert math.isclose(doc[0]["nats"], doc[0]["logsumexp"] - doc[0]["true"]["logit"], rel_tol=1e-6)


def test_a_long_text_is_scored_in_sliding_windows(run_cli, lm):
    text = HELDOUT.read_text()[:4000]
    done = events(run_cli("score", text, "--json", "--stride", "64", "--top-k", "0"))[-1]
    n = len(lm.encode(text))
    assert done["n_scored"] == n - 1
    assert done["windows"]["stride"] == 64 and done["windows"]["min_context"] == 256 - 64 + 1
    assert done["windows"]["n_windows"] == math.ceil((n - 257) / 64) + 1


def test_save_keeps_per_token_arrays(run_cli, tmp_path, lm):
    path = tmp_path / "s.npz"
    r = run_cli("score", LINE, "--save", path, "--json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith(f"note: wrote {path}: 8 arrays, ")
    npz = np.load(path)
    n = len(lm.encode(LINE))
    assert {"ids", "probs", "bits", "ranks", "top_ids", "top_probs", "context", "n_bytes"} <= set(npz.files)
    assert npz["ids"].tolist() == lm.encode(LINE) and npz["top_ids"].shape == (n, 5)
    assert np.isnan(npz["probs"][0]) and npz["ranks"][0] == 0
    assert np.allclose(npz["bits"][1:], -np.log2(npz["probs"][1:]))
    tokens = [e for e in events(r) if e["event"] == "token"]
    assert np.allclose(npz["bits"][1:], [e["bits"] for e in tokens])


def test_two_models_on_one_text(run_cli, made, tmp_path):
    other = made["3L3H-tied"][0]
    r = run_cli("score", LINE, "--vs", other, "--width", "80", "-n", "4")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "shakespeare and 3L3H-tied on the same text" in out
    assert "bits per character" in out and "The 4 words where they disagree most" in out
    j = events(run_cli("score", LINE, "--vs", other, "--json", "-n", "3", "--save", tmp_path / "two.npz"))
    done = [e for e in j if e["event"] == "done"]
    assert [d["model"] for d in done] == ["shakespeare", "3L3H-tied"]
    assert {e["model"] for e in j if e["event"] == "token"} == {"shakespeare", "3L3H-tied"}
    comparison = j[-1]
    assert comparison["event"] == "comparison" and comparison["models"] == ["shakespeare", "3L3H-tied"]
    assert len(comparison["words"]) == 3
    diffs = [abs(w["difference"]) for w in comparison["words"]]
    assert diffs == sorted(diffs, reverse=True)
    assert {"ids", "vs/ids", "vs/bits"} <= set(np.load(tmp_path / "two.npz").files)


@pytest.mark.parametrize("width", [80, 140])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_view_fits_in_both_languages(run_cli, width, lang):
    from rich.cells import cell_len

    r = run_cli("score", LINE, "--position", "5", "--lang", lang, "--width", width)
    assert r.exit_code == 0, r.stderr
    assert max(cell_len(line) for line in r.stdout.splitlines()) <= width
    assert ("训练时看到的这一步" in r.stdout) == (lang == "zh")


BACKGROUND = re.compile(r"\x1b\[[0-9;]*(?<![0-9])(4[0-7]|48|10[0-7])[;m]")


def test_colour_only_when_wanted(run_cli):
    from test_cli import COLOUR

    coloured = run_cli("score", LINE, env={"FORCE_COLOR": "1"}).stdout
    assert COLOUR.search(coloured) and BACKGROUND.search(coloured)
    plain = run_cli("score", LINE, "--no-color", env={"FORCE_COLOR": "1"}).stdout
    assert not COLOUR.search(plain) and not BACKGROUND.search(plain)
    assert "\x1b[" not in run_cli("score", LINE).stdout  # not a terminal: no escape codes at all


def test_svg_and_html(run_cli, tmp_path):
    r = run_cli("score", LINE, "--svg", tmp_path / "s.svg", "--html", tmp_path / "s.html")
    assert r.exit_code == 0, r.stderr
    assert ET.parse(tmp_path / "s.svg").getroot().tag.endswith("svg")
    assert "most surprising" in (tmp_path / "s.html").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["score", ""], "the text is empty, so there is nothing to score"),
    (["score", "I"], "the text is one token, so there is nothing to score"),
    (["score"], "give the text to score as an argument"),
    (["score", "I love", "--file", "x.txt"], "one of the two"),
    (["score", "--file", "/nonexistent/x.txt"], "--file /nonexistent/x.txt: cannot read (no such file"),
    (["score", "I love thee", "--stride", "0"], "--stride 0 is out of range; it must be in 1..256"),
    (["score", "I love thee", "--window", "300"], "--window 300 is out of range; shakespeare reads 1..256"),
    (["score", "I love thee", "--position", "0"], "--position 0 is out of range; the scored positions are 1..2"),
    (["score", "I love thee", "--top-k", "-1"], "--top-k -1 is out of range"),
    (["score", "I love thee", "--lang", "xx"], "--lang 'xx' is not available"),
    (["score", "I love thee", "--json", "--svg", "x.svg"], "--svg saves the view"),
    (["score", "I love thee", "--vs", "nope"], "unknown model 'nope'"),
])
def test_bad_input_is_one_line(run_cli, args, fragment):
    assert_one_line_error(run_cli(*args), fragment, code=2)


def test_a_file_that_is_not_utf8(run_cli, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"To be \xff or not")
    assert_one_line_error(run_cli("score", "--file", path), "is not valid UTF-8 (byte 0xff at offset 6)", code=2)


def test_a_text_that_would_not_fit_in_memory_is_refused_with_the_estimate(run_cli, monkeypatch):
    monkeypatch.setattr(costs, "memory_available", lambda: 1_000_000)
    r = run_cli("score", "--file", HELDOUT)
    assert_one_line_error(r, "scoring 6,407 tokens with shakespeare in windows of 256 needs about", "MB, more than the "
                          "1.0 MB of memory available; use a smaller window or a shorter text", code=2)


def test_nothing_to_score_is_said_before_torch_loads():
    code = ("import sys; from tracegpt.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['score', '-'], input=''); print(r.exit_code, 'torch' in sys.modules); "
            "r = CliRunner().invoke(app, ['score', '--help']); print(r.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["2 False", "0 False"]
