"""`tracegpt heads` through the CLI: the map, --json, --prompt, one-line errors."""

import pytest
from conftest import assert_one_line_error


def test_json_scores_and_ablates_every_head(run_cli, lm):
    r = run_cli("heads", "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    c = lm.config
    assert len(doc["heads"]) == c.n_layer * c.n_head and doc["checked"] == "all"
    assert doc["probe"] == {"seed": 0, "n_probes": 8, "half": 50, "start": {"id": lm.end_of_text,
                                                                             "text": "<|endoftext|>"}}
    assert all(h["loss_ablated"] is not None and 0 <= h["scores"]["previous"] <= 1 for h in doc["heads"])
    assert doc["loss"]["repeated"] > doc["loss"]["other"]  # the embedded model does not copy (see test_heads)


def test_the_seed_and_size_of_the_probe(run_cli):
    a = run_cli("heads", "--json", "--seed", 3, "--probes", 2, "--half", 20).json()
    b = run_cli("heads", "--json", "--seed", 3, "--probes", 2, "--half", 20).json()
    assert a == b and a["n_tokens"] == 41 and a["loss"]["n_repeated"] == 2 * 19


def test_a_prompt_instead_of_the_probe(run_cli):
    r = run_cli("heads", "--prompt", "I love thee, and I love thee", "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["source"] == "prompt" and doc["probe"] is None and doc["tokens"][0]["text"] == "I"
    r = run_cli("heads", "--prompt", "-", "--json", input="I love thee, and I love thee\n")
    assert r.json()["heads"] == doc["heads"]


def test_the_view(run_cli):
    r = run_cli("heads", "--width", 80)
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "What each head of shakespeare does" in r.stdout and "Δ rep" in r.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--probes", 0], "--probes 0 is out of range"),
    (["--half", 500], "--half 500 is out of range; shakespeare fits 1..127"),
    (["--half", 0], "--half 0 is out of range"),
    (["--prompt", "I"], "--prompt 'I' is one token"),
    (["--prompt", ""], "prompt is empty"),
])
def test_bad_values_are_one_line_errors(run_cli, args, fragment):
    assert_one_line_error(run_cli("heads", *args), fragment, code=2)


def test_trace_and_attn_point_to_the_new_commands(run_cli):
    trace = " ".join(run_cli("trace", "I love", "--width", 100).stdout.split())
    assert "Next: tracegpt attribute splits this logit" in trace and "tracegpt heads maps" in trace
    attn = " ".join(run_cli("attn", "I love", "--width", 100).stdout.split())
    assert "tracegpt heads scores each head's role" in attn
    one = " ".join(run_cli("attn", "I love", "--head", 1, "--width", 100).stdout.split())
    assert "tracegpt heads" not in one  # the hint goes with the all-heads overview
