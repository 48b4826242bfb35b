"""Chinese text and CJK tokens take two cells a character: views, grids and pictures line them up."""

import io
import re
import xml.etree.ElementTree as ET

import pytest
import torch
from rich.cells import cell_len
from rich.console import Console

from tracegpt.views.attn import Heatmap
from tracegpt.views.common import CJK_FONTS, SVG_CELL, Prose, export_html, export_svg, wrap
from tracegpt.views.grid import PATCH, Grid
from tracegpt.views.lens import _short

TOKENS = ["你好", "，", "世界", "。", "I", "爱你们大家"]


def lines(renderable, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), record=True, color_system="truecolor")
    console.print(renderable)
    out = console.export_text().splitlines()
    assert max(cell_len(line) for line in out) <= width
    return out


def column_ends(line: str, pattern: str) -> list[int]:
    """The cell offset where each match of `pattern` ends: right-aligned columns end together."""
    return [cell_len(line[: m.end()]) for m in re.finditer(pattern, line)]


@pytest.mark.parametrize("width", [80, 140])
def test_the_heatmap_lines_up_chinese_labels(width):
    n = len(TOKENS)
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    weights = (mask / mask.sum(-1, keepdim=True)).tolist()
    shown = lines(Heatmap(TOKENS, weights, mask.tolist(), focus=n - 1), width)
    header, rows = shown[1], shown[2:2 + n]  # the key indices, then one line per query
    keys = column_ends(header, r"\d+")
    assert len(keys) == n
    for i, row in enumerate(rows):
        assert column_ends(row, r"\d\.\d\d|·") == keys, i
        assert cell_len(row) == cell_len(rows[0]), i
    # Chinese key labels above their columns, whole where there is room
    assert "你好" in shown[0] and "世界" in shown[0]


@pytest.mark.parametrize("width", [80, 140])
def test_grids_line_up_chinese_labels(width):
    rows, cols = ["嵌入", "块 0", "块 1"], ["'你好'", "'，'", "'a'"]
    values = [[0.0, 1.0, 0.25], [0.5, -0.1, None], [1.0, 0.0, 0.0]]
    shown = lines(Grid(rows, cols, values, PATCH, corner="块 \\ 头"), width)
    ends = [column_ends(line, r"-?\d\.\d\d|·") for line in shown[1:]]
    assert all(e == ends[0] for e in ends) and len(ends[0]) == 3
    assert column_ends(shown[0], r"'[^']*'") == ends[0]  # each label ends where its numbers do
    assert len({cell_len(line) for line in shown}) == 1


def test_a_cjk_token_is_cut_by_cells():
    assert cell_len(_short("爱你们大家一起", 7)) == 7 and _short("爱你们大家一起", 7).endswith("…'")
    assert _short("你好", 7) == "'你好'"


@pytest.mark.parametrize("width", [24, 41, 80])
def test_prose_breaks_chinese_anywhere_but_before_closing_punctuation(width):
    text = ("注意力让词元互通信息，前馈网络再逐个加工每个词元。"
            "两者都只往残差流上做加法：一个什么都没学会的块，会让输入原样通过。")
    shown = lines(Prose(text), width)
    assert "".join(shown) == text and shown == wrap(text, width)
    assert all(cell_len(line) >= width - 3 for line in shown[:-1])
    assert not any(line[0] in "，。：；、）" for line in shown[1:])


def test_prose_breaks_english_where_rich_does():
    from rich.text import Text

    text = "A block that learned nothing would pass its input through unchanged; here is how much each changed it."
    for width in (20, 33, 60):
        assert lines(Prose(text), width) == [line.rstrip() for line in lines(Text(text), width)]


def recorded(width: int = 80) -> Console:
    console = Console(width=width, file=io.StringIO(), record=True, color_system="truecolor")
    console.print(Prose("块 3 的头 2：谁读谁（softmax 权重）"))
    console.print("'你好'@0  1.00")
    return console


def test_the_svg_names_a_font_with_chinese_glyphs_and_sizes_runs_by_cells():
    svg = export_svg(recorded(), "tracegpt attn")
    assert "Noto Sans Mono CJK SC" in svg and CJK_FONTS in svg
    root = ET.fromstring(svg)
    texts = [t for t in root.iter() if t.tag.endswith("text") and t.get("textLength")]
    shown = "".join("".join(t.itertext()) for t in texts).replace("\xa0", " ")
    assert "块 3 的头 2：谁读谁（softmax 权重）" in shown and "你好" in shown
    for t in texts:  # each run's length is its cells, not its characters
        run = "".join(t.itertext()).strip("\n")
        if not run:
            continue  # rich's line ends
        assert float(t.get("textLength")) == pytest.approx(SVG_CELL * cell_len(run)), run
    wide = [s for t in texts for s in t if s.tag.endswith("tspan")]
    # Only wide characters go in the runs set at two cells to the em.
    assert wide and all(cell_len(s.text) == 2 * len(s.text) for s in wide)
    assert all(f"font-size: {2 * SVG_CELL:g}px" in s.get("style") for s in wide)


def test_the_svg_keeps_the_spaces_that_open_a_run_and_fetches_nothing():
    svg = export_svg(recorded(), "tracegpt attn")
    # "'你好'@0" and "  1.00" are separate runs only when styled; the gap must survive in any viewer.
    root = ET.fromstring(svg)
    assert root.get("{http://www.w3.org/XML/1998/namespace}space") == "preserve"
    assert "@font-face" not in svg and "url(http" not in svg and "woff" not in svg


def test_the_html_names_a_font_with_chinese_glyphs():
    page = export_html(recorded())
    assert "Noto Sans Mono CJK SC" in page and "你好" in page


def test_exports_through_the_command(run_cli, tmp_path):
    svg, page = tmp_path / "a.svg", tmp_path / "a.html"
    r = run_cli("attn", "I love you", "--layer", "3", "--head", "2", "--lang", "zh", "--width", "80",
                "--svg", svg, "--html", page)
    assert r.exit_code == 0, r.stderr
    image = svg.read_text(encoding="utf-8")
    assert "Noto Sans Mono CJK SC" in image and "谁读谁" in image and 'xml:space="preserve"' in image
    assert "Noto Sans Mono CJK SC" in page.read_text(encoding="utf-8")
