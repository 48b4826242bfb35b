"""Interventions: the same edits made with forward hooks on transformers' modules agree; identities hold."""

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error

from tracegpt import loader, stages
from tracegpt.analysis.interventions import Ablate, Cut, Patch, intervene
from tracegpt.tracer import run_trace

PROMPT = "To be, or not to be, that is the"
SAME_LENGTH = "To be, or not to be, this is the"


# --- against transformers, edited with its own forward hooks ------------------------------------

def hf_logits(hf, ids, hooks):
    handles = [module.register_forward_pre_hook(fn) if pre else module.register_forward_hook(fn)
               for module, fn, pre in hooks]
    try:
        with torch.no_grad():
            return hf(torch.tensor([ids])).logits[0]
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("name", ["3L3H-tied", "2L5H-untied-flags"])
def test_ablating_a_head_matches_zeroing_its_slice_of_c_proj_in_transformers(made, tmp_path, run_cli, name):
    folder, hf = made[name]
    lm = loader.load(str(folder))
    ids = lm.encode(PROMPT)
    layer, head = hf.config.n_layer - 1, 1
    d_head = hf.config.n_embd // hf.config.n_head

    def zero_head(module, args):
        x = args[0].clone()
        x[..., head * d_head:(head + 1) * d_head] = 0
        return (x,)

    expected = hf_logits(hf, ids, [(hf.transformer.h[layer].attn.c_proj, zero_head, True)])
    r = run_cli("intervene", PROMPT, "--model", folder, "--ablate", f"{layer}.{head}", "--save", tmp_path / "e.npz")
    assert r.exit_code == 0, r.stderr
    with np.load(tmp_path / "e.npz") as npz:
        ours = torch.from_numpy(npz["logits"])
    assert (ours - expected).abs().max().item() <= 1e-4
    assert (expected - hf_logits(hf, ids, [])).abs().max().item() > 1e-3  # the edit did something


@pytest.mark.parametrize("name", ["3L3H-tied", "2L5H-untied-flags"])
def test_patching_a_blocks_output_at_one_position_matches_a_transformers_hook(made, tmp_path, run_cli, name):
    folder, hf = made[name]
    lm = loader.load(str(folder))
    ids, source = lm.encode(PROMPT), lm.encode(SAME_LENGTH)
    assert len(ids) == len(source)
    layer = 0
    position = next(i for i, (a, b) in enumerate(zip(ids, source)) if a != b)  # where the prompts differ
    kept = {}

    def keep(module, args, output):
        kept["h"] = output[0].clone() if isinstance(output, tuple) else output.clone()

    def replace(module, args, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, position] = kept["h"][:, position]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    block = hf.transformer.h[layer]
    hf_logits(hf, source, [(block, keep, False)])
    expected = hf_logits(hf, ids, [(block, replace, False)])
    site = f"blocks.{layer}.resid_out[position={position}]"
    r = run_cli("intervene", PROMPT, "--model", folder, "--patch", site, "--from", SAME_LENGTH,
                "--save", tmp_path / "e.npz", "--save-before", tmp_path / "b.npz")
    assert r.exit_code == 0, r.stderr
    with np.load(tmp_path / "e.npz") as npz, np.load(tmp_path / "b.npz") as before:
        assert (torch.from_numpy(npz["logits"]) - expected).abs().max().item() <= 1e-4
        assert not np.array_equal(npz["logits"], before["logits"])


# --- identities on the embedded model ------------------------------------------------------------

def logits(result, after=True):
    return (result.after if after else result.before)["logits"]


def test_patching_a_stage_from_the_same_prompt_changes_nothing_bit_for_bit(lm):
    result = intervene(lm, PROMPT, [Patch(stages.parse_site("blocks.1.resid_out"), PROMPT),
                                    Patch(stages.parse_site("blocks.2.attn.mix[head=1]"), PROMPT)])
    assert torch.equal(logits(result), logits(result, after=False))
    assert result.kl_bits == 0 and not result.top_changed


def test_patching_every_position_of_a_residual_reproduces_the_other_prompt(lm):
    result = intervene(lm, PROMPT, [Patch(stages.parse_site("blocks.1.resid_out"), SAME_LENGTH)])
    assert torch.equal(logits(result), run_trace(lm, SAME_LENGTH)["logits"])


def test_ablating_every_head_of_a_layer_is_ablating_the_layer(lm):
    heads = intervene(lm, PROMPT, [Ablate(2, h) for h in range(lm.config.n_head)])
    layer = intervene(lm, PROMPT, [Ablate(2)])
    assert torch.equal(logits(heads), logits(layer))
    assert heads.kl_bits > 0.01
    mean = intervene(lm, PROMPT, [Ablate(2, mean=True)])
    assert not torch.equal(logits(mean), logits(layer))


def test_cutting_an_edge_the_mask_deleted_changes_nothing(lm):
    result = intervene(lm, PROMPT, [Cut(1, 2, query=3, key=7)])
    assert torch.equal(logits(result), logits(result, after=False))
    assert result.done[0].no_op and result.cut_rows == []


def test_a_cut_renormalises_the_row_over_the_other_keys(lm):
    result = intervene(lm, PROMPT, [Cut(2, 1, query=4, key=0)])
    row = result.cut_rows[0]
    assert row.after[0] == 0 and sum(row.after) == pytest.approx(1, abs=1e-6)
    before = torch.tensor(row.before[1:])
    # The same scores, one key fewer: the others keep their proportions.
    assert torch.allclose(torch.tensor(row.after[1:]), before / before.sum(), atol=1e-6)


def test_the_comparison_covers_both_top_lists_with_ranks(lm):
    result = intervene(lm, PROMPT, [Ablate(0, 3)], top_k=5)
    by_before = sorted(result.rows, key=lambda r: r.rank_before)
    assert [r.rank_before for r in by_before[:5]] == [1, 2, 3, 4, 5]
    assert {1, 2, 3, 4, 5} <= {r.rank_after for r in result.rows}
    assert result.top_changed and result.kl_bits > 0.5  # the README's example: head 0.3 matters here


# --- what users type -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragments", [
    (["--ablate", "9.9"], ["--ablate 9.9: layer 9 does not exist", "layers 0..3"]),
    (["--ablate", "1.7"], ["head 7 does not exist", "heads 0..3"]),
    (["--ablate", "x"], ["--ablate 'x' is not L.H, L or L.mlp"]),
    (["--cut", "1.2:0>3"], ["--cut 1.2:0>3: key 3 is out of range; the prompt has positions 0..1"]),
    (["--cut", "1.2:0>0"], ["cutting every edge of query 0", "keep at least one key"]),
    (["--cut", "1.2"], ["--cut '1.2' is not L.H:Q>K"]),
    (["--patch", "blocks.1.nope", "--from", "x"], ["'blocks.1.nope' is not a stage name"]),
    (["--patch", "blocks.1.resid_out", "--from", "My good lord, I"],
     ["2 and 5 tokens long", "position must be pinned"]),
    (["--patch", "probs", "--from", "I hate"], ["probs cannot be patched"]),
    (["--patch", "blocks.1.resid_out"], ["--patch needs --from"]),
    (["--steer", "1", "--toward", "a", "--away", "b", "--alpha", "nan"], ["--alpha nan is not a finite number"]),
    (["--steer", "1", "--toward", "a"], ["--steer L needs --toward TEXT and --away TEXT"]),
    ([], ["nothing to change"]),
])
def test_bad_interventions_are_one_line_errors(run_cli, args, fragments):
    assert_one_line_error(run_cli("intervene", "I love", *args), *fragments, code=2)


def test_the_view_and_the_json_say_the_same(run_cli):
    r = run_cli("intervene", PROMPT, "--ablate", "0.3", "--cut", "2.1:4>0", "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert [t["id"] for t in doc["before"]["top"]] == [t["id"] for t in doc["after"]["top"]]
    assert doc["top_changed"] and doc["kl_bits"] > 0.5
    assert [i["kind"] for i in doc["interventions"]] == ["ablate", "cut"]
    view = run_cli("intervene", PROMPT, "--ablate", "0.3", "--cut", "2.1:4>0", "--width", 80).stdout
    first = doc["before"]["top"][0]
    assert f"KL(before ‖ after) = {doc['kl_bits']:.3f} bits" in view and repr(first["text"]).replace(" ", "␣") in view
    assert "Head 2.1: where query 4 looks" in view and max(len(line) for line in view.splitlines()) <= 80
