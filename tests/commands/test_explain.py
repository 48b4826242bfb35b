import pytest
from conftest import assert_one_line_error
from rich.cells import cell_len

from tracegpt.texts import load


def test_default_view_has_every_step(run_cli):
    r = run_cli("explain", "I love", "--no-color")
    assert r.exit_code == 0, r.stderr
    for key, title in load("en")["explain"].items():
        if key.endswith("_title"):
            assert title in r.stdout, title
    assert "blocks." in r.stdout and "attn.weights" in r.stdout  # where the numbers come from


def test_chinese(run_cli):
    r = run_cli("explain", "I love", "--lang", "zh", "--no-color")
    assert r.exit_code == 0, r.stderr
    assert "注意力" in r.stdout and "残差流" in r.stdout and "Attention" not in r.stdout


def test_json(run_cli):
    r = run_cli("explain", "I love", "--json", "--lang", "zh")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["schema_version"] == 1 and doc["lang"] == "zh" and doc["prompt"] == "I love"
    assert [t["text"] for t in doc["tokens"]] == ["I", " love"]
    assert len(doc["steps"]) >= 10
    for step in doc["steps"]:
        assert step["title"] and step["text"] and isinstance(step["numbers"], dict)
        assert set(step["sources"]) <= set(step["numbers"])


def test_stdin_prompt(run_cli):
    r = run_cli("explain", "-", "--json", input="I love\n")
    assert r.exit_code == 0, r.stderr
    assert r.json()["prompt"] == "I love"


def test_unknown_language(run_cli):
    assert_one_line_error(run_cli("explain", "I love", "--lang", "xx"), "languages: en, zh", code=2)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("width", [80, 120])
def test_fits_the_width(run_cli, width, lang):
    r = run_cli("explain", "To be, or not to be", "--width", width, "--lang", lang)
    assert r.exit_code == 0, r.stderr
    assert max(cell_len(line) for line in r.stdout.splitlines()) <= width
