"""`tracegpt attn`: the heatmap, the all-heads table and the worked example, drawn from an attention report.

Every function takes the `tracegpt.analysis.attention.AttentionReport` (the data --json prints)
or a part of it, and returns a rich renderable; nothing here computes attention.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.color import Color
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.rule import Rule
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ..analysis.attention import (
    NO_SCALING,
    AttentionReport,
    HeadReport,
    KeyShare,
    LayerReport,
    Pattern,
    SoftmaxTerm,
    WorkedCell,
)
from ..texts import say
from .common import Prose, bar, cut, flow, pct, quoted, visible, weight_style
from .palette import WEIGHT_BOUNDS, bucket, plain, readable_on, resolve

LABEL_CELLS = 10  # longest token label beside a row before it is cut with …
TITLE_PROMPT_CELLS = 100  # a long prompt is cut in the title; the grid labels show every token
MIN_NUMBER_KEYS = 8  # fewer key columns than this with numbers: draw shaded cells instead
OVERVIEW_TOKEN_CELLS = 6  # token text in the all-heads table, which must fit 80 columns
TOP_KEYS = 3
GRID_GAP = 3  # columns between heatmaps drawn side by side
MAX_SOFTMAX_ROWS = 12  # keys listed in the worked softmax before the rest are summed in one line
SOFTMAX_BAR_CELLS = 12
# Dark violet to pale yellow; weights go through a square root first so 0.05 and 0.2 differ visibly.
GRADIENT = ((0.0, (28, 26, 48)), (0.3, (84, 40, 124)), (0.55, (183, 55, 96)), (0.8, (242, 132, 48)),
            (1.0, (252, 231, 122)))
SHADES = "░▒▓█"
SHADE_FLOOR = 0.02  # the darkest gradient colour is the terminal's own; faint shaded cells stay visible
LEGEND_WEIGHTS = (0.0, 0.05, 0.2, 0.5, 1.0)
PATTERN_STYLES = {"previous": "bold green", "first": "bold yellow", "self": "bold bright_magenta", "diffuse": "grey62",
                  "mixed": "grey50", "single": "grey50"}


def _t(key: str, **values) -> str:
    return say("attn", key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def _scale_text(text: str) -> str:
    return _t("no_scaling") if text == NO_SCALING else text


def token_at(report: AttentionReport, position: int) -> str:
    return f"{quoted(report.tokens[position])}@{position}"


# --- colours ---------------------------------------------------------------------------------------


def weight_color(weight: float) -> Color:
    t = max(0.0, min(1.0, weight)) ** 0.5
    for (t0, c0), (t1, c1) in zip(GRADIENT, GRADIENT[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return Color.from_rgb(*(round(a + (b - a) * f) for a, b in zip(c0, c1)))
    return Color.from_rgb(*GRADIENT[-1][1])


# 16 colours: the grey steps whose order every theme keeps (see views/palette.py).
PLAIN_CELLS = ("", "black on bright_black", "black on white", "bold black on bright_white")


def cell_style(weight: float, color_system: str | None = "truecolor") -> Style:
    if plain(color_system):
        return Style.parse(PLAIN_CELLS[bucket(weight, WEIGHT_BOUNDS)])
    bg = weight_color(weight)
    return Style(color=readable_on(bg.get_truecolor()), bgcolor=bg)


def shade_style(weight: float, color_system: str | None = "truecolor") -> Style:
    if plain(color_system):
        return Style.parse(resolve(weight_style(weight), color_system))
    return Style(color=weight_color(max(weight, SHADE_FLOOR)))


def shade(weight: float) -> str:
    """One character per cell for narrow grids; the square root matches the colours, and no edge looks empty."""
    return SHADES[min(len(SHADES) - 1, int(max(0.0, weight) ** 0.5 * len(SHADES)))]


def legend_pieces(n_masked: int, shaded: bool, color_system: str | None,
                  scale: list[tuple[float, str]], title: str) -> list[Text]:
    """The colour scale's swatches: (where on the scale, the number it stands for) each."""
    pieces = [Text(title, style="grey70")]
    for t, label in scale:
        swatch = Text()
        if shaded:
            swatch.append(shade(t), style=shade_style(t, color_system))
            swatch.append(" ")
            swatch.append(label, style="grey70")
        else:
            for part in (" ", label, " "):  # spaces apart from the digits, for SVG viewers
                swatch.append(part, style=cell_style(t, color_system))
        pieces.append(swatch)
    masked = Text()
    masked.append("·", style="grey50")
    masked.append(" ")
    masked.append(_t("legend_masked", n=n_masked), style="grey70")
    return pieces + [masked]


# --- the heatmap -----------------------------------------------------------------------------------


@dataclass
class Window:
    rows: list[int]
    keys: list[int | None]  # None is the "…" column standing for keys not shown
    shaded: bool
    cell: int = 0  # columns per key, the space after it included


class Heatmap:
    """A query × key grid that windows itself to the width it is drawn at.

    `values` are what the cells say (weights, or scores with `by_score`; None where masked) and
    what colours them: weights on their own 0..1 scale, scores from the grid's lowest to its highest,
    each under a legend in its own units.
    """

    def __init__(self, labels: list[str], values: list[list[float | None]], mask: list[list[bool]], focus: int,
                 mark: tuple[int, int] | None = None, by_score: bool = False):
        self.labels = [visible(t) for t in labels]
        self.values = values
        self.mask = mask
        self.color_system: str | None = "truecolor"
        kept = [v for row, keep in zip(values, mask) for v, k in zip(row, keep) if k and v is not None]
        low, high = (min(kept), max(kept)) if by_score else (0.0, 1.0)
        span = (high - low) or 1.0
        self.colour = [[0.0 if v is None else (v - low) / span for v in row] for row in values]
        self.scale = [(t, f"{low + t * span:.2f}") for t in LEGEND_WEIGHTS]
        self.legend_title = _t("legend_score" if by_score else "legend_colour")
        self.focus = focus
        self.mark = mark
        n = len(labels)
        self.pos_cells = len(str(n - 1))
        self.token_cells = max(1, min(LABEL_CELLS, max(cell_len(t) for t in self.labels)))
        # The axis names sit in the label column's header, so it is at least as wide as they are.
        axes = max(cell_len(_t("keys_axis")), cell_len(_t("queries_axis"))) + 1
        self.token_cells = max(self.token_cells, axes - self.pos_cells - 2)
        self.label_cells = self.pos_cells + 1 + self.token_cells + 1
        shown = [f"{v:.2f}" for row, keep in zip(values, mask) for v, k in zip(row, keep) if k and v is not None]
        self.number_cells = max([4, *map(len, shown)])

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        n = len(self.labels)
        widest = max(self.number_cells, self.token_cells) + 1
        return Measurement(self.label_cells + 3 * 2, self.label_cells + n * widest)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.color_system = console.color_system
        window = self.window(options.max_width)
        yield from self.header(window)
        for i in window.rows:
            yield self.row(i, window)
        hidden = self.hidden_note(window)
        if hidden is not None:
            yield hidden
        n_masked = sum(not keep for row in self.mask for keep in row)
        yield from flow(legend_pieces(n_masked, window.shaded, console.color_system, self.scale, self.legend_title),
                        options.max_width)

    def window(self, width: int) -> Window:
        window = self.choose_keys(width)
        window.cell = 2 if window.shaded else self.number_cells + 1
        if not window.shaded:
            # Room to spare: widen the columns so the key labels are read whole, not cut.
            room = max(0, width - self.label_cells)
            labels = [cell_len(self.labels[j]) for j in window.keys if j is not None]
            wide = max(labels) + 1
            # As wide as the labels need, or as the room allows: a label is cut only when it must be.
            window.cell = max(window.cell, min(wide, room // len(window.keys)))
        return window

    def choose_keys(self, width: int) -> Window:
        n = len(self.labels)
        room = max(0, width - self.label_cells)
        fit = room // (self.number_cells + 1)
        shaded = fit < min(n, MIN_NUMBER_KEYS)
        if shaded:
            fit = room // 2
        fit = max(fit, 3)
        end = self.mark[0] if self.mark else self.focus
        if n <= fit:
            return Window(list(range(n)), list(range(n)), shaded)
        if end < fit:
            # The window starts at token 0 and already reaches the row to show.
            return Window(list(range(fit)), list(range(fit)), shaded)
        recent = list(range(end - (fit - 2) + 1, end + 1))
        # One key column stays pinned before the gap: the worked key, else the first token,
        # where many heads park attention they do not need.
        pinned = self.mark[1] if self.mark and self.mark[1] < recent[0] else 0
        return Window(recent, [pinned, None, *recent], shaded)

    def cell_width(self, window: Window) -> int:
        return window.cell

    def header(self, window: Window) -> list[Text]:
        width = self.cell_width(window)
        top, bottom = Text(), Text()
        append_padded(top, _t("keys_axis"), self.label_cells - 1, "grey50")
        top.append(" ")
        append_padded(bottom, _t("queries_axis"), self.label_cells, "grey50", right=False)
        for j in window.keys:
            if j is None:
                top_label, bottom_label = "", "…"
            elif window.shaded:
                # Shaded cells are one character wide: tens above ones, the tens only where they change.
                top_label, bottom_label = (str(j // 10 % 10) if j % 10 == 0 and j else ""), str(j % 10)
            else:
                top_label, bottom_label = cut(self.labels[j], width - 1), str(j)
            append_padded(top, top_label, width - 1, self.key_style(j) if not window.shaded else "grey50")
            top.append(" ")
            append_padded(bottom, bottom_label, width - 1, self.key_style(j) if window.shaded else "grey50")
            bottom.append(" ")
        return [top, bottom]

    def key_style(self, j: int | None) -> str:
        if j is None:
            return "grey50"
        return "bold underline cyan" if self.mark and j == self.mark[1] else "cyan"

    def row(self, i: int, window: Window) -> Text:
        line = Text(no_wrap=True, overflow="crop")
        marked_row = self.mark is not None and i == self.mark[0]
        style = "bold underline cyan" if marked_row else ("bold reverse cyan" if i == self.focus else "cyan")
        append_padded(line, str(i), self.pos_cells, "grey50")
        line.append(" ")
        append_padded(line, cut(self.labels[i], self.token_cells), self.token_cells, style, right=False,
                      pad_style=None)
        line.append(" ")
        for j in window.keys:
            self.append_cell(line, i, j, window)
        return line

    def append_cell(self, line: Text, i: int, j: int | None, window: Window) -> None:
        width = self.cell_width(window) - 1
        if j is None:
            append_padded(line, "…", width, "grey50")
        elif not self.mask[i][j]:
            append_padded(line, "·", width, "grey50")
        else:
            t = self.colour[i][j]
            # A shaded cell is its glyph in the weight's colour: a glyph on a coloured background reads as noise.
            style = shade_style(t, self.color_system) if window.shaded else cell_style(t, self.color_system)
            if self.mark == (i, j):
                style += Style(bold=True, underline=True)
            text = shade(t) if window.shaded else f"{self.values[i][j]:.2f}"
            append_padded(line, text, width, style)
        line.append(" ")

    def hidden_note(self, window: Window) -> Text | None:
        n = len(self.labels)
        shown_keys = [j for j in window.keys if j is not None]
        if len(window.rows) == n and len(shown_keys) == n:
            return None
        return _explain(_t("window", rows=spans(window.rows, _t("list_sep")), keys=spans(shown_keys, _t("list_sep")),
                           n=n, last=n - 1))


def append_padded(line: Text, text: str, cells: int, style: str | Style, right: bool = True,
                  pad_style: str | Style | None = "same") -> None:
    """Pad in a span of its own: SVG viewers such as rsvg drop leading spaces inside a text run."""
    pad = " " * max(0, cells - cell_len(text))
    pad_style = style if pad_style == "same" else pad_style
    for part, part_style in ((pad, pad_style), (text, style)) if right else ((text, style), (pad, pad_style)):
        if part:
            line.append(part, style=part_style)


def spans(positions: list[int], sep: str = ", ") -> str:
    """[0, 5, 6, 7] -> '0, 5..7'"""
    parts, start = [], None
    for a, b in zip(positions, positions[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(str(a) if start == a else f"{start}..{a}")
            start = None
    return sep.join(parts)


# --- one head --------------------------------------------------------------------------------------


def head_view(report: AttentionReport, head: HeadReport, scores: bool = False) -> Group:
    """The heatmap of one head (weights, or scores with `scores`), its explanation, and the worked cell."""
    worked = head.worked
    mark = (worked.query, worked.key) if worked else None
    values = head.scores if scores else head.weights
    title = _t("scores_title" if scores else "weights_title", layer=head.layer, head=head.head,
               scale=f"{head.scale:.6g}", scale_text=_scale_text(head.scale_text))
    parts = [Prose(title, style="bold"),
             Heatmap(report.tokens, values, report.mask, report.focus_position, mark, by_score=scores),
             explain_head(report, head, scores)]
    if worked:
        parts += [Text(), worked_view(report, worked)]
    return Group(*parts)


def explain_head(report: AttentionReport, head: HeadReport, scores: bool) -> Text:
    p = head.pattern
    first = quoted(report.tokens[0])
    sentence = _t(f"explain_{p.name}", layer=head.layer, head=head.head, pct=pct(p.share), token=first,
                  **{k: pct(v) for k, v in p.shares.items()})
    focus = head.focus
    best = focus.top[0]
    sentence += _t("sentence_sep") + _t("explain_focus", token=token_at(report, focus.position),
                         source=token_at(report, best.position), pct=pct(best.weight),
                         bits=focus.entropy_bits, max_bits=focus.max_entropy_bits)
    if scores:
        sentence += _t("sentence_sep") + _t("explain_scores")
    return _explain(sentence)


class HeadGrid:
    """Several heads' heatmaps, side by side as many as the width holds, else one under the other."""

    def __init__(self, report: AttentionReport, heads: list[HeadReport], scores: bool):
        self.report, self.heads, self.scores = report, heads, scores

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        views = [head_view(self.report, h, self.scores) for h in self.heads]
        natural = max(42, *(console.measure(v.renderables[1], options=options).maximum for v in views))
        per_row = max(1, min(len(views), (options.max_width + GRID_GAP) // (natural + GRID_GAP)))
        if per_row == 1 or any(h.worked for h in self.heads):
            for v in views:
                yield v
                yield Text()
            return
        grid = Table.grid(padding=(0, GRID_GAP, 1, 0))
        for _ in range(per_row):
            grid.add_column(width=natural)
        for start in range(0, len(views), per_row):
            row = views[start:start + per_row]
            grid.add_row(*row, *[""] * (per_row - len(row)))
        yield grid


# --- every head of a layer -------------------------------------------------------------------------


def overview(report: AttentionReport, layer: LayerReport) -> Group:
    """One line per head: the focus token's top keys and entropy, and the head's pattern over all queries."""
    focus = report.focus_position
    max_bits = layer.heads[0].focus.max_entropy_bits
    key_cells = top_key_cells(report)  # the same for every layer, so stacked tables line up
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column(_t("col_head"), justify="right", no_wrap=True)
    for rank in range(1, TOP_KEYS + 1):
        table.add_column(_t("col_top", rank=rank), no_wrap=True, min_width=key_cells)
    table.add_column(_t("col_entropy"), justify="right", no_wrap=True)
    table.add_column(_t("col_pattern"), no_wrap=True)
    for head in layer.heads:
        tops = [top_key(report, t) for t in head.focus.top]
        tops += [Text("")] * (TOP_KEYS - len(tops))
        table.add_row(str(head.head), *tops, f"{head.focus.entropy_bits:.2f}", pattern_label(head.pattern))
    title = Prose(_t("overview_title", layer=layer.layer, token=token_at(report, focus), max_bits=max_bits),
                 style="bold")
    return Group(title, table, _explain(summarise_layer(layer)))


def top_key(report: AttentionReport, top: KeyShare) -> Text:
    label = quoted(cut(visible(report.tokens[top.position]), OVERVIEW_TOKEN_CELLS))
    text = Text(label, style="cyan")
    text.append(f"@{top.position} ", style="grey50")
    text.append(pct(top.weight), style=weight_style(top.weight))
    return text


def top_key_cells(report: AttentionReport) -> int:
    tops = [t for layer in report.layers for head in layer.heads for t in head.focus.top]
    return max((top_key(report, t).cell_len for t in tops), default=0)


def pattern_label(p: Pattern) -> Text:
    text = Text(_t(f"pattern_{p.name}"), style=PATTERN_STYLES[p.name])
    if p.name in ("previous", "first", "self"):
        text.append(f" {pct(p.share)}", style="grey70")
    return text


def summarise_layer(layer: LayerReport) -> str:
    groups: dict[str, list[int]] = {}
    for head in layer.heads:
        groups.setdefault(head.pattern.name, []).append(head.head)
    parts = []
    for name, heads in groups.items():
        who = _t("head_one" if len(heads) == 1 else "head_many", heads=_t("list_sep").join(map(str, heads)))
        parts.append(_t("group", pattern=_t("pattern_" + name), heads=who))
    return _t("overview_explain", layer=layer.layer, groups=_t("group_sep").join(parts))


# --- the worked example ----------------------------------------------------------------------------


def numbers_table(dims: list[int], rows: list[tuple[str, list[float], str]]) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="grey50", padding=(0, 1))
    table.add_column(_t("col_dim"), no_wrap=True, style="bold")
    for d in dims:
        table.add_column(str(d), justify="right", no_wrap=True)
    for label, values, style in rows:
        table.add_row(label, *(f"{v:.4f}" for v in values), style=style)
    return table


def worked_view(report: AttentionReport, w: WorkedCell) -> Group:
    q_tok, k_tok = token_at(report, w.query), token_at(report, w.key)
    first, last = w.dims[0], w.dims[-1]
    q_name, k_name, v_name = f"q{subscript(w.query)}", f"k{subscript(w.key)}", f"v{subscript(w.key)}"
    parts = [
        Rule(_t("worked_title", q_token=q_tok, k_token=k_tok, layer=w.layer, head=w.head), style="grey50",
             align="left"),
        _explain(_t("worked_vectors", q_token=q_tok, k_token=k_tok, d_head=w.d_head, first=first, last=last)),
        numbers_table(w.dims, [(q_name, w.q, ""), (k_name, w.k, ""),
                                  (f"{q_name}×{k_name}", w.products, "yellow")]),
        Prose(_t("worked_dot", q=q_name, k=k_name, d_head=w.d_head, dot=w.dot, shown=w.dot_shown,
                first=first, last=last, rest=w.dot - w.dot_shown, rest_n=w.d_head - len(w.dims))),
        Prose(_t("worked_scale", scale=f"{w.scale:.6g}", scale_text=_scale_text(w.scale_text), score=w.score,
                row=w.query, col=w.key, recorded=w.recorded_score)),
        _explain(_t("worked_softmax", row=w.query, max=w.row_max, masked=masked_note(w))),
        softmax_table(report, w),
        Prose(_t("worked_weight", exp=w.exp, sum=w.sum_exp, weight=w.weight,
                cell=f"{w.recorded_weight:.2f}")),
        _explain(_t("worked_value", v=v_name, k_token=k_tok, q_token=q_tok, head=w.head, last=w.query)),
        numbers_table(w.dims, [(v_name, w.v, ""), (f"{w.recorded_weight:.4f}·{v_name}", w.weighted_v, "yellow")]),
        _explain(_t("worked_pulls", q_token=q_tok, last=w.query)),
        pull_table(report, w),
    ]
    return Group(*parts)


class PullTable:
    """weight × v for every key the query reads (the heaviest, past MAX_SOFTMAX_ROWS), summing to mix.

    A renderable, so each weight is coloured as the heatmap colours it on this console.
    """

    def __init__(self, report: AttentionReport, w: WorkedCell):
        self.report, self.w = report, w

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        w = self.w
        shown = w.pulls
        if len(shown) > MAX_SOFTMAX_ROWS:
            heaviest = sorted(shown, key=lambda p: -p.weight)[: MAX_SOFTMAX_ROWS - 1]
            keep = {p.key for p in heaviest} | {w.key}
            shown = [p for p in w.pulls if p.key in keep]
        # As many dims as fit beside the key, its token and its weight (8 columns each with the gap).
        n_dims = max(1, min(len(w.dims), (options.max_width - 26) // 9))
        dims = range(n_dims)
        table = Table(box=None, show_edge=False, pad_edge=False, header_style="grey50", padding=(0, 1))
        table.add_column(_t("col_key"), justify="right", no_wrap=True)
        table.add_column("", no_wrap=True, overflow="ellipsis", max_width=8)
        table.add_column(_t("col_weight"), justify="right", no_wrap=True)
        for i in dims:
            table.add_column(str(w.dims[i]), justify="right", no_wrap=True)
        for p in shown:
            table.add_row(str(p.key), Text(quoted(self.report.tokens[p.key]), style="cyan"),
                          Text(f"{p.weight:.4f}", style=cell_style(p.weight, console.color_system)),
                          *(f"{p.weighted_v[i]:.4f}" for i in dims), style="bold" if p.key == w.key else "")
        rest = [p for p in w.pulls if p not in shown]
        if rest:
            table.add_row("…", Text(_t("worked_other_keys", n=len(rest)), style="grey70"),
                          f"{sum(p.weight for p in rest):.4f}",
                          *(f"{sum(p.weighted_v[i] for p in rest):.4f}" for i in dims))
        table.add_row("Σ", Text(f"mix{subscript(w.query)}", style="yellow"), "", *(f"{w.mix[i]:.4f}" for i in dims),
                      style="yellow")
        yield table


def pull_table(report: AttentionReport, w: WorkedCell) -> PullTable:
    return PullTable(report, w)


def masked_note(w: WorkedCell) -> str:
    if not w.masked_keys:
        return _t("worked_no_masked")
    return _t("worked_masked", keys=spans(w.masked_keys, _t("list_sep")))


def softmax_rows(w: WorkedCell) -> tuple[list[SoftmaxTerm], int]:
    """The keys to list: all of a short row; of a long one the worked key and the heaviest, in order."""
    row = w.row
    if len(row) <= MAX_SOFTMAX_ROWS:
        return row, 0
    heaviest = sorted(row, key=lambda r: -r.weight)[: MAX_SOFTMAX_ROWS - 1]
    keep = {r.key for r in heaviest} | {w.key}
    return [r for r in row if r.key in keep], len(row) - len(keep)


def softmax_table(report: AttentionReport, w: WorkedCell) -> Group:
    shown, n_hidden = softmax_rows(w)
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="grey50", padding=(0, 1))
    table.add_column(_t("col_key"), justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, overflow="ellipsis", max_width=LABEL_CELLS + 2)
    for name in ("col_score", "col_minus_max", "col_exp", "col_weight"):
        table.add_column(_t(name), justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for r in shown:
        style = "bold" if r.key == w.key else ""
        table.add_row(str(r.key), Text(quoted(report.tokens[r.key]), style="cyan"),
                      f"{r.score:.4f}", f"{r.score - w.row_max:.4f}", f"{r.exp:.4f}",
                      Text(f"{r.weight:.4f}", style=weight_style(r.weight)),
                      Text(bar(r.weight, SOFTMAX_BAR_CELLS), style=weight_style(r.weight)),
                      style=style)
    parts = [table]
    if n_hidden:
        rest = sum(r.exp for r in w.row) - sum(r.exp for r in shown)
        parts.append(_explain(_t("worked_hidden_keys", n=n_hidden, rest=rest)))
    return Group(*parts)


SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def subscript(n: int) -> str:
    return str(n).translate(SUBSCRIPTS)


# --- the whole view --------------------------------------------------------------------------------


def render(report: AttentionReport, scores: bool = False, default_prompt: bool = False) -> Group:
    """The view of an attention report: a heatmap per chosen head, or a table per layer for all heads."""
    prompt = quoted(cut(visible(report.prompt), TITLE_PROMPT_CELLS))
    n = len(report.tokens)
    title = Prose(_t("title_one" if n == 1 else "title", model=report.model["name"], prompt=prompt, n=n),
                 style="bold underline")
    parts = [title]
    if default_prompt:
        parts.append(_explain(_t("default_prompt")))
    if report.single is not None:
        parts += [Text(), head_view(report, report.single, scores)]
        return Group(*parts)
    for layer in report.layers:
        parts.append(Text())
        if report.overview:
            parts.append(overview(report, layer))
            continue
        parts += [HeadGrid(report, layer.heads, scores), Text()]
    if report.overview:
        parts += [Text(), _explain(_t("overview_how")), _explain(_t("overview_more", heads="tracegpt heads"))]
    return Group(*parts)
