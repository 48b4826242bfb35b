"""A labelled grid of numbers, each cell tinted by a colour scale: layers × positions, layers × heads.

    Grid(rows=["embed", "block 0", ...], cols=["'To'", "'␣be'", ...], values=[[...], ...], scale=PATCH)

Every cell prints its number, so the grid reads without colour; the colours are buckets of
named colours whose order of brightness holds in truecolor, 256 and 16 colours alike. When
the columns do not fit the width, the grid keeps the first column and the last ones, and
says which it left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from ..texts import say
from .common import Prose, cut, flow, pad, visible
from .palette import plain


@dataclass(frozen=True)
class Scale:
    """Buckets, low to high: a value takes the style of the first bucket whose bound is above it.

    Each bucket has a background for terminals with 256 colours or more (an RGB ramp, dark to
    bright) and one for 16-colour terminals, whose palette every theme draws differently: there
    only black < bright_black < white < bright_white keep their order of brightness in every
    common theme, so the 16-colour ramp uses those (ties are allowed, inversions are not; bold
    tells the upper buckets apart) and a hue only for values of the other sign.
    """

    bounds: tuple[float, ...]  # upper bounds, ascending; the last bucket takes everything above
    rich: tuple[str, ...]  # styles for 256 colours and truecolor, one more than bounds
    plain: tuple[str, ...]  # styles for 16 colours
    labels: tuple[str, ...]  # the legend, one per bucket

    def style(self, value: float | None, color_system: str | None) -> str:
        if value is None:
            return "grey50"
        styles = self.plain if plain(color_system) else self.rich
        return next((s for b, s in zip(self.bounds, styles) if value < b), styles[-1])


# 0 = the corrupted run, 1 = the clean run; below 0 the patch pushed the other way.
PATCH = Scale(bounds=(-0.25, 0.1, 0.3, 0.6, 0.9),
              rich=("#ffffff on #a3202e", "", "#ffffff on #35602f", "black on #4f8f3a", "black on #86c04a",
                    "black on #d4f07a"),
              plain=("bright_white on red", "", "black on bright_black", "black on white", "bold black on white",
                     "bold black on bright_white"),
              labels=("< −0.25", "−0.25–0.1", "0.1–0.3", "0.3–0.6", "0.6–0.9", "≥ 0.9"))


# Signed shares around 0 (a logit split into parts): green pushed up, red pushed down, in buckets
# of ± the largest magnitude shown. In 16 colours the positive side keeps the grey ramp and the
# negative side is red: weak as (bright) red text, stronger on a red ground, strongest bold.
SIGNED_CUTS = (-0.6, -0.25, -0.08, 0.08, 0.25, 0.6)


def signed(limit: float) -> Scale:
    """A diverging scale for values in about [-limit, limit]."""
    limit = limit if limit > 0 else 1.0
    bounds = tuple(c * limit for c in SIGNED_CUTS)
    ends = [f"{b:+.2f}".replace("-", "−") for b in bounds]
    return Scale(bounds=bounds,
                 rich=("white on #a3202e", "white on #73262e", "white on #4a2226", "", "white on #2f4f2a",
                       "black on #4f8f3a", "black on #86c04a"),
                 plain=("bold white on red", "white on red", "bright_red", "", "black on bright_black",
                        "black on white", "bold black on bright_white"),
                 labels=(f"< {ends[0]}", *(f"{a}…{b}" for a, b in zip(ends, ends[1:])), f"≥ {ends[-1]}"))


class Legend:
    """The scale's buckets as swatches, in the colours the console will draw."""

    def __init__(self, scale: Scale, title: str = ""):
        self.scale = scale
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        styles = self.scale.plain if plain(console.color_system) else self.scale.rich
        pieces = [Text(self.title, style="grey70")] if self.title else []
        pieces += [Text(f" {label} ", style=style) for label, style in zip(self.scale.labels, styles)]
        yield from flow(pieces, options.max_width)


class Grid:
    def __init__(self, rows: list[str], cols: list[str], values: list[list[float | None]], scale: Scale,
                 corner: str = "", number: str = "{:.2f}", marks: set[tuple[int, int]] | None = None,
                 labels: list[list[str]] | None = None):
        self.rows = rows
        self.cols = [visible(c) for c in cols]
        self.values = values
        self.scale = scale
        self.corner = corner
        self.number = number
        self.marks = marks or set()
        self.labels = labels  # what each cell prints instead of its number (the value still picks the colour)
        shown = [self.text(i, j) for i, row in enumerate(values) for j, v in enumerate(row) if v is not None]
        self.cell = max([4, *map(cell_len, shown)]) + 1
        self.label = max([cell_len(corner), *map(cell_len, rows)]) + 1

    def text(self, i: int, j: int) -> str:
        value = self.values[i][j]
        if value is None:
            return "·"
        return self.labels[i][j] if self.labels is not None else self.number.format(value)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.label + 3 * self.cell, self.label + len(self.cols) * max(self.cell, 9))

    def columns(self, width: int) -> tuple[list[int | None], int]:
        """The columns that fit (None stands for the ones left out), and the cell width to draw them at."""
        n = len(self.cols)
        room = width - self.label
        wide = max(self.cell, min(10, max(cell_len(c) + 1 for c in self.cols)))  # headers widen cells up to 10
        if n * wide <= room:
            return list(range(n)), wide
        fit = max(3, room // self.cell)
        if n <= fit:
            return list(range(n)), self.cell
        return [0, None, *range(n - (fit - 2), n)], self.cell

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cols, cell = self.columns(options.max_width)
        header = Text(pad(self.corner, self.label), style="grey50")
        for j in cols:
            header.append(pad("…" if j is None else cut(self.cols[j], cell - 1), cell - 1, right=True) + " ",
                          style="grey50" if j is None else "cyan")
        yield header
        for i, label in enumerate(self.rows):
            line = Text(pad(label, self.label), style="bold")
            for j in cols:
                if j is None:
                    line.append("…".rjust(cell - 1) + " ", style="grey50")
                    continue
                value = self.values[i][j]
                text = self.text(i, j)
                style = self.scale.style(value, console.color_system)
                style += " bold underline" if (i, j) in self.marks else ""
                line.append(" " * (cell - 1 - cell_len(text)), style=style)
                line.append(text, style=style)
                line.append(" ")
            yield line
        if None in cols:
            hidden = [j for j in range(len(self.cols)) if j not in cols]
            yield Prose(say("grid", "hidden", first=hidden[0], last=hidden[-1], n=len(hidden)), style="grey50")
