"""The neuron view, drawn from hand-made data: it fits, it reads without colour, its colours keep their order."""

import io

import pytest
from rich import terminal_theme
from rich.cells import cell_len
from rich.color import Color
from rich.console import Console

from tracegpt.analysis.neurons import (
    Distribution,
    IndexInfo,
    NeuronId,
    NeuronReport,
    OnPrompt,
    Push,
    ShownContext,
    Writes,
)
from tracegpt.texts import load
from tracegpt.views import neuron as view

QUANTILES = [(0.01, -0.1), (0.1, -0.05), (0.25, -0.02), (0.5, 0.0), (0.75, 0.01), (0.9, 0.2), (0.99, 1.5),
             (0.999, 3.0), (0.9999, 5.0)]


def report(index=True, prompt_values=(0.1, 2.5, -0.05), n_contexts=8):
    tokens = (["ROM", "EO", ".", "\n", "But", " soft", ",", " what", " light"] * 2)[:16]  # fires at 12, 3 after
    contexts = [ShownContext(tokens=tokens, token_ids=list(range(len(tokens))),
                             values=[0.5 * (i % 5) - 0.3 for i in range(len(tokens))], firing=12,
                             activation=6.0 - 0.1 * r, position=1000 * r) for r in range(n_contexts)]
    prompt = None
    if prompt_values is not None:
        words = ["I", " love", " thee"]
        values = list(prompt_values)
        top = max(range(len(values)), key=lambda i: values[i])
        d = distribution()
        prompt = OnPrompt(prompt="".join(words), tokens=words, token_ids=[1, 2, 3], values=values, top=top,
                          standing=d.standing(values[top]) if index else None)
    return NeuronReport(
        model={"name": "shakespeare", "n_layer": 4}, neuron=NeuronId(3, 443), site="blocks.3.mlp.act[neuron=443]",
        d_mlp=1024,
        writes=Writes(up=[Push(i, f" up{i}", 0.5 - 0.01 * i) for i in range(10)],
                      down=[Push(i, f" down{i}", -0.4 + 0.01 * i) for i in range(10)], norm=1.23),
        index=IndexInfo(file="shakespeare.neurons.npz", corpus={"kind": "training", "works": 42}, n_tokens=1565056,
                        window=32) if index else None,
        contexts=contexts if index else None, distribution=distribution() if index else None, prompt=prompt)


def distribution():
    return Distribution(n_tokens=1565056, mean=0.07, frac_active=0.021, maximum=6.0, quantiles=QUANTILES)


def draw(r, width, color_system=None, lang="en"):
    console = Console(width=width, file=io.StringIO(), record=True, color_system=color_system)
    console.print(view.render(r, width, color_system, lang))
    return console.export_text()


@pytest.mark.parametrize("width", [40, 80, 140])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_it_fits_and_says_everything(width, lang):
    text = draw(report(), width, lang=lang)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    assert "blocks.3.mlp.act[neuron=443]" in "".join(text.split())
    assert "⟦↵⟧" in text  # the firing token, as tracegpt writes tokens
    assert "'␣up0'" in text and "+0.500" in text and "-0.400" in text
    assert "6.00" in text and text.count("⟦") == 8 + 1  # the contexts, and the sentence that explains the marks


def test_chinese_names_the_neuron_as_chinese_writes_it():
    text = draw(report(), 80, lang="zh")
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "块 3 的前馈网络" in text and "神经元 443" in text


def test_a_context_too_long_for_the_line_is_cut_on_the_left_and_keeps_its_firing_token():
    c = report().contexts[0]
    line = view.context_line(c, 6.0, view.TINTS["full"], room=20)
    assert line.plain == "…ROMEO.⟦↵⟧But soft," and line.cell_len <= 20
    assert view.context_line(c, 6.0, view.TINTS["full"], room=6).plain == "….⟦↵⟧"  # the firing token comes first
    for room in range(4, 60):
        line = view.context_line(c, 6.0, view.TINTS["full"], room)
        assert line.cell_len <= room and "⟦↵⟧" in line.plain
    whole = view.context_line(c, 6.0, view.TINTS["full"], room=200)
    assert whole.plain == "ROMEO.↵But soft, what lightROMEO.⟦↵⟧But soft,"


def test_without_an_index_it_says_how_to_build_one():
    text = " ".join(draw(report(index=False), 100).split())
    assert "No neuron index for shakespeare" in text
    assert "tracegpt neuron --build-index --model shakespeare --text FILE --out FILE" in text
    assert "Where it fires" not in text and "The highest here is 2.50, at '␣love'@1." in text


@pytest.mark.parametrize("values, expected", [
    ((0.1, 2.5, -0.05), "is above 99% of the corpus's tokens (1.50) but not above 99.9% (3.00)"),
    ((0.1, 5.5, 0.0), "is above 99.99% of the corpus's tokens (5.00), and below its highest, 6.00"),
    ((7.0, 0.0, 0.0), "is above every token of the corpus (its highest there is 6.00)"),
    ((-0.5, -0.2, -0.3), "It does not fire on this prompt: its highest activation is -0.20, at '␣love'@1."),
])
def test_where_the_prompt_falls(values, expected):
    text = " ".join(draw(report(prompt_values=values), 200).split())
    assert expected in text


def test_every_sentence_is_in_both_languages():
    for lang in ("en", "zh"):
        assert "neuron" in load(lang)


def luminance(rgb) -> float:
    def linear(v):
        return (v / 255) ** 2.2

    r, g, b = rgb
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def backgrounds(tints):
    return [Color.parse(t.split(" on ")[1]) for t in tints]


def test_full_colour_tints_grow_brighter():
    lum = [luminance(c.get_truecolor()) for c in backgrounds(view.TINTS["full"])]
    assert lum == sorted(lum) and len(set(lum)) == len(lum)


@pytest.mark.parametrize("theme", ["DEFAULT_TERMINAL_THEME", "SVG_EXPORT_THEME", "MONOKAI", "DIMMED_MONOKAI", "xterm"])
def test_sixteen_colour_tints_grow_brighter_in_common_palettes(theme):
    xterm = [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205),
             (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
             (255, 0, 255), (0, 255, 255), (255, 255, 255)]
    palette = xterm if theme == "xterm" else [tuple(getattr(terminal_theme, theme).ansi_colors[i]) for i in range(16)]
    colours = backgrounds(view.TINTS["standard"])
    assert all(c.number is not None and c.number < 16 for c in colours)  # named: the terminal draws them
    lum = [luminance(palette[c.number]) for c in colours]
    assert lum == sorted(lum) and len(set(lum)) == len(lum)


def test_tint_levels():
    assert [view.level(v, 4.0) for v in (-1, 0, 0.5, 1.0, 2.0, 3.0, 4.0, 9.0)] == [0, 0, 1, 2, 3, 4, 4, 4]
    assert view.level(1.0, 0.0) == 0
    assert view.palette("standard") == view.TINTS["standard"] and view.palette("truecolor") == view.TINTS["full"]


def test_the_progress_bar_is_silent_unless_shown(capsys):
    with view.build_progress(100, "scanning", show=False) as progress:
        progress(50)
    assert capsys.readouterr() == ("", "")
    with view.build_progress(100, "scanning", show=True) as progress:  # on standard error, never standard output
        progress(50)
        progress(100)
    assert capsys.readouterr().out == ""


def test_the_build_line_says_what_was_written():
    summary = {"path": "x.npz", "top": 8, "neurons": 4096, "n_layer": 4, "d_mlp": 1024, "tokens": 1565056,
               "corpus": {"kind": "training", "works": 42}, "model": "shakespeare", "seconds": 391.2,
               "bytes": 1129901}
    line = " ".join(view.built_line(summary).plain.split())
    assert line == ("Wrote x.npz: the top 8 contexts and the distribution of each of 4,096 neurons (4 blocks × 1024), "
                    "from 1,565,056 tokens of shakespeare's training text (42 works, each without its held-out last "
                    "5%), in 391 s; 1.1 MB on disk.")
