"""Colours that keep their meaning in every terminal: named styles, one theme per colour system.

A view asks for a meaning ("weight.2": a strong attention weight or probability; "heat.4": a
sure guess of the logit lens), and the console it is printed on resolves the name with the
theme of its colour system:

- 256 colours and truecolor: RGB ramps, dark to bright, so a larger value is always brighter;
- 16 colours: the only colours whose order of brightness every common theme keeps, black <
  bright_black < white < bright_white, with bold to tell the upper steps apart (a hue would be
  drawn brighter or darker than its neighbours depending on the terminal's theme).

Every foreground and background the views use reads at a contrast of at least 4.5:1 (WCAG AA)
in DARK, the dark terminal theme the SVG and HTML exports are drawn with (tests/views/test_palette.py
checks both, on every view).
"""

from __future__ import annotations

from rich.terminal_theme import TerminalTheme
from rich.theme import Theme

# A dark terminal with xterm's palette: the exports look like the terminal they came from.
DARK = TerminalTheme(
    (12, 12, 12), (229, 229, 229),
    [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205),
     (229, 229, 229)],
    [(127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255),
     (255, 255, 255)],
)

# Attention weights and probabilities: faint, some, strong, dominant.
WEIGHT_BOUNDS = (0.05, 0.20, 0.50)
# The logit lens's top-guess probabilities: unsure to sure.
HEAT_BOUNDS = (0.05, 0.15, 0.30, 0.50, 0.75)


def bucket(value: float, bounds: tuple[float, ...]) -> int:
    return next((i for i, bound in enumerate(bounds) if value < bound), len(bounds))


def weight_style(w: float) -> str:
    """The style of a weight or probability: brighter when larger."""
    return f"weight.{bucket(w, WEIGHT_BOUNDS)}"


def heat_style(p: float) -> str:
    return f"heat.{bucket(p, HEAT_BOUNDS)}"


RICH = {
    "weight.0": "#8a8a8a",
    "weight.1": "#c8904a",
    "weight.2": "#ecc040",
    "weight.3": "bold #fff2a8",
    "heat.0": "#d0d0d0 on #262626",
    "heat.1": "white on #1f4d2b",
    "heat.2": "white on #2e6b3a",
    "heat.3": "black on #5fa84e",
    "heat.4": "black on #9fd06a",
    "heat.5": "black on #e2f5a0",
}
PLAIN = {
    "weight.0": "bright_black",
    "weight.1": "white",
    "weight.2": "bold white",
    "weight.3": "bold bright_white",
    "heat.0": "",
    "heat.1": "black on bright_black",
    "heat.2": "black on bright_black",
    "heat.3": "black on white",
    "heat.4": "bold black on white",
    "heat.5": "bold black on bright_white",
}


def luminance(rgb) -> float:
    """WCAG's relative luminance of an sRGB colour."""
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def readable_on(background) -> str:
    """Black or white text, whichever contrasts more with this background (WCAG's ratio)."""
    lum = luminance(background)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def plain(color_system: str | None) -> bool:
    """Whether a console draws only the 16 standard colours (or none)."""
    return color_system in ("standard", "windows", None)


def theme_for(color_system: str | None) -> Theme:
    return Theme(PLAIN if plain(color_system) else RICH)


def resolve(style_name: str, color_system: str | None) -> str:
    """A named style as the console of that colour system draws it (renderables that pick colours themselves)."""
    return (PLAIN if plain(color_system) else RICH).get(style_name, style_name)
