"""The views as a learner reads them: probabilities that add up, the step table, options everywhere,
help that reads as help, JSON that joins back into the prompt (one test per point, at least)."""

import json
import re

import numpy as np
import pytest
from conftest import assert_one_line_error

PCT = r"(\d+(?:\.\d)?)%"


def percents(line: str) -> list[float]:
    return [float(p) for p in re.findall(PCT, line)]


# --- probabilities that add up ----------------------------------------------------------------------

def test_the_next_token_table_says_what_the_rest_of_the_vocabulary_holds(run_cli):
    out = run_cli("trace", "I love", "--top-k", "5").stdout
    doc = run_cli("trace", "I love", "--top-k", "5", "--json").json()
    rest = doc["next_token"]["rest"]
    assert rest["n"] == 4096 - 5
    assert sum(t["prob"] for t in doc["next_token"]["top"]) + rest["prob"] == pytest.approx(1, abs=1e-5)
    assert f"other {rest['n']:,} tokens: {round(rest['prob'] * 100)}%" in out


@pytest.mark.parametrize("args", [["generate", "I love", "-n", "3", "--seed", "2"],
                                  ["explain", "I love"],
                                  ["intervene", "I love", "--ablate", "1.1"]])
def test_every_list_of_candidates_names_the_others(run_cli, args):
    out = run_cli(*args, "--width", "100").stdout
    assert re.search(r"other [\d,]+", out), out[-500:]


def test_generate_says_its_prob_is_after_sampling_and_shows_the_models_own(run_cli):
    out = run_cli("generate", "I love", "-n", "3", "--seed", "1", "-t", "0.7", "--width", "100").stdout
    header = next(line for line in out.splitlines() if line.lstrip().startswith("step"))
    assert "after the temperature and the cuts" in " ".join(out.split()) and "model" in header
    plain = run_cli("generate", "I love", "-n", "3", "--seed", "1", "--width", "100").stdout
    assert "the model's own (T = 1, nothing cut)" in " ".join(plain.split())


def test_show_sampling_lists_every_kept_row_and_marks_the_cut(run_cli):
    r = run_cli("generate", "I love", "-n", "1", "--seed", "7", "-t", "0.8", "--top-k", "20", "--top-p", "0.9",
                "--show-sampling", "1", "--json")
    pipeline = json.loads(r.stdout.splitlines()[0])["pipeline"]
    n_kept = json.loads(r.stdout.splitlines()[0])["n_top_p"]
    assert sum(c["in_top_k"] and c["in_top_p"] for c in pipeline) == n_kept > 10  # more than the old 10 rows
    view = run_cli("generate", "I love", "-n", "1", "--seed", "7", "-t", "0.8", "--top-k", "20", "--top-p", "0.9",
                   "--show-sampling", "1", "--width", "100").stdout
    assert f"top-p cuts after rank {n_kept}:" in view and "top-k cuts after rank 20:" in view


@pytest.mark.parametrize("args, phrase", [(["trace", "I"], "cut into 1 token;"),
                                          (["generate", "I love", "-n", "1", "--seed", "1"], "1 new token"),
                                          (["attn", "I love", "--head", "0", "-l", "0"], "(1 cell)")])
def test_one_is_singular(run_cli, args, phrase):
    assert phrase in " ".join(run_cli(*args, "--width", "200").stdout.split())


@pytest.mark.parametrize("args, note", [
    (["--greedy", "--temperature", "0.5", "--seed", "3"], "--greedy always takes the most likely token, so "
                                                          "--temperature, --seed change nothing"),
    (["--top-k", "99999"], "--top-k 99999 is more than shakespeare's 4,096 tokens, so it cuts nothing"),
])
def test_settings_that_do_nothing_are_said(run_cli, args, note):
    r = run_cli("generate", "I love", "-n", "1", *args)
    assert r.exit_code == 0 and f"note: {note}" in r.stderr


# --- the step table ---------------------------------------------------------------------------------

def test_the_step_table_shows_the_text_so_far_with_the_newest_token(run_cli):
    r = run_cli("generate", "My lord,", "-n", "3", "--greedy", "--width", "100")
    done = run_cli("generate", "My lord,", "-n", "3", "--greedy", "--json").stdout.splitlines()
    texts = [json.loads(line)["text"] for line in done if '"step"' in line]
    rows = [line for line in r.stdout.splitlines() if re.match(r"\s+\d+\s", line)]
    so_far = "My lord,"
    for row, text in zip(rows, texts):
        so_far += text
        assert so_far.replace(" ", "␣").replace("\n", "↵")[-10:] in row


def test_looks_at_is_an_earlier_token_never_the_newest_itself(run_cli):
    steps = [json.loads(line) for line in run_cli("generate", "I", "-n", "4", "--greedy", "--json").stdout.splitlines()
             if '"step"' in line]
    assert steps[0]["attention"] is None  # a one-token context: nothing earlier
    for s in steps[1:]:
        assert s["attention"]["position"] < s["position"] - 1


def test_a_long_run_repeats_its_header_every_screenful(tmp_path):
    from test_terminal import run_in_tmux

    lines = run_in_tmux(tmp_path, "generate", "My lord,", "-n", "60", "--greedy")
    headers = [line for line in lines if line.lstrip().startswith("step") and "looks at" in line]
    assert len(headers) >= 2


def test_a_loading_line_shows_on_a_terminal_only(monkeypatch, capsys):
    import io

    from tracegpt.commands.common import loading

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    fake = Terminal()
    monkeypatch.setattr("sys.stderr", fake)
    with loading("shakespeare"):
        pass
    assert "loading shakespeare" in fake.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr("sys.stderr", piped)
    with loading("shakespeare"):
        pass
    assert piped.getvalue() == ""


@pytest.mark.parametrize("command", ["trace", "lens"])
def test_a_position_inside_the_prompt_says_what_comes_next_there(run_cli, command):
    out = " ".join(run_cli(command, "To be, or not to be", "--position", "3", "--width", "100").stdout.split())
    assert "'␣not'" in out and "ranks 9 at 1.3%" in out
    assert "Only this last vector decides" not in out


# --- colours -----------------------------------------------------------------------------------------

def test_scores_are_coloured_by_score_under_a_score_legend(run_cli):
    weights = run_cli("attn", "I love you", "-l", "3", "--head", "2").stdout
    scores = run_cli("attn", "I love you", "-l", "3", "--head", "2", "--scores").stdout
    assert "colour = weight" in weights and "colour = score" in scores and "colour = weight" not in scores


# --- options everywhere ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["trace", "I love"], ["generate", "I love", "-n", "2", "--seed", "1"],
                                  ["explain", "I love"]])
def test_svg_and_html_on_every_view(run_cli, tmp_path, args):
    r = run_cli(*args, "--svg", tmp_path / "v.svg", "--html", tmp_path / "v.html")
    assert r.exit_code == 0, r.stderr
    svg, html = (tmp_path / "v.svg").read_text(), (tmp_path / "v.html").read_text()
    assert "love" in svg and "love" in html
    assert_one_line_error(run_cli(*args, "--svg", tmp_path / "x.svg", "--json"), "--svg saves the view", code=2)


def test_head_all_draws_the_heatmaps_side_by_side_when_they_fit(run_cli):
    wide = run_cli("attn", "I love you", "--layer", "3", "--head", "all", "--width", "140").stdout
    assert any(line.count("who reads whom") >= 2 for line in wide.splitlines())
    narrow = run_cli("attn", "I love you", "--layer", "3", "--head", "all", "--width", "80").stdout
    assert narrow.count("who reads whom") == 4 and all(line.count("who reads whom") <= 1
                                                       for line in narrow.splitlines())


def test_labels_are_not_cut_when_there_is_room(run_cli):
    out = run_cli("attn", "The King of France and the Duke of Burgundy", "-l", "1", "--head", "0",
                  "--width", "140").stdout
    assert "␣France" in out and "␣Burgundy" in out.replace("\n", "")


def test_the_worked_example_adds_up_every_keys_weight_times_v(run_cli):
    doc = run_cli("attn", "I love you", "-l", "3", "--head", "2", "--query", "2", "--key", "1", "--json").json()
    w = doc["worked"]
    total = np.sum([p["weighted_v"] for p in w["pulls"]], axis=0)
    assert np.allclose(total, w["mix"], atol=1e-5) and [p["key"] for p in w["pulls"]] == [0, 1, 2]


@pytest.mark.parametrize("command", ["trace", "generate", "attn", "intervene"])
def test_help_reads_as_help(run_cli, command):
    out = run_cli(command, "--help").stdout
    assert "<bool>" not in out and "<str>" not in out and "{prompt}" not in out
    if command == "generate":
        assert re.search(r"--stop\s+TEXT", out)


def test_a_prompt_that_starts_with_a_dash_goes_after_two_dashes(run_cli):
    r = run_cli("trace", "--", "-ly")
    assert r.exit_code == 0 and "'-ly'" in r.stdout


def test_piped_output_has_no_trailing_spaces(run_cli):
    for args in (["trace", "I love"], ["generate", "I love", "-n", "3", "--seed", "1"], ["lens", "I love"],
                 ["attn", "I love you", "--head", "2"]):
        assert not [line for line in run_cli(*args).stdout.splitlines() if line.endswith(" ")], args


def test_a_long_prompt_is_one_line_in_the_title(run_cli):
    prompt = "Now is the winter of our discontent made glorious summer by this sun of York " * 2
    title = run_cli("trace", prompt, "--width", "80").stdout.splitlines()[0]
    assert "…" in title and "tokens)" in title and len(title) <= 80


# --- JSON ----------------------------------------------------------------------------------------------

def test_token_texts_join_back_into_the_prompt_and_partial_ones_carry_their_bytes(run_cli):
    doc = run_cli("trace", "我爱你", "--json").json()
    assert "".join(t["text"] for t in doc["tokens"]) == "我爱你"
    partial = [t for t in doc["tokens"] if "bytes" in t]
    assert partial and all(isinstance(b, int) for t in partial for b in t["bytes"])


@pytest.mark.parametrize("args", [["trace", "I love"], ["lens", "I love"], ["attn", "I love", "--head", "0"],
                                  ["explain", "I love"], ["intervene", "I love", "--ablate", "0.0"],
                                  ["patch", "lord is my", "lady is my"]])
def test_every_json_document_has_a_schema_version_and_one_float_rule(run_cli, args):
    doc = run_cli(*args, "--json").json()
    assert doc["schema_version"] == 1

    def floats(x):
        if isinstance(x, float):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from floats(v)
        elif isinstance(x, list):
            for v in x:
                yield from floats(v)

    assert all(float(f"{f:.9g}") == f for f in floats(doc))


def test_generate_events_carry_the_schema_version(run_cli):
    events = [json.loads(line) for line in run_cli("generate", "I love", "-n", "2", "--json").stdout.splitlines()]
    assert {e["schema_version"] for e in events} == {1}


def test_the_python_api_generates_the_same_steps_as_the_command(run_cli):
    import tracegpt

    run = tracegpt.generate("I love", greedy=True, max_new_tokens=6)
    steps = [s.token_id for s in run]
    done = json.loads(run_cli("generate", "I love", "--greedy", "-n", "6", "--json").stdout.splitlines()[-1])
    assert steps == done["token_ids"] and run.text() == done["text"]
