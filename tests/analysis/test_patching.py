"""Patching sweeps: each batched cell equals the same patch run on its own; the identities hold."""

import pytest
import torch
from conftest import assert_one_line_error

from tracegpt import stages
from tracegpt.analysis.interventions import Patch, intervene
from tracegpt.analysis.patching import patching

CLEAN, CORRUPT = "lord is my", "lady is my"


@pytest.fixture(scope="module")
def result(lm):
    return patching(lm, CLEAN, CORRUPT, kinds=("resid_out", "heads", "mlp.out"))


def normalised(result, logits) -> float:
    metric = logits[-1, result.answer].double() - logits[-1, result.wrong].double()
    return ((metric - result.metric_corrupt) / (result.metric_clean - result.metric_corrupt)).item()


def test_the_last_position_after_the_last_block_recovers_exactly_one(result):
    assert result.sweeps[0].values[-1][-1] == 1.0
    assert result.sweeps[0].rows[-1] == stages.block_stage(3, "resid_out")


def test_positions_the_prompts_share_recover_nothing(result):
    # 'l' comes before the prompts differ: patching it changes nothing, exactly, and so says the estimate.
    sweep = result.sweeps[0]
    assert all(row[0] == 0.0 for row in sweep.values) and all(row[0] == 0.0 for row in sweep.estimates)


@pytest.mark.parametrize("kind, row, column", [("resid_out", 1, 1), ("resid_out", 3, 3), ("heads", 0, 2),
                                               ("heads", 3, 1), ("mlp.out", 0, 1)])
def test_a_batched_cell_is_the_patch_run_on_its_own(lm, result, kind, row, column):
    sweep = next(s for s in result.sweeps if s.kind == kind)
    stage = sweep.rows[row]
    select = {"head": column} if kind == "heads" else {"position": column}
    alone = intervene(lm, CORRUPT, [Patch(stages.Site(stage, select), CLEAN)])
    assert sweep.values[row][column] == pytest.approx(normalised(result, alone.after["logits"]), abs=1e-5)


def test_the_estimate_is_close_where_the_model_is_nearly_linear(result):
    heads = next(s for s in result.sweeps if s.kind == "heads")
    errors = torch.tensor(heads.errors).abs()
    assert errors.max().item() < 0.2  # small heads, small patches: first order holds well here


@pytest.mark.parametrize("args, fragment", [
    (["My lord", "My good lord"], "the clean prompt is 2 tokens and the corrupted one 3"),
    (["My lord", "My lord"], "both prompts predict"),
    (["lord is my", "lady is my", "--answer", " my lord"], "--answer ' my lord' is 2 tokens"),
    (["lord is my", "lady is my", "--stage", "attn.q"], "--stage 'attn.q' cannot be swept"),
])
def test_bad_pairs_are_one_line_errors(run_cli, args, fragment):
    assert_one_line_error(run_cli("patch", *args), fragment, code=2)


def test_the_view_and_the_json(run_cli):
    doc = run_cli("patch", CLEAN, CORRUPT, "--json").json()
    assert [s["kind"] for s in doc["sweeps"]] == ["resid_out", "heads"]
    assert doc["sweeps"][0]["values"][-1][-1] == 1.0 and len(doc["sweeps"][1]["values"]) == 4
    view = run_cli("patch", CLEAN, CORRUPT, "--width", 80).stdout
    assert "Heads: one head's clean output" in view and "First-order estimate" in view
    assert max(len(line) for line in view.splitlines()) <= 80
