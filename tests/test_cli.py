import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tracegpt import __version__


def test_help_does_not_import_torch():
    code = ("import sys; from tracegpt.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'trace' in r.output; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("command", ["trace", "attn", "generate", "explain", "lens"])
@pytest.mark.parametrize("via", ["argument", "stdin"])
def test_a_prompt_far_too_long_for_the_embedded_model_is_refused_before_torch_loads(command, via):
    """Importing torch takes seconds on a small machine; a megabyte prompt's error should not wait for it."""
    args, given = ("['-'], input='x' * 1_000_000", "stdin") if via == "stdin" else ("['x' * 1_000_000]", "argv")
    code = ("import sys; from tracegpt.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, ['{command}'] + {args}); "
            "print(r.exit_code, 'torch' in sys.modules); print(r.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "TRACEGPT_MODEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    first, message = out.split("\n", 1)
    assert first == "2 False", (given, message)
    if via == "stdin":  # read no further than the context could hold: 256 tokens of at most 29 bytes
        assert "standard input holds more than 7,424 bytes, more than shakespeare's context of 256 tokens" in message
    else:
        assert "the prompt is 1,000,000 bytes, far more than shakespeare's context of 256 tokens" in message


def test_version(run_cli):
    r = run_cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"tracegpt {__version__}"


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "tracegpt", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and __version__ in r.stdout


def test_every_command_has_examples_in_its_help(run_cli):
    r = run_cli("trace", "--help")
    assert r.exit_code == 0 and "Examples" in r.stdout and 'tracegpt trace "I love"' in r.stdout


LONG_PROMPT = "To be, or not to be, that is the question. " * 8


# Each of these writes well over the 4 KiB pipe the test leaves it (the rich view and the JSON paths).
@pytest.mark.parametrize("args", [["trace"], ["attn", "--json"], ["generate", "-n", "100", "--seed", "1"],
                                  ["lens", "--json"]])
def test_a_reader_that_stops_early_is_not_an_error(args):
    # `tracegpt ... | head -1`: the pipe closes under us; exit 0 and say nothing.
    proc = subprocess.Popen([sys.executable, "-m", "tracegpt", *args, LONG_PROMPT, "--width", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""


COLOUR = re.compile(r"\x1b\[[0-9;]*(?<![0-9])(3[0-7]|38|9[0-7])[;m]")
COMMANDS = [["trace", "I love"], ["attn", "I love", "--head", "0"], ["generate", "I love", "-n", "2", "--seed", "1"],
            ["lens", "I love"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_colour_only_when_wanted(run_cli, args):
    # FORCE_COLOR stands in for a terminal; NO_COLOR and --no-color win over it.
    assert COLOUR.search(run_cli(*args, env={"FORCE_COLOR": "1"}).stdout)
    assert not COLOUR.search(run_cli(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout)
    assert not COLOUR.search(run_cli(*args, "--no-color", env={"FORCE_COLOR": "1"}).stdout)
    assert "\x1b[" not in run_cli(*args).stdout  # not a terminal: no escape codes at all


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_columns_sets_the_width(run_cli, args):
    for columns in (60, 80, 150):
        out = run_cli(*args, env={"COLUMNS": str(columns)}).stdout
        assert max(len(line) for line in out.splitlines()) <= columns
    narrow = run_cli(*args, "--width", "60", env={"COLUMNS": "150"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 60


# --- hostile terminals and streams ---------------------------------------------------------------------


def tracegpt(*args, input=None, env=None, **kwargs):
    full_env = {k: v for k, v in os.environ.items() if k not in ("TRACEGPT_MODEL", "COLUMNS")}
    return subprocess.run([sys.executable, "-m", "tracegpt", *args], input=input, capture_output=True,
                          env={**full_env, **(env or {})}, **kwargs)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("width", ["0", "-5", "39"])
def test_a_width_too_narrow_is_refused_with_the_minimum(run_cli, args, width):
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli(*args, "--width", width), f"--width: {width} is too narrow", "at least 40",
                          code=2)


@pytest.mark.parametrize("columns", ["0", "-3", "abc", "12"])
def test_columns_that_make_no_sense_fall_back_to_the_default(run_cli, columns):
    out = run_cli("trace", "I love", env={"COLUMNS": columns}).stdout
    assert "Next token" in out and max(len(line) for line in out.splitlines()) <= 80


def test_endless_standard_input_is_refused_at_once():
    start = time.monotonic()
    r = tracegpt("trace", "-", stdin=open("/dev/zero", "rb"), timeout=60)
    assert r.returncode == 2 and time.monotonic() - start < 20
    assert b"standard input holds more than 7,424 bytes, more than shakespeare's context" in r.stderr
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    r = tracegpt("generate", "-", stdin=yes.stdout, timeout=60)
    yes.kill()
    assert r.returncode == 2 and b"standard input holds more than" in r.stderr


def test_a_prompt_argument_that_is_not_utf8_is_refused_with_its_offset():
    r = subprocess.run([sys.executable, "-m", "tracegpt", "trace", b"I lov\xffe"], capture_output=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.decode().strip() == ("error: the prompt is not valid UTF-8 (byte 0xff at offset 5); "
                                         "pass UTF-8 text")


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
@pytest.mark.parametrize("args", [*COMMANDS, ["explain", "I love"], ["trace", "你好", "--json"]], ids=str)
def test_output_that_cannot_hold_unicode_gets_ascii_glyphs(args, encoding):
    r = tracegpt(*args, env={"PYTHONIOENCODING": encoding})
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode(encoding)
    if "--json" in args:
        assert json.loads(text)["prompt"] == "你好"  # escaped as \uXXXX: the same JSON in ASCII
    else:
        assert "I_love" in text.replace("'", "")


def test_closed_streams_exit_with_their_documented_codes():
    def shell(line):
        env = {k: v for k, v in os.environ.items() if k != "TRACEGPT_MODEL"}
        return subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)} -m tracegpt {line}"],
                              capture_output=True, text=True, env=env)

    closed_out = shell('trace "I love" --json >&-')
    assert closed_out.returncode == 1 and "error: standard output is closed" in closed_out.stderr
    closed_err = shell('trace "I love" --top-k 0 2>&-')
    assert closed_err.returncode == 2 and closed_err.stdout == ""  # the error line has nowhere to go, not stdout
    closed_in = shell("trace - <&-")
    assert closed_in.returncode == 2 and "error: standard input is closed" in closed_in.stderr


@pytest.mark.parametrize("args, prompt", [(["trace", "--", "--debug"], "--debug"),
                                          (["generate", "I love", "-n", "1", "--stop", "--debug", "--json"], None)])
def test_debug_is_the_flag_only_where_a_flag_goes(run_cli, args, prompt):
    r = run_cli(*args)
    assert r.exit_code == 0, r.stderr
    if prompt is not None:
        assert prompt in r.stdout
    else:
        assert json.loads(r.stdout.splitlines()[-1])["event"] == "done"


def test_debug_in_option_position_is_still_the_flag():
    with_flag = tracegpt("trace", "I love", "--debug", "--save", "/proc/version")  # a runtime error, traced
    assert with_flag.returncode == 1 and b"Traceback" in with_flag.stderr
    as_value = tracegpt("generate", "I love", "-n", "1", "--stop", "--debug", "--save", "/proc/version")
    assert as_value.returncode == 1 and b"Traceback" not in as_value.stderr


def test_format_characters_are_escaped_in_titles(run_cli):
    out = run_cli("trace", "a\u202eb\u200dc\ufeff").stdout
    assert "\u202e" not in out and "\\u202e" in out and "\\u200d" in out and "\\ufeff" in out
