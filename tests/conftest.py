import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import io  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402
from rich.cells import cell_len  # noqa: E402
from rich.console import Console  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from tracegpt import loader, texts  # noqa: E402
from tracegpt.cli import app  # noqa: E402


@pytest.fixture(autouse=True)
def english_after():
    """--lang sets the language for the process; a test that ran a command in Chinese must not leave it so."""
    yield
    texts.use("en")


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory):
    """A small byte-level BPE in GPT-2's files (see checkpoint_kit), made once a run."""
    pytest.importorskip("tokenizers")
    from checkpoint_kit import train_bpe

    return train_bpe(tmp_path_factory.mktemp("bpe"))


@pytest.fixture(scope="session")
def made(tmp_path_factory, bpe_dir):
    """Small GPT-2 checkpoints as transformers saves them: name -> (folder, the transformers model)."""
    pytest.importorskip("transformers")
    from checkpoint_kit import make_checkpoints

    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"), bpe_dir)


@pytest.fixture(scope="session")
def lm():
    """The embedded model, loaded once for the whole run."""
    return loader.load()


class Result:
    def __init__(self, r):
        self.exit_code = r.exit_code
        self.stdout = r.stdout
        self.stderr = r.stderr
        self.exception = r.exception

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def run_cli():
    """Run `tracegpt ARGS...` in-process; stdout and stderr kept apart."""

    def run(*args, input=None, env=None):
        runner = CliRunner()
        r = runner.invoke(app, [str(a) for a in args], input=input, env=env or {})
        return Result(r)

    return run


def assert_one_line_error(result, *fragments, code=None):
    """A failure as users must see it: non-zero exit, one line on stderr, no traceback."""
    assert result.exit_code != 0, result.stdout
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def draw(renderable, width: int, color_system: str | None = "truecolor") -> str:
    """A renderable as text at `width`, which no line may pass."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=color_system)
    console.print(renderable)
    text = console.export_text()
    assert max(cell_len(line) for line in text.splitlines()) <= width
    return text
