"""`tracegpt attn` through the CLI: the JSON holds the model's numbers, the worked cell adds up, errors are one line."""

import json
import math
import xml.etree.ElementTree as ET

import pytest
import torch
from conftest import assert_one_line_error
from typer.testing import CliRunner

from tracegpt import loader
from tracegpt.cli import app
from tracegpt.commands.attn import DEFAULT_PROMPT
from tracegpt.tracer import run_trace

PROMPT = "To be, or not to be, that is the question:"


@pytest.fixture
def cli(run_cli, lm, monkeypatch):
    """The CLI, handed the session's model: one load per test run, and the very weights the traces here use
    (the embedded weights file may be replaced by a training run between two loads)."""
    real_load = loader.load

    def load(source=None, device="cpu", dtype="float32"):
        if source in (None, lm.name) and device == "cpu" and dtype == "float32":
            return lm
        return real_load(source, device=device, dtype=dtype)

    monkeypatch.setattr(loader, "load", load)
    return run_cli


@pytest.fixture(scope="module")
def traced(lm):
    return run_trace(lm, PROMPT, stages=["attn.*"])


@pytest.fixture(scope="module")
def traced_layer(lm):
    """A trace of one layer, as `attn --layer N` records it. Blocks not recorded run fused attention, so
    its numbers can differ from an all-layer trace in the last bits: compare like with like."""
    cache = {}

    def trace(layer):
        if layer not in cache:
            cache[layer] = run_trace(lm, PROMPT, layers=[layer], stages=["attn.*"])
        return cache[layer]

    return trace


@pytest.fixture(scope="module")
def every_head(lm):
    """--layer all --head all as JSON, run once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader, "load", lambda *args, **kwargs: lm)
        result = CliRunner().invoke(app, ["attn", PROMPT, "--layer", "all", "--head", "all", "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def heads_of(doc):
    return [(layer["layer"], entry) for layer in doc["layers"] for entry in layer["heads"]]


# --- the JSON is the model's numbers ------------------------------------------------------------------


def test_every_head_is_in_the_all_document(every_head, lm):
    assert [layer["layer"] for layer in every_head["layers"]] == list(range(lm.config.n_layer))
    for layer in every_head["layers"]:
        assert [e["head"] for e in layer["heads"]] == list(range(lm.config.n_head))
    assert every_head["all_heads"] is True


def test_json_weights_equal_traced_weights(every_head, traced):
    for layer, entry in heads_of(every_head):
        recorded = traced[f"blocks.{layer}.attn.weights"][entry["head"]]
        assert torch.equal(torch.tensor(entry["weights"], dtype=torch.float32), recorded), (layer, entry["head"])


def test_each_row_sums_to_one(every_head):
    for layer, entry in heads_of(every_head):
        for i, row in enumerate(entry["weights"]):
            assert math.isclose(sum(row), 1.0, abs_tol=1e-5), (layer, entry["head"], i)


def test_future_cells_are_zero_in_weights_and_null_in_scores(every_head, traced):
    n = len(every_head["tokens"])
    for layer, entry in heads_of(every_head):
        recorded = traced[f"blocks.{layer}.attn.scores"][entry["head"]]
        for i in range(n):
            for j in range(n):
                if j > i:
                    assert entry["weights"][i][j] == 0.0 and entry["scores"][i][j] is None, (layer, i, j)
                else:
                    assert torch.tensor(entry["scores"][i][j], dtype=torch.float32) == recorded[i, j], (layer, i, j)
    assert every_head["mask"] == [[j <= i for j in range(n)] for i in range(n)]


def test_tokens_are_the_prompts_tokens(every_head, lm):
    ids = lm.encode(PROMPT)
    assert [t["id"] for t in every_head["tokens"]] == ids
    assert [t["position"] for t in every_head["tokens"]] == list(range(len(ids)))
    assert "".join(t["text"] for t in every_head["tokens"]) == PROMPT


def test_focus_summary_follows_position(cli, traced_layer):
    doc = cli("attn", PROMPT, "--layer", "1", "--position", "4", "--json").json()
    assert doc["focus_position"] == 4
    for entry in doc["layers"][0]["heads"]:
        row = traced_layer(1)["blocks.1.attn.weights"][entry["head"], 4, :5].double()
        assert entry["focus"]["top"][0]["position"] == int(row.argmax())
        entropy = -(row * row.log2()).sum().item()
        assert entry["focus"]["entropy_bits"] == pytest.approx(entropy, abs=1e-6)
        assert entry["focus"]["max_entropy_bits"] == pytest.approx(math.log2(5))


def test_one_head_puts_its_fields_at_the_top(cli, lm, traced_layer):
    last = lm.config.n_layer - 1
    doc = cli("attn", PROMPT, "--head", "2", "--json").json()  # --layer defaults to the last
    assert doc["layer"] == last and doc["head"] == 2 and "layers" not in doc
    recorded = traced_layer(last)[f"blocks.{last}.attn.weights"][2]
    assert torch.equal(torch.tensor(doc["weights"], dtype=torch.float32), recorded)
    assert doc["scale"] == lm.model.h[last].attn.scale


def test_layer_all_with_one_head_gives_a_block_per_layer(cli, lm):
    doc = cli("attn", "I love you", "--layer", "all", "--head", "1", "--json").json()
    assert [(layer["layer"], [e["head"] for e in layer["heads"]]) for layer in doc["layers"]] == \
        [(i, [1]) for i in range(lm.config.n_layer)]


def test_no_prompt_uses_the_example_and_says_so(cli):
    assert cli("attn", "--json").json()["prompt"] == DEFAULT_PROMPT
    shown = cli("attn", "--width", "120")
    assert shown.exit_code == 0, shown.stderr
    assert "To␣be,␣or␣not␣to␣be" in shown.stdout and "built-in example" in shown.stdout


# --- the worked example adds up -----------------------------------------------------------------------


# Negative positions count from the end (-1 = the last token), as on the command line.
@pytest.mark.parametrize("layer, head, query, key", [(0, 0, -1, 0), (1, 2, 6, 1), (2, 3, 5, 5), (3, 1, -1, -3),
                                                     (3, 0, 0, 0)])
def test_worked_example_reproduces_the_heatmap_cell(cli, lm, traced_layer, layer, head, query, key):
    doc = cli("attn", PROMPT, "--layer", layer, "--head", head, "--query", query, "--key", key, "--json").json()
    n = len(doc["tokens"])
    query, key = query % n, key % n
    w = doc["worked"]
    traced = traced_layer(layer)
    stage = f"blocks.{layer}.attn."
    q = traced[stage + "q"][head, query].double()
    k = traced[stage + "k"][head, key].double()
    scale = lm.model.h[layer].attn.scale

    assert (w["query"], w["key"], w["d_head"]) == (query, key, lm.config.d_head)
    assert w["q"] == pytest.approx(q[: len(w["dims"])].tolist(), abs=1e-7)
    assert w["k"] == pytest.approx(k[: len(w["dims"])].tolist(), abs=1e-7)
    assert w["dot"] == pytest.approx((q * k).sum().item(), abs=1e-6)
    assert w["score"] == pytest.approx(w["dot"] * scale, abs=1e-6)
    assert w["score"] == pytest.approx(doc["scores"][query][key], abs=1e-5)  # float32 matmul vs float64 sum

    # The whole row's softmax, from the worked numbers, lands on the heatmap's cells.
    assert [r["key"] for r in w["row"]] == list(range(query + 1))
    assert w["masked_keys"] == list(range(query + 1, len(doc["tokens"])))
    assert w["sum_exp"] == pytest.approx(sum(math.exp(r["score"] - w["row_max"]) for r in w["row"]), rel=1e-7)
    assert w["weight"] == pytest.approx(math.exp(w["recorded_score"] - w["row_max"]) / w["sum_exp"], abs=1e-7)
    assert w["weight"] == pytest.approx(doc["weights"][query][key], abs=1e-6)
    for r in w["row"]:
        assert r["weight"] == pytest.approx(doc["weights"][query][r["key"]], abs=1e-6)

    # And from q and k alone: softmax(q·K × scale) over the keys the mask keeps.
    keys = traced[stage + "k"][head, : query + 1].double()
    assert torch.softmax(keys @ q * scale, dim=0)[key].item() == pytest.approx(doc["weights"][query][key], abs=1e-6)

    # What the weight pulls in, and the head's output as the sum of all such pulls.
    v = traced[stage + "v"][head].double()
    n = len(w["dims"])
    assert w["v"] == pytest.approx(v[key, :n].tolist(), abs=1e-7)
    assert w["weighted_v"] == pytest.approx((w["recorded_weight"] * v[key, :n]).tolist(), abs=1e-7)
    weights_row = traced[stage + "weights"][head, query].double()
    assert w["mix"] == pytest.approx((weights_row @ v)[:n].tolist(), abs=1e-5)


def test_worked_example_uses_the_layers_own_scale(cli, lm, monkeypatch):
    # GPT-2 checkpoints may also divide by layer + 1: the model's attribute is the truth, not √d_head.
    attention = lm.model.h[2].attn
    monkeypatch.setattr(attention, "scale", attention.scale / 3)
    doc = cli("attn", PROMPT, "--layer", "2", "--head", "1", "--query", "9", "--key", "4", "--json").json()
    w = doc["worked"]
    assert doc["scale"] == w["scale"] == attention.scale
    assert doc["scale_text"] == f"1/(√{lm.config.d_head}·3)"
    assert w["score"] == pytest.approx(w["dot"] * attention.scale, abs=1e-6)
    assert w["score"] == pytest.approx(doc["scores"][9][4], abs=1e-5)
    assert w["weight"] == pytest.approx(doc["weights"][9][4], abs=1e-6)


def test_worked_example_shows_its_numbers(cli):
    result = cli("attn", PROMPT, "--layer", "1", "--head", "2", "--query", "6", "--key", "1", "--width", "100")
    assert result.exit_code == 0, result.stderr
    w = cli("attn", PROMPT, "--layer", "1", "--head", "2", "--query", "6", "--key", "1", "--json").json()["worked"]
    for number in (f"{w['dot']:.4f}", f"{w['score']:.4f}", f"{w['sum_exp']:.4f}", f"{w['weight']:.6f}",
                   f"{w['q'][0]:.4f}", f"{w['k'][0]:.4f}", f"{w['v'][0]:.4f}"):
        assert number in result.stdout, number
    assert "score[6, 1]" in result.stdout


# --- export ---------------------------------------------------------------------------------------------


def test_svg_and_html_save_what_the_terminal_showed(cli, tmp_path):
    svg, html = tmp_path / "head.svg", tmp_path / "head.html"
    result = cli("attn", "I love you", "--layer", "0", "--head", "1", "--width", "80", "--svg", svg, "--html", html)
    assert result.exit_code == 0, result.stderr
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    svg_text = "".join(t.text or "" for t in root.iter() if t.tag.endswith("text")).replace("\xa0", " ")
    for shown in ("queries ↓", "␣love", "1.00", "Layer 0, head 1"):
        assert shown in result.stdout and shown in svg_text, shown
    assert "␣love" in html.read_text(encoding="utf-8")


# --- errors: one line, exit 2 ---------------------------------------------------------------------------


def test_out_of_range_layer_and_head_name_the_valid_range(cli, lm):
    last_head, last_layer = lm.config.n_head - 1, lm.config.n_layer - 1
    assert_one_line_error(cli("attn", "I love you", "--head", "9"), "--head 9", f"0..{last_head}", "counting from 0",
                          code=2)
    assert_one_line_error(cli("attn", "I love you", "--layer", "9"), "--layer 9", f"0..{last_layer}",
                          "counting from 0", code=2)
    assert_one_line_error(cli("attn", "I love you", "--layer", "two"), "--layer 'two'", code=2)
    assert_one_line_error(cli("attn", "I love you", "--head", "3-1"), "--head '3-1'", "selects nothing", code=2)


@pytest.mark.parametrize("args, fragments", [
    (["--head", "0", "--query", "1", "--key", "2"], ["--key 2", "causal mask", "future", "0..1"]),
    (["--head", "0", "--query", "7", "--key", "0"], ["--query 7", "0..2"]),
    (["--head", "0", "--query", "2", "--key", "-9"], ["--key -9", "0..2"]),
    (["--head", "0", "--query", "2"], ["--query", "--key"]),
    (["--query", "2", "--key", "1"], ["--head"]),
    (["--scores"], ["--scores", "--head"]),
    (["--position", "3"], ["--position 3", "0..2"]),
    (["--svg", "/no/such/folder/head.svg"], ["--svg", "does not exist"]),
    (["--json", "--html", "page.html"], ["--html", "--json"]),
])
def test_bad_cells_and_outputs_are_one_line_errors(cli, args, fragments):
    assert_one_line_error(cli("attn", "I love you", *args), *fragments, code=2)


def test_export_path_that_is_a_folder_fails_before_any_work(cli, tmp_path):
    assert_one_line_error(cli("attn", "I love you", "--html", tmp_path), "--html", "directory", code=2)


@pytest.mark.parametrize("option", ["--layer", "--head"])
def test_a_huge_range_is_refused_before_it_is_expanded(cli, option):
    import time

    start = time.monotonic()
    r = cli("attn", "I love you", option, "0-99999999999999")
    assert_one_line_error(r, f"{option} 99999999999999 is out of range", "(counting from 0)", code=2)
    assert time.monotonic() - start < 10
