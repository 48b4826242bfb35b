"""Colours that hold: every view drawn in truecolor, 256 and 16 colours keeps its scales in order of
brightness, and every piece of text reads at 4.5:1 or better in the dark theme the exports use."""

import pytest
from rich.color import Color, ColorType
from rich.style import Style
from rich.text import Text

from tracegpt.views.palette import DARK, HEAT_BOUNDS, WEIGHT_BOUNDS, bucket, heat_style, resolve, weight_style

SYSTEMS = {"truecolor": {"COLORTERM": "truecolor", "TERM": "xterm-256color"},
           "256": {"COLORTERM": "", "TERM": "xterm-256color"},
           "standard": {"COLORTERM": "", "TERM": "xterm"}}
VIEWS = [
    ["trace", "I love"],
    ["attn", "To be, or not to be, that is the question:", "-l", "1", "--head", "2"],
    ["attn", "To be, or not to be, that is the question:", "-l", "1", "--head", "2", "--scores"],
    ["attn", "I love you", "--layer", "all"],
    ["attn", "I love you", "-l", "3", "--head", "2", "--query", "2", "--key", "1"],
    ["generate", "I love", "-n", "6", "--seed", "3", "--show-sampling", "2", "-t", "0.9", "--top-k", "20"],
    ["lens", "To be, or not to be"],
    ["explain", "I love"],
    ["intervene", "O Romeo, Romeo! wherefore art thou", "--cut", "2.2:7>5"],
    ["patch", "lord is my", "lady is my"],
    ["score", "But soft, what light through yonder window breaks?"],
    ["neuron", "3.443", "--prompt", "HORATIO."],
    ["attribute", "I love"],
    ["heads", "--probes", "2"],
]


def luminance(rgb) -> float:
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a, b) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def rgb(color: Color | None, foreground: bool):
    if color is None or color.type == ColorType.DEFAULT:
        return DARK.foreground_color if foreground else DARK.background_color
    return tuple(color.get_truecolor(DARK, foreground=foreground))


def drawn(run_cli, args, system) -> Text:
    r = run_cli(*args, "--width", "100", env={"FORCE_COLOR": "1", **SYSTEMS[system]})
    assert r.exit_code == 0, r.stderr
    return Text.from_ansi(r.stdout)


def spans(text: Text):
    for span in text.spans:
        piece = text.plain[span.start:span.end]
        style = span.style if isinstance(span.style, Style) else Style.parse(span.style)
        if piece.strip():
            yield piece, style


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("args", VIEWS, ids=lambda a: " ".join(a[:1] + a[2:4]))
def test_every_text_reads_at_4_5_to_1_in_the_dark_theme(run_cli, args, system):
    for piece, style in spans(drawn(run_cli, args, system)):
        fg, bg = rgb(style.color, True), rgb(style.bgcolor, False)
        if style.reverse:
            fg, bg = bg, fg
        assert contrast(fg, bg) >= 4.5, (piece, str(style), round(contrast(fg, bg), 2))


def drawn_style(name: str, system: str) -> Style:
    from rich.console import Console

    console = Console(color_system=system, force_terminal=True)
    return Style.parse(resolve(name, system)) if system == "standard" else console.get_style(resolve(name, system))


def brightness(style: Style, system: str) -> float:
    color = style.bgcolor if style.bgcolor is not None else style.color
    if color is None:
        return luminance(DARK.background_color)
    from rich.color import ColorSystem

    downgraded = color.downgrade({"truecolor": ColorSystem.TRUECOLOR, "256": ColorSystem.EIGHT_BIT,
                                  "standard": ColorSystem.STANDARD}[system])
    return luminance(downgraded.get_truecolor(DARK, foreground=style.bgcolor is None))


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("scale, bounds", [(weight_style, WEIGHT_BOUNDS), (heat_style, HEAT_BOUNDS)])
def test_each_scale_grows_brighter_in_every_colour_system(scale, bounds, system):
    values = [0.0, *bounds]
    steps = [brightness(Style.parse(resolve(scale(v), system)), system) for v in values]
    assert steps == sorted(steps), (scale.__name__, system, steps)
    assert bucket(bounds[0], bounds) == 1


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_attention_heatmap_and_the_grid_grow_brighter_too(system):
    from tracegpt.views.attn import LEGEND_WEIGHTS, cell_style
    from tracegpt.views.grid import PATCH

    cells = [brightness(cell_style(w, system), system) for w in LEGEND_WEIGHTS]
    assert cells == sorted(cells), (system, cells)
    grid = [brightness(Style.parse(PATCH.style(v, system)), system) for v in (0.0, 0.2, 0.4, 0.7, 1.0)]
    assert grid == sorted(grid), (system, grid)
