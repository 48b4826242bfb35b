"""Line breaking for the explain view: English at spaces, Chinese between characters, never before ，。"""

import io

import pytest
from rich.cells import cell_len
from rich.console import Console

from tracegpt.analysis.walk import build, narrate
from tracegpt.tracer import run_trace
from tracegpt.views import explain as explain_view
from tracegpt.views.common import CLOSE, wrap

ZH = ("每个编号从一张学出来的表（词元嵌入）中取出一行：256 个数，表示这个词元是什么。"
      "位置就是节点的地址，所以同一个词出现在两个位置时，起点是两个不同的向量。")


@pytest.mark.parametrize("width", [20, 37, 76])
def test_chinese_fills_each_line(width):
    lines = wrap(ZH, width)
    assert "".join(lines).replace(" ", "") == ZH.replace(" ", "")
    assert all(cell_len(line) <= width for line in lines)
    assert all(cell_len(line) >= width - 6 for line in lines[:-1])  # no line left half empty
    assert not any(line[0] in CLOSE for line in lines[1:])


def test_english_breaks_only_at_spaces():
    text = "Attention is how tokens exchange information: score = Q·K/√64, then softmax."
    lines = wrap(text, 24)
    assert " ".join(lines) == text and all(len(line) <= 24 for line in lines)


def test_closing_punctuation_stays_on_its_line():
    assert wrap("甲乙丙丁，戊己", 4) == ["甲乙", "丙", "丁，", "戊己"]
    assert wrap("甲（乙丙）丁", 4) == ["甲", "（乙", "丙）", "丁"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_render_fits(lm, lang):
    narration = narrate(build(run_trace(lm, "My lord, I love thee"), lm.token_text), lang)
    console = Console(width=80, file=io.StringIO(), record=True, color_system=None)
    console.print(explain_view.render(narration, 80))
    text = console.export_text()
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "#1" in text and narration.steps[-1].title in text
