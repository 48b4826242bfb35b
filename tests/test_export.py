import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from tracegpt import export
from tracegpt.errors import UsageError
from tracegpt.tracer import check_position, run_trace

SCHEMA = json.loads(resources.files("tracegpt").joinpath("schemas/trace.schema.json").read_text())


@pytest.mark.parametrize("prompt", ["I love", "To be, or not to be", "你好 😀", "a\n\tb"])
def test_json_matches_the_documented_schema(lm, prompt):
    doc = export.trace_to_dict(run_trace(lm, prompt), lm.token_text, top_k=5)
    jsonschema.validate(json.loads(json.dumps(doc)), SCHEMA)
    assert [s["name"] for s in doc["stages"]] == run_trace(lm, prompt).names()
    probs = [t["prob"] for t in doc["next_token"]["top"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == 5


def test_focus_statistics_are_the_focus_position(lm):
    trace = run_trace(lm, "I love thee")
    doc = export.trace_to_dict(trace, lm.token_text, focus=1)
    stage = next(s for s in doc["stages"] if s["name"] == "blocks.0.resid_out")
    assert stage["focus_norm"] == pytest.approx(trace["blocks.0.resid_out"][1].norm().item(), rel=1e-5)
    weights = next(s for s in doc["stages"] if s["name"] == "blocks.0.attn.weights")
    assert np.allclose(weights["preview"], trace["blocks.0.attn.weights"][:, 1, :].numpy(), atol=1e-6)


def test_npz_holds_every_stage_of_the_json(lm, tmp_path):
    trace = run_trace(lm, "I love")
    export.save_npz(trace, tmp_path / "t.npz")
    doc = export.trace_to_dict(trace, lm.token_text)
    with np.load(tmp_path / "t.npz") as npz:
        assert sorted(npz.files) == sorted([s["name"] for s in doc["stages"]] + ["token_texts"])
        for s in doc["stages"]:
            assert list(npz[s["name"]].shape) == s["shape"]
        assert np.array_equal(npz["blocks.3.attn.weights"], trace["blocks.3.attn.weights"].numpy())


def test_position_range():
    assert check_position(2, None) == 1
    assert check_position(2, -2) == 0
    with pytest.raises(UsageError, match="position 2 is out of range; the prompt has positions 0..1"):
        check_position(2, 2)
