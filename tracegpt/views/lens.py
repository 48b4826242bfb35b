"""`tracegpt lens`: layers × positions, each cell the top guess at that depth, coloured by probability."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..analysis.lens import Lens
from ..texts import say, titled
from .common import Prose, Title, bar, cut, flow, pct, quoted
from .palette import heat_style

CELL = 11  # a cell's width: a short token and its percentage
LABEL = 9  # the row labels' width


def _t(key: str, **values) -> str:
    return say("lens", key, **values)


def row_label(i: int) -> str:
    return _t("row_embed") if i == 0 else _t("row_block", layer=i - 1)


def heat(p: float) -> str:
    """Dark for unsure, bright for sure: the background carries the probability."""
    return heat_style(p)


def legend(width: int) -> list[Text]:
    """What the cells' colours mean: the top guess's probability, in the heat steps."""
    labels = ["< 5%", "5–15%", "15–30%", "30–50%", "50–75%", "≥ 75%"]
    pieces = [Text(_t("legend"), style="grey70")] + [Text(f" {label} ", style=f"heat.{i}")
                                                     for i, label in enumerate(labels)]
    return flow(pieces, width)


def _short(text: str, width: int) -> str:
    """A quoted token within `width` cells (a Chinese character takes two)."""
    shown = quoted(text)
    return shown if cell_len(shown) <= width else cut(shown[:-1], width - 1) + "'"


def visible_positions(n_tokens: int, focus: int, width: int) -> range:
    """The positions that fit, ending at the focus position (or the last, when the focus is visible anyway)."""
    fit = max(1, (width - LABEL - 2) // (CELL + 1))
    last = max(focus, min(n_tokens - 1, fit - 1))
    return range(max(0, last - fit + 1), last + 1)


def grid(lens: Lens, positions: range) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1, 0, 0))
    table.add_column("", width=LABEL, no_wrap=True)
    for pos in positions:
        label = _short(lens.tokens[pos], CELL)
        style = "cyan reverse" if pos == lens.focus else "cyan"
        table.add_column(Text(label, style=style), width=CELL, no_wrap=True, overflow="crop")
    for i, row in enumerate(lens.top):
        cells = []
        for pos in positions:
            top = row[pos]
            cell = Text(_short(top.text, CELL - 4), style=heat(top.prob))
            cell.append(f"{top.prob * 100:3.0f}%".rjust(CELL - cell.cell_len), style=heat(top.prob))
            cells.append(cell)
        table.add_row(row_label(i), *cells)
    return table


def focus_table(lens: Lens) -> Table:
    final = quoted(lens.final_text)
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column(_t("col_row"))
    table.add_column(_t("col_top"))
    table.add_column(_t("col_rank", token=final), justify="right")
    table.add_column(_t("col_prob", token=final), justify="right")
    table.add_column("", no_wrap=True)
    for i, (row, rank, prob) in enumerate(zip(lens.top, lens.final_ranks, lens.final_probs)):
        top = row[lens.focus]
        table.add_row(row_label(i), Text(quoted(top.text), style=heat(top.prob)), f"{rank:,}",
                      pct(prob), Text(bar(prob, 16), style="green"))
    return table


def summary(lens: Lens) -> Text:
    final = quoted(lens.final_text)
    first = lens.first_top_row
    if first is None:
        return Prose(_t("never_top", token=final), style="italic grey70")
    worst = max(lens.final_ranks[:first]) if first else 1
    return Prose(_t("first_top", token=final, row=row_label(first), rank=worst), style="italic grey70")


def render(lens: Lens, width: int) -> Group:
    positions = visible_positions(len(lens.tokens), lens.focus, width)
    focus = lens.focus
    intro = _t("intro" if lens.tied else "intro_untied", model=lens.model["name"])
    parts = [Title(lambda cells: _t("title", prompt=titled(lens.prompt, len(lens.tokens), cells),
                                    model=lens.model["name"])),
             Prose(intro, style="italic grey70"), Text()]
    if positions.start > 0:
        parts.append(Prose(_t("window", first=positions.start, last=positions.stop - 1, hidden=positions.start),
                          style="grey50"))
    parts += [grid(lens, positions), *legend(width), Text(),
              Prose(_t("focus_title", token=quoted(lens.final_text), position=focus,
                      focus_token=quoted(lens.tokens[focus])), style="bold"),
              focus_table(lens), summary(lens)]
    if lens.actual is not None:
        text, rank, p = lens.actual
        parts.append(Prose(_t("actual", position=focus, token=quoted(text), rank=f"{rank:,}", pct=pct(p)),
                           style="italic grey70"))
    return Group(*parts)
