import fcntl
import os
import re
import subprocess
import sys

import pytest

from tracegpt import __version__


def test_help_does_not_import_torch():
    code = ("import sys; from tracegpt.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'trace' in r.output; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("command", ["trace", "attn", "generate", "explain", "lens"])
def test_a_prompt_far_too_long_for_the_embedded_model_is_refused_before_torch_loads(command):
    """Importing torch takes seconds on a small machine; a megabyte prompt's error should not wait for it."""
    code = ("import sys; from tracegpt.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, ['{command}', '-'], input='x' * 1_000_000); "
            "print(r.exit_code, 'torch' in sys.modules); print(r.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "TRACEGPT_MODEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    first, message = out.split("\n", 1)
    assert first == "2 False"
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
