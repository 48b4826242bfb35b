"""Hostile input, fuzzed: whatever a person or a script feeds the CLI, it answers with a result
or one clear line, never a traceback.

Invariant for every command: exit code 0, 1 or 2; no traceback anywhere; a failure is exactly
one line on standard error starting "error: "; a success with --json prints JSON that parses.
The examples are bounded so the suite stays well under three minutes in CI.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tracegpt.cli import app

# Characters that break naive tools: controls, NUL, right-to-left marks and scripts,
# combining marks, emoji (with ZWJ), wide CJK, lone surrogates are not valid str for argv.
NASTY = ["\x00", "\x1b[31m", "\r", "\t", "\u202e", "\u200f", "\u200d", "שלום", "مرحبا", "e\u0301\u0327",
         "👩\u200d👩\u200d👧", "🤖", "你好", "\ufeff", "\x7f", "\u2028"]

prompts = st.one_of(
    st.text(min_size=1, max_size=40),
    st.lists(st.sampled_from(NASTY) | st.text(max_size=5), max_size=12).map("".join),
    st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "ж", "😀", " thee", "-"]), st.integers(1, 400)),
)

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def invoke(args, input=None):
    result = CliRunner().invoke(app, args, input=input, env={"TRACEGPT_MODEL": None})
    check_invariants(args, result)
    return result


def check_invariants(args, result):
    where = f"tracegpt {args!r}"
    assert result.exit_code in (0, 1, 2), (where, result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr, where
    if result.exit_code != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (where, result.stderr)
    elif "--json" in args:
        # JSON Lines split on "\n" only: U+2028 inside a token's text is valid JSON, not a line break.
        for line in result.stdout.split("\n") if args[0] == "generate" else [result.stdout]:
            if line:
                json.loads(line)


# Each command runs twice over: with every option in range (so the runs get through the model
# and its views) and with options anywhere, junk included (so the checks get hit).
junk = st.sampled_from(["", "all", "x", "1-", "3-1", "0,0", "1,,2", "nan", "inf", "-inf", "1e9", "٣", "0x2"])
anything = st.integers(-300, 300).map(str) | junk
IN_RANGE = {
    "layers": st.sampled_from(["0", "3", "all", "1-2", "0,3"]),
    "layer": st.sampled_from(["0", "3", "all", "1-2"]),
    "head": st.sampled_from(["0", "2", "all", "1,3"]),
    "position": st.integers(-2, 1).map(str),
    "count": st.integers(1, 6).map(str),
    "temperature": st.floats(0, 2).map(str),
    "top_p": st.floats(0.01, 1).map(str),
    "seed": st.integers(0, 2**32).map(str),
}


def option(name: str, valid: bool):
    return IN_RANGE[name] if valid else IN_RANGE[name] | anything


def view_or_json(as_json: bool) -> list[str]:
    return ["--json"] if as_json else ["--width", "80"]


@pytest.mark.parametrize("valid", [True, False], ids=["in-range", "anything"])
@SETTINGS
@given(data=st.data(), prompt=prompts, as_json=st.booleans())
def test_trace(valid, data, prompt, as_json):
    args = ["trace", "--layers", data.draw(option("layers", valid)),
            "--position", data.draw(option("position", valid)), "--top-k", data.draw(option("count", valid))]
    invoke(args + view_or_json(as_json) + ["--", prompt])


@pytest.mark.parametrize("valid", [True, False], ids=["in-range", "anything"])
@SETTINGS
@given(data=st.data(), prompt=prompts, cell=st.booleans(), scores=st.booleans(), as_json=st.booleans())
def test_attn(valid, data, prompt, cell, scores, as_json):
    args = ["attn", "--layer", data.draw(option("layer", valid)), "--head", data.draw(option("head", valid))]
    if cell:
        args += ["--query", data.draw(option("position", valid)), "--key", data.draw(option("position", valid))]
    args += ["--scores"] if scores else []
    invoke(args + view_or_json(as_json) + ["--", prompt])


@pytest.mark.parametrize("valid", [True, False], ids=["in-range", "anything"])
@SETTINGS
@given(data=st.data(), prompt=prompts, as_json=st.booleans())
def test_generate(valid, data, prompt, as_json):
    args = ["generate", "-n", data.draw(option("count", valid)),
            "--temperature", data.draw(option("temperature", valid)),
            "--top-k", data.draw(option("count", valid)), "--top-p", data.draw(option("top_p", valid)),
            "--seed", data.draw(option("seed", valid))]
    invoke(args + view_or_json(as_json) + ["--", prompt])


@pytest.mark.parametrize("valid", [True, False], ids=["in-range", "anything"])
@SETTINGS
@given(data=st.data(), prompt=prompts, as_json=st.booleans())
def test_lens(valid, data, prompt, as_json):
    invoke(["lens", "--position", data.draw(option("position", valid))] + view_or_json(as_json) + ["--", prompt])


@SETTINGS
@given(prompt=prompts, lang=st.sampled_from(["en", "zh"]) | st.text(max_size=4), as_json=st.booleans())
def test_explain(prompt, lang, as_json):
    invoke(["explain", "--lang", lang] + view_or_json(as_json) + ["--", prompt])


@SETTINGS
@given(data=st.binary(max_size=200) | st.sampled_from([b"\xff\xfe", b"I love\xc3", b"\xed\xa0\x80", b"\x00"]),
       command=st.sampled_from(["trace", "attn", "generate", "lens", "explain"]))
def test_raw_bytes_on_standard_input(data, command):
    # Invalid UTF-8 is refused with the offending byte and its offset; valid bytes are the prompt.
    result = invoke([command, "-", "--json"] + (["-n", "2"] if command == "generate" else []), input=data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert result.exit_code == 2 and "not valid UTF-8" in result.stderr
