import xml.etree.ElementTree as ET

import pytest
from conftest import assert_one_line_error


def test_json(run_cli):
    r = run_cli("lens", "To be, or not to be", "--json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert [row["stage"] for row in doc["rows"]] == ["embed.sum"] + [f"blocks.{i}.resid_out" for i in range(4)]
    assert all(len(row["top"]) == len(doc["tokens"]) for row in doc["rows"])
    assert doc["final"]["by_row"][-1]["rank"] == 1
    assert doc["rows"][-1]["top"][-1]["id"] == doc["final"]["id"]


@pytest.mark.parametrize("width", [80, 120])
def test_view_fits_the_width(run_cli, width):
    r = run_cli("lens", "My lord, I love thee, and so I will", "--width", width)
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= width
    assert "block 3" in r.stdout and "When does the model know?" in r.stdout


def test_svg_and_html_export(run_cli, tmp_path):
    r = run_cli("lens", "I love", "--svg", tmp_path / "l.svg", "--html", tmp_path / "l.html")
    assert r.exit_code == 0, r.stderr
    assert ET.parse(tmp_path / "l.svg").getroot().tag.endswith("svg")
    assert "block 3" in (tmp_path / "l.html").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["lens", ""], "prompt is empty"),
    (["lens", "I love", "--position", "5"], "0..1"),
    (["lens", "I love", "--svg", "/nonexistent/x.svg"], "does not exist"),
])
def test_bad_input(run_cli, args, fragment):
    assert_one_line_error(run_cli(*args), fragment)
