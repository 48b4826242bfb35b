"""`tracegpt generate` through the CLI: the stream, the JSON Lines, the errors, --save, Ctrl-C."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_one_line_error

from tracegpt.views.common import pct

PROMPT = "ROMEO:\nI love"


def events(result):
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    parsed = [json.loads(line) for line in lines]  # every line is a JSON document on its own
    assert [e["event"] for e in parsed[:-1]] == ["step"] * (len(parsed) - 1)
    assert parsed[-1]["event"] == "done"
    return parsed[:-1], parsed[-1]


def generated_ids(run_cli, *args):
    steps, done = events(run_cli("generate", PROMPT, "--json", *args))
    return [s["id"] for s in steps], done


# --- JSON Lines ---


def test_json_lines_one_step_per_token_then_done(run_cli, lm):
    steps, done = events(run_cli("generate", PROMPT, "--json", "-n", "6", "--seed", "1"))
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert done["n_new_tokens"] == 6 and done["stop_reason"] == "max_new_tokens"
    assert done["token_ids"] == [s["id"] for s in steps]
    assert done["text"] == lm.encoding.decode(done["token_ids"])
    assert done["seed"] == 1 and done["use_cache"] is True
    assert done["tokens_per_s"] > 0
    n_prompt = len(lm.encode(PROMPT))
    assert [s["position"] for s in steps] == list(range(n_prompt, n_prompt + 6))
    assert [s["positions_computed"] for s in steps] == [n_prompt] + [1] * 5
    for s in steps:
        assert {"id", "text", "prob", "top", "draw", "attention", "cache_length"} <= s.keys()
        assert len(s["top"]) == 5
        assert s["text"] == lm.token_text(s["id"])


def test_greedy_same_tokens_with_and_without_cache(run_cli):
    cached, done_c = generated_ids(run_cli, "--greedy", "-n", "16")
    uncached, done_u = generated_ids(run_cli, "--greedy", "-n", "16", "--no-cache")
    assert cached == uncached
    assert done_u["use_cache"] is False
    assert done_c["positions_with_cache"] == done_u["positions_with_cache"]
    assert done_c["positions_without_cache"] > done_c["positions_with_cache"]


def test_same_seed_same_text_different_seed_different_text(run_cli):
    a, done_a = generated_ids(run_cli, "--seed", "5", "-n", "20")
    b, _ = generated_ids(run_cli, "--seed", "5", "-n", "20")
    c, _ = generated_ids(run_cli, "--seed", "6", "-n", "20")
    assert a == b
    assert a != c
    assert done_a["seed"] == 5


def test_without_a_seed_the_seed_used_is_reported_and_replays(run_cli):
    first, done = generated_ids(run_cli, "-n", "12")
    again, _ = generated_ids(run_cli, "-n", "12", "--seed", str(done["seed"]))
    assert first == again


def test_top_k_1_equals_greedy(run_cli):
    assert generated_ids(run_cli, "--top-k", "1", "-n", "12", "--seed", "3")[0] == \
        generated_ids(run_cli, "--greedy", "-n", "12")[0]


def test_printed_probabilities_are_those_the_draw_used(run_cli):
    """With top-k 3 the whole kept distribution is printed: replaying the draw on it gives the token."""
    steps, _ = events(run_cli("generate", PROMPT, "--json", "-n", "10", "--seed", "8", "--top-k", "3"))
    for s in steps:
        top = [t for t in s["top"] if t["prob"] > 0]
        assert len(top) == 3
        assert sum(t["prob"] for t in top) == pytest.approx(1.0, abs=1e-5)
        start = 0.0
        for t in top:  # highest first, the order the draw lays them out on [0, 1)
            if start <= s["draw"] < start + t["prob"]:
                break
            start += t["prob"]
        assert t["id"] == s["id"], s
        assert t["prob"] == s["prob"]


def test_view_prints_the_same_probabilities_as_the_json(run_cli):
    steps, _ = events(run_cli("generate", PROMPT, "--json", "-n", "5", "--seed", "2", "--top-p", "0.9"))
    view = run_cli("generate", PROMPT, "-n", "5", "--seed", "2", "--top-p", "0.9", "--width", "160", "--no-color")
    assert view.exit_code == 0, view.stderr
    rows = {int(line.split()[0]): line for line in view.stdout.splitlines()
            if line.strip() and line.split()[0].isdigit() and len(line.split()) > 3}
    for s in steps:
        assert f" {pct(s['prob'])} " in rows[s["step"]], (s, rows[s["step"]])


def test_show_sampling_adds_the_pipeline_to_that_step(run_cli):
    steps, _ = events(run_cli("generate", PROMPT, "--json", "-n", "3", "--seed", "1", "--top-k", "5",
                              "--show-sampling", "2"))
    assert "pipeline" in steps[1] and "pipeline" not in steps[0]
    rows = steps[1]["pipeline"]
    assert [r["in_top_k"] for r in rows[:6]] == [True] * 5 + [False]
    assert sum(r["prob"] for r in rows) == pytest.approx(1.0, abs=1e-5)


def test_end_to_end_with_stdin_prompt(run_cli):
    result = run_cli("generate", "-", "--json", "--greedy", "-n", "2", input=PROMPT + "\n")
    _, done = events(result)
    assert done["prompt"] == PROMPT


# --- the view ---


def test_view_streams_the_table_then_text_and_summary(run_cli):
    result = run_cli("generate", PROMPT, "-n", "4", "--greedy", "--width", "100", "--no-color", "--show-sampling", "1")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for fragment in ("step", "token", "prob", "looks at", "Step 1: how the sampler chose", "Greedy",
                     "Stopped: 4 new tokens", "tokens/s", "Positions computed", "bytes"):
        assert fragment in out, fragment
    assert out.index("looks at") < out.index("Step 1: how") < out.index("Stopped")
    assert result.stderr == ""


def test_view_without_cache_says_what_a_cache_would_save(run_cli):
    result = run_cli("generate", PROMPT, "-n", "3", "--no-cache", "--width", "100", "--no-color", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert "KV cache off" in result.stdout and "would hold" in result.stdout


def test_show_sampling_for_a_step_never_reached(run_cli, lm):
    ids = lm.encode("To be, or not to be, that is the question: " * 40)
    prompt = lm.encoding.decode(ids[:255])
    result = run_cli("generate", prompt, "-n", "5", "--greedy", "--show-sampling", "4", "--width", "100")
    assert result.exit_code == 0, result.stderr
    assert "step 4 never ran" in result.stdout


# --- the context window ---


def test_context_overflow_is_capped_with_one_note(run_cli, lm):
    ids = lm.encode("To be, or not to be, that is the question: " * 40)[:250]
    prompt = lm.encoding.decode(ids)
    assert len(lm.encode(prompt)) == 250
    result = run_cli("generate", prompt, "--json", "--greedy", "-n", "50")
    steps, done = events(result)
    room = lm.config.n_ctx - 250 + 1
    assert len(steps) == room and done["stop_reason"] == "context"
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("note: ") and f"at most {room} new tokens" in notes[0]


def test_prompt_longer_than_the_context_is_an_error(run_cli):
    result = run_cli("generate", "to be or not " * 300, "-n", "3")
    assert_one_line_error(result, "context", code=2)


# --- errors ---


@pytest.mark.parametrize("args, fragments", [
    (["--temperature", "-1"], ["--temperature -1", "≥ 0"]),
    (["--temperature", "nan"], ["--temperature nan"]),
    (["--top-p", "1.5"], ["--top-p 1.5", "(0, 1]"]),
    (["--top-p", "0"], ["--top-p 0", "(0, 1]"]),
    (["--top-k", "0"], ["--top-k 0", "at least 1"]),
    (["--max-new-tokens", "0"], ["--max-new-tokens 0", "at least 1"]),
    (["-n", "-3"], ["--max-new-tokens -3"]),
    (["--seed", "-1"], ["--seed -1"]),
    (["--layer", "4"], ["--layer 4", "0..3"]),
    (["--head", "7"], ["--head 7", "0..3"]),
    (["--show-sampling", "9", "-n", "3"], ["--show-sampling 9", "1..3"]),
    (["--stop", ""], ["--stop ''"]),
    (["--device", "tpu"], ["--device"]),
])
def test_bad_values_give_one_line_errors(run_cli, args, fragments):
    assert_one_line_error(run_cli("generate", PROMPT, *args), *fragments, code=2)


def test_empty_prompt_is_an_error(run_cli):
    assert_one_line_error(run_cli("generate", ""), "prompt is empty", code=2)
    assert_one_line_error(run_cli("generate", "-", input=""), "prompt is empty", code=2)


def test_save_to_a_missing_folder_fails_before_generating(run_cli, tmp_path):
    result = run_cli("generate", PROMPT, "--save", tmp_path / "nope" / "x.npz")
    assert_one_line_error(result, "--save", "does not exist", code=2)
    assert result.stdout == ""


# --- --save ---


def test_save_keeps_each_steps_new_columns(run_cli, lm, tmp_path):
    path = tmp_path / "gen.npz"
    _, done = events(run_cli("generate", PROMPT, "--json", "--greedy", "-n", "3", "--save", path))
    n_prompt, c = len(lm.encode(PROMPT)), lm.config
    with np.load(path) as saved:
        assert saved["token_ids"].tolist() == lm.encode(PROMPT) + done["token_ids"]
        assert int(saved["n_prompt_tokens"]) == n_prompt
        assert saved["step1/blocks.0.attn.weights"].shape == (c.n_head, n_prompt, n_prompt)
        assert saved["step3/blocks.0.attn.weights"].shape == (c.n_head, 1, n_prompt + 2)
        assert saved["step3/blocks.3.resid_out"].shape == (1, c.d_model)
        assert saved["step2/tokens"].tolist() == [done["token_ids"][0]]
        assert saved["step3/logits"][0].argmax() == done["token_ids"][2]
        names = {k.split("/", 1)[1] for k in saved.files if k.startswith("step1/")}
    from tracegpt.stages import names as stage_names

    assert names == set(stage_names(c.n_layer))


def test_saved_columns_agree_with_and_without_cache(run_cli, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert run_cli("generate", PROMPT, "--json", "--greedy", "-n", "3", "--save", a).exit_code == 0
    assert run_cli("generate", PROMPT, "--json", "--greedy", "-n", "3", "--save", b, "--no-cache").exit_code == 0
    with np.load(a) as cached, np.load(b) as uncached:
        assert cached.files == uncached.files
        assert list(cached["token_texts"]) == list(uncached["token_texts"])
        for key in set(cached.files) - {"token_texts"}:
            np.testing.assert_allclose(cached[key], uncached[key], atol=1e-4, err_msg=key)


# --- Ctrl-C and closed pipes ---


@pytest.mark.parametrize("as_json", [True, False])
def test_ctrl_c_stops_at_once_prints_what_was_generated_and_exits_130(run_cli, monkeypatch, as_json):
    from tracegpt import generation

    real_step = generation.Generation._step
    calls = []

    def interrupted_on_third(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(generation.Generation, "_step", interrupted_on_third)
    args = ["generate", PROMPT, "--greedy", "-n", "20", "--width", "100"] + (["--json"] if as_json else [])
    result = run_cli(*args)
    assert result.exit_code == 130
    assert len(calls) == 3
    assert "Traceback" not in result.stdout + result.stderr
    if as_json:
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [e["event"] for e in lines] == ["step", "step", "done"]
        assert lines[-1]["stop_reason"] == "interrupted" and lines[-1]["n_new_tokens"] == 2
    else:
        assert "interrupted; new tokens: 2" in result.stdout


def test_closed_pipe_ends_quietly(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen([sys.executable, "-m", "tracegpt", "generate", PROMPT, "--json", "--greedy", "-n", "200",
                             "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # what `| head -n 3` does
    proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    assert all(json.loads(line)["event"] == "step" for line in first)
    assert "Traceback" not in err and "Error" not in err, err


def test_show_sampling_past_the_last_step_says_so_in_json_too(run_cli):
    r = run_cli("generate", "I love", "-n", "3", "--greedy", "--show-sampling", "3", "--stop", ",", "--json")
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0, r.stderr
    notices = [e for e in events if e["event"] == "notice"]
    assert events[-1]["event"] == "done" and len(events) - 2 < 3
    assert notices and "step 3 never ran" in notices[0]["message"]


def test_compare_without_edits_finds_the_same_text(run_cli):
    r = run_cli("generate", "I love", "-n", "12", "--seed", "5", "--compare", "--json")
    done = json.loads(r.stdout.splitlines()[-1])
    assert done["compare"]["text"] == done["text"] and done["compare"]["first_difference"] is None
    view = run_cli("generate", "I love", "-n", "12", "--seed", "5", "--compare").stdout
    assert "The two texts are the same" in view


def test_compare_marks_where_an_ablation_parts_the_texts(run_cli):
    args = ["generate", "To be, or not to be, that is the", "-n", "8", "--greedy", "--ablate", "0.3", "--compare"]
    done = json.loads(run_cli(*args, "--json").stdout.splitlines()[-1])
    assert done["compare"]["first_difference"] == 1 and done["text"] != done["compare"]["text"]
    view = run_cli(*args, "--width", 80).stdout
    assert "--ablate 0.3" in view and "The texts part at step 1" in view


def test_bad_generation_edits_are_one_line_errors(run_cli):
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("generate", "I love", "--ablate", "7.1"), "--ablate 7.1: layer 7 does not exist",
                          code=2)
    assert_one_line_error(run_cli("generate", "I love", "--steer", "1"), "--steer L needs --toward", code=2)
