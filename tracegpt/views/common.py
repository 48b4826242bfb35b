"""What every view shares: how a token is written, bars, percentages, the consoles."""

from __future__ import annotations

import codecs
import errno
import html
import os
import re
import sys

from rich._export_format import CONSOLE_HTML_FORMAT, CONSOLE_SVG_FORMAT
from rich.cells import cell_len, chop_cells
from rich.console import Console
from rich.containers import Lines
from rich.measure import Measurement
from rich.text import Text

from ..texts import quoted, visible  # noqa: F401 - how every view writes a token
from .palette import DARK, theme_for, weight_style  # noqa: F401 - the scale every view colours weights with

# --- output that cannot hold Unicode (PYTHONIOENCODING=latin-1, an ASCII terminal) ---

ASCII_GLYPHS = "tracegpt-ascii"
_ASCII = {"␣": "_", "↵": "\\n", "⇥": "\\t", "␍": "\\r", "→": "->", "←": "<-", "↓": "v", "↑": "^", "‖": "|",
          "·": ".", "×": "x", "√": "sqrt", "…": "...", "▸": ">", "■": "#", "≥": ">=", "≤": "<=", "—": "-", "–": "-",
          "−": "-", "ᵀ": "^T", "“": '"', "”": '"', "‘": "'", "’": "'", "Σ": "sum", "∞": "inf", "≈": "~",
          "░": ".", "▒": ":", "▓": "%", "⟦": "[[", "⟧": "]]", **{c: "#" for c in "█▏▎▍▌▋▊▉"},
          **{chr(0x2080 + i): str(i) for i in range(10)}}


def _ascii_glyphs(error: UnicodeError):
    """A codecs error handler: the views' glyphs as ASCII look-alikes, anything else as '?'."""
    bad = error.object[error.start:error.end]
    return "".join(_ASCII.get(ch, "?") for ch in bad), error.end


codecs.register_error(ASCII_GLYPHS, _ascii_glyphs)


def writes_unicode(stream) -> bool:
    try:
        "␣█→".encode(getattr(stream, "encoding", None) or "ascii")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


class Title:
    """A title on one line: `make(cells)` writes it with the prompt shortened to `cells`, and the longest
    version that fits the width is drawn. A prompt of up to SHORT cells is never cut (a title that wraps
    reads better than a few words with a hole in them), nor is one when no cut would save the line:
    then the longest version is drawn, wrapped."""

    CELLS = (48, 40, 32, 24, 16)
    SHORT = 40

    def __init__(self, make, style: str = "bold underline"):
        self.make, self.style = make, style

    def __rich_console__(self, console, options):
        versions = [self.make(cells) for cells in self.CELLS]
        short = versions[self.CELLS.index(self.SHORT)] == versions[0]
        fits = [text for text in versions if cell_len(text) <= options.max_width]
        yield Prose(fits[0] if fits and not short else versions[0], style=self.style)


def other_tokens(rest, short: bool = False) -> str:
    """The candidates a list leaves out, so its probabilities add up: "other 4,086 tokens: 29%"."""
    from ..texts import say

    key = "others_short" if short else "other_tokens"
    return say("common", key, n=rest.n, n_text=f"{rest.n:,}", pct=pct(rest.prob))


def pct(p: float) -> str:
    p *= 100
    return f"{p:.0f}%" if p >= 9.95 else f"{p:.1f}%"


def bar(fraction: float, width: int = 20) -> str:
    """A horizontal bar in eighths of a character."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")


TRAILING = re.compile(r" +(?=\n)")


class _Console(Console):
    def _render_buffer(self, buffer) -> str:
        # Tables pad every cell to its column's width: in a file or a pipe the spaces at the ends
        # of lines are noise (diffs, `wc -L`), so they go when there are no colours to carry.
        text = super()._render_buffer(buffer)
        return text if self.is_terminal or self.color_system else TRAILING.sub("", text)

    def on_broken_pipe(self) -> None:
        # rich exits 1 here; a reader that stops early (`| head`) is not a failure. The CLI
        # turns this error into a quiet exit 0.
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "broken pipe")


MIN_WIDTH = 40  # the narrowest the views are drawn at (--width below it is refused)


def make_console(width: int | None = None, color: bool = True, record: bool = False) -> Console:
    if width is None and not _usable_columns(os.environ.get("COLUMNS")):
        width = _terminal_width()  # COLUMNS=0, 12 or junk: the terminal's own width, or 80
    # None lets rich read NO_COLOR from the environment; --no-color forces it.
    console = _Console(width=width, no_color=None if color else True, record=record, file=sys.stdout,
                       highlight=False, soft_wrap=False)
    console.push_theme(theme_for(console.color_system))  # the named styles, as this terminal can draw them
    return console


def _terminal_width() -> int:
    try:
        return max(MIN_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return 80


def _usable_columns(columns: str | None) -> bool:
    return columns is None or (columns.strip().isdigit() and int(columns) >= MIN_WIDTH)


def flow(pieces: list[Text], width: int) -> list[Text]:
    """Pieces joined by spaces, a new line wherever the next would not fit."""
    lines = [Text()]
    for piece in pieces:
        line = lines[-1]
        if line.cell_len and line.cell_len + 1 + piece.cell_len > width:
            line = Text()
            lines.append(line)
        if line.cell_len:
            line.append(" ")
        line.append_text(piece)
    return lines


# --- lines that break inside Chinese, cells that count wide characters as two ---

# Chinese has no spaces between words, and rich breaks lines only at spaces: a sentence would
# jump whole to the next line. So lines may break between any two CJK characters, but never
# before closing punctuation (，。）) nor after opening punctuation (（“), as Chinese typesetting wants.
CJK = "\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
OPEN = "（《「『“‘"
CLOSE = "，。：；、）》」』！？”’…"
UNIT = re.compile(rf"[{OPEN}]*(?:[{CJK}]|[^\s{CJK}]+)[{CLOSE}]*\s*|\s+")


def break_offsets(text: str, width: int) -> list[int]:
    """Where one line of text breaks to fit `width` cells: at spaces, between CJK characters, inside a longer word."""
    offsets, used = [], 0
    for m in UNIT.finditer(text):
        unit, start = m.group(), m.start()
        cells = cell_len(unit.rstrip())
        if used and used + cells > width:
            offsets.append(start)
            used = 0
        if cells > width:  # a word longer than a line is folded, as rich does
            pieces = chop_cells(unit.rstrip(), width)
            for piece in pieces[:-1]:
                start += len(piece)
                offsets.append(start)
            used = cell_len(pieces[-1]) + len(unit) - len(unit.rstrip())
        else:
            used += cell_len(unit)
    return [o for o in offsets if 0 < o < len(text.rstrip())]


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` cells, broken at spaces or between CJK characters."""
    lines = []
    for line in text.split("\n"):
        ends = [0, *break_offsets(line, width), len(line)]
        lines += [line[a:b].strip() for a, b in zip(ends, ends[1:])]
    return lines


def paragraph(text: str, width: int, style: str = "") -> Text:
    """A sentence wrapped to `width` now, between words or between any two CJK characters."""
    return Text("\n".join(wrap(text, width)), style=style, overflow="fold")


class Prose(Text):
    """Text that also breaks between Chinese characters when it wraps (a rich Text breaks only at spaces)."""

    def wrap(self, console, width: int, *, justify=None, overflow=None, tab_size: int = 8, no_wrap=None) -> Lines:
        if no_wrap or self.no_wrap:
            return super().wrap(console, width, justify=justify, overflow=overflow, tab_size=tab_size,
                                no_wrap=no_wrap)
        lines = Lines()
        for line in self.split(allow_blank=True):
            for part in line.divide(break_offsets(line.plain, width)):
                part.rstrip()
                lines.append(part)
        return lines

    def __rich_measure__(self, console, options) -> Measurement:
        widest = max((cell_len(line) for line in self.plain.splitlines()), default=0)
        units = [cell_len(u.strip()) for u in UNIT.findall(self.plain)]
        return Measurement(max(units, default=widest), widest)

    def __rich__(self) -> _Drawn:
        # Console.print joins the Text objects it is given into one plain Text, which would wrap
        # at spaces only; drawn through this, a Prose printed on its own keeps its line breaks.
        return _Drawn(self)


class _Drawn:
    def __init__(self, prose: Prose):
        self.prose = prose

    def __rich_console__(self, console, options):
        return Text.__rich_console__(self.prose, console, options)

    def __rich_measure__(self, console, options) -> Measurement:
        return self.prose.__rich_measure__(console, options)


def pad(text: str, cells: int, right: bool = False) -> str:
    """`text` padded with spaces to `cells` terminal cells (str.ljust counts a Chinese character as one)."""
    spaces = " " * max(0, cells - cell_len(text))
    return spaces + text if right else text + spaces


def cut(text: str, cells: int) -> str:
    """Cut to `cells` terminal cells with …, counting wide characters as two."""
    if cell_len(text) <= cells:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


# --- SVG and HTML that show Chinese as the terminal did ---

# A terminal gives a Chinese character two cells and every other character one. In the picture a
# cell is SVG_CELL pixels: the Latin monospace fonts come first (their characters are 0.6 em wide,
# one cell at rich's 20 px), and each run of wide characters is set at two cells to the em, in a
# font with CJK glyphs, or the picture would show boxes. So the cells line up even in viewers
# that ignore textLength (librsvg); the others fit each run to its textLength, counted in cells.
CJK_FONTS = "'Noto Sans Mono CJK SC', 'Noto Sans CJK SC', 'Source Han Sans SC', 'Microsoft YaHei', 'PingFang SC'"
SVG_ASPECT = 0.6  # a cell's width over rich's 20 px character height
SVG_CELL = 20 * SVG_ASPECT
_SVG_FORMAT = (CONSOLE_SVG_FORMAT
               .replace("font-family: Fira Code, monospace",
                        f"font-family: Fira Code, 'DejaVu Sans Mono', Menlo, Consolas, {CJK_FONTS}, monospace")
               .replace("font-family: arial;", f"font-family: arial, {CJK_FONTS};")
               .replace("font-variant-east-asian: full-width;", "font-variant-east-asian: normal;"))
# rich's template fetches Fira Code from the web; a tracegpt picture uses the fonts the viewer has.
_SVG_FORMAT = re.sub(r"\s*@font-face \{\{.*?\}\}", "", _SVG_FORMAT, flags=re.S)
_HTML_FORMAT = CONSOLE_HTML_FORMAT.replace("'Courier New',monospace", f"'Courier New',{CJK_FONTS},monospace")
_SVG_TEXT = re.compile(r'(<text [^>]*?textLength=")([0-9.]+)("[^>]*>)(.*?)(</text>)')


def _svg_escape(text: str) -> str:
    return html.escape(text).replace(" ", "&#160;")  # as rich writes a run


def _wide_text(m: re.Match) -> str:
    text = html.unescape(m.group(4))
    if cell_len(text) == len(text):
        return m.group(0)
    runs, run, wide = [], "", False
    for ch in text:
        if run and (cell_len(ch) == 2) != wide:
            runs.append((run, wide))
            run = ""
        wide = cell_len(ch) == 2
        run += ch
    runs.append((run, wide))
    content = "".join(f'<tspan style="font-size: {2 * SVG_CELL:g}px">{_svg_escape(r)}</tspan>' if w else _svg_escape(r)
                      for r, w in runs)
    return f"{m.group(1)}{SVG_CELL * cell_len(text):g}{m.group(3)}{content}{m.group(5)}"


def export_svg(console: Console, title: str) -> str:
    """The recorded view as SVG, in the dark theme the colours are chosen for, Chinese in CJK fonts,
    every character as wide as its cells."""
    svg = console.export_svg(title=title, clear=False, theme=DARK, code_format=_SVG_FORMAT,
                             font_aspect_ratio=SVG_ASPECT)
    # Rich writes spaces as &#160;; without xml:space="preserve" librsvg drops those that open a run
    # (the gap before a grey stage name) and right-aligned numbers drift left. Browsers draw it the
    # same either way.
    svg = svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    return _SVG_TEXT.sub(_wide_text, svg)


def export_html(console: Console) -> str:
    """The recorded view as HTML, in the dark theme, with fonts that have CJK glyphs among its monospace fonts."""
    return console.export_html(clear=False, theme=DARK, code_format=_HTML_FORMAT)
