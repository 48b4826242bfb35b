"""The score views on hand-made scores: widths, the surprise ramp in 16 colours, the tables, one position worked out."""

import math

import numpy as np
import pytest
from rich.cells import cell_len
from rich.color import ColorSystem
from rich.style import Style
from rich.terminal_theme import DEFAULT_TERMINAL_THEME

from tracegpt.analysis.scoring import Score, Scored, WorkedNumbers, compare, plan_windows, summarise, worked_out
from tracegpt.views import score as view
from tracegpt.views.common import make_console

TEXTS = {0: "But", 1: " soft", 2: ",", 3: " what", 4: " light", 5: "\n", 6: " supercalifragilisticexpialidocious",
         7: " the", 8: " window"}
BITS = [3.0, 0.4, 7.0, 12.0, 1.5, 20.0, 0.9, 16.0]  # for tokens 1..8


def make_score(bits=BITS, ids=None, texts=TEXTS, name="tiny", window=256, worked_at=None) -> Score:
    n = len(bits) + 1
    ids = list(range(n)) if ids is None else ids
    b = np.array([np.nan, *bits])
    ranks = np.array([0] + [1 if x < 1 else int(x * 10) for x in bits])
    top_ids = np.array([[7, 3]] * n)
    top_probs = np.array([[0.5, 0.25]] * n)
    scored = Scored(ids=np.array(ids), probs=2.0 ** -b, bits=b, ranks=ranks, context=np.arange(n), top_ids=top_ids,
                    top_probs=top_probs, plan=plan_windows(n, window, max(1, window // 2)))
    n_bytes = np.array([len(texts[i].encode()) for i in ids])
    s = Score(model={"name": name}, text="".join(texts[i] for i in ids), scored=scored, texts=[texts[i] for i in ids],
              n_bytes=n_bytes, token_text=texts.__getitem__, summary=summarise(name, scored, n_bytes))
    if worked_at is not None:
        p = worked_at
        true_logit = -1.25
        lse = 4.0
        numbers = WorkedNumbers(position=p, context_start=0, true_id=ids[p], true_logit=true_logit,
                                true_rank=int(ranks[p]), logsumexp=lse, max_logit=3.5, n_vocab=50257,
                                top_ids=(7, 3, 1), top_logits=(3.5, 2.0, 1.0))
        s.worked = worked_out(numbers, s.row(p), texts.__getitem__)
    return s


def render(renderable, width: int) -> str:
    console = make_console(width=width, color=False, record=True)
    console.file = __import__("io").StringIO()
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("width", [80, 140])
def test_the_view_fits_the_width(width, lang):
    s = make_score(worked_at=6)
    out = render(view.render(s, s.most_surprising(5), lang=lang), width)
    assert max(cell_len(line) for line in out.splitlines()) <= width
    assert "'␣supercalifra…'" in out  # a long token is cut in the tables, not wrapped


def test_every_token_is_in_the_text_in_order_line_breaks_marked():
    s = make_score()
    text = view.tinted_text(s, "en").renderables[-1]
    assert text.plain == "But␣soft,␣what␣light↵\n␣supercalifragilisticexpialidocious␣the␣window".replace("␣", " ")


def test_tokens_are_tinted_by_their_surprise():
    s = make_score()
    text = view.tinted_text(s, "en").renderables[-1]
    styles = {text.plain[span.start:span.end]: str(span.style) for span in text.spans}
    assert styles["But"] == view.FIRST_TOKEN  # not scored
    for row in s.rows():
        assert styles[row.text.replace("\n", "↵\n")] == view.surprise_style(row.bits)


def _luminance(color) -> float:
    r, g, b = color.get_truecolor(DEFAULT_TERMINAL_THEME)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("system", [ColorSystem.TRUECOLOR, ColorSystem.STANDARD])
def test_the_surprise_ramp_brightens_with_surprise_also_in_16_colours(system):
    quiet, loud = [Style.parse(view.surprise_style(b)) for b in (0.5, 3)], \
        [Style.parse(view.surprise_style(b)) for b in (7, 12, 20)]
    assert all(s.bgcolor is None for s in quiet) and all(s.bgcolor is not None for s in loud)
    backgrounds = [s.bgcolor.downgrade(system) for s in loud]
    lum = [_luminance(c) for c in backgrounds]
    assert lum == sorted(lum) and len(set(lum)) == 3
    assert quiet[0].color.downgrade(system) != (quiet[1].color or quiet[0].color)  # grey, then the plain text


def test_the_legend_gives_the_bit_ranges():
    assert view.legend("en").plain == " <2 bits   2–5   5–10   10–15   ≥15 bits  first token, not scored"


def test_most_surprising_table():
    s = make_score()
    out = render(view.surprising_table(s.most_surprising(3), "en"), 100).splitlines()
    assert out[0].split() == ["pos", "token", "prob", "bits", "rank", "the", "model's", "top", "guess"]
    assert [line.split()[0] for line in out[1:]] == ["6", "8", "4"]
    assert out[1].split()[1:5] == ["'␣supercalifra…'", "9.5e-07", "20.00", "200"]
    assert out[1].split()[5:] == ["'␣the'", "50%"]


def test_a_worked_position_shows_the_arithmetic():
    s = make_score(worked_at=6)  # rank 200: not among the three listed
    out = render(view.worked_view(s.worked, "en"), 100)
    assert out.count("▸") == 2  # the intro says what the mark means; one row carries it
    assert "▸'␣supercalifra…'" in out and "196 more" in out
    assert "−ln p('␣supercalifra…') = ln Σ exp(z) − z('␣supercalifra…')" in out
    assert "= 4.0000 − (−1.2500) = 5.2500 nats" in out
    assert f"5.2500 / ln 2 = {5.25 / math.log(2):.4f}" in out
    lines = out.splitlines()
    first = next(line for line in lines if line.lstrip().startswith("−ln p"))
    second = next(line for line in lines if "= 4.0000" in line)
    assert first.index("=") == second.index("=")  # the equals signs line up


def test_a_listed_true_token_needs_no_gap():
    s = make_score(worked_at=2)  # rank 1: the model's top guess
    s.worked = worked_out(WorkedNumbers(position=2, context_start=0, true_id=2, true_logit=3.5, true_rank=1,
                                        logsumexp=4.0, max_logit=3.5, n_vocab=9, top_ids=(2, 3), top_logits=(3.5, 2.0)),
                          s.row(2), TEXTS.__getitem__)
    out = render(view.worked_view(s.worked, "en"), 100)
    assert "⋮" not in out and "▸','" in out


def test_the_summary_says_how_the_text_was_windowed():
    one = " ".join(render(view.summary_table(make_score().summary, "en"), 120).split())
    assert "one forward pass over 8 tokens" in one and "8 of 9" in one
    many = " ".join(render(view.summary_table(make_score(window=3).summary, "en"), 120).split())
    assert "windows of 3 tokens, stride 1" in many and "at least 3 tokens of context" in many


def test_the_chinese_view_is_in_chinese():
    s = make_score(worked_at=6)
    out = render(view.render(s, s.most_surprising(5), lang="zh"), 100)
    assert "比特" in out and "词元" in out and "位置 6" in out
    for english in ("bits", "token", "Summary", "windows", "nats"):
        assert english not in out


B_TEXTS = {0: "B", 1: "ut", 2: " s", 3: "oft", 4: ",", 5: " wh", 6: "at"}


def test_two_models_side_by_side_and_word_by_word():
    a = make_score(bits=[3.0, 1.0, 2.0], ids=[0, 1, 2, 3], name="first")
    b = make_score(bits=[1.0, 9.0, 8.0, 0.5, 6.0, 4.0], ids=list(range(7)), texts=B_TEXTS, name="second-model")
    c = compare(a, b)
    out = render(view.render_comparison(c, c.disagreements(2), a.text, "en"), 80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "first" in out and "second-model" in out
    header = next(line for line in out.splitlines() if line.startswith("word"))
    rows = out.splitlines()[out.splitlines().index(header) + 1:]
    assert [r.split()[0] for r in rows if r.strip()] == ["'␣soft,'", "'␣what'"]
    # '␣soft,': 3 + 1 bits for the first model, 9 + 8 + 0.5 for the second; '␣what': 2 against 6 + 4
    assert rows[0].split()[1:] == ["0.67", "2.92", "−13.5"] and rows[1].split()[1:] == ["0.40", "2.00", "−8.0"]
