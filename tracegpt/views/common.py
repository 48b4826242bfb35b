"""What every view shares: how a token is written, bars, percentages, the consoles."""

from __future__ import annotations

import codecs
import errno
import os
import re
import sys

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from ..texts import quoted, visible  # noqa: F401 - how every view writes a token
from .palette import theme_for, weight_style  # noqa: F401 - the scale every view colours weights with

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
    version that fits the width is drawn (the shortest, wrapped, if none does)."""

    def __init__(self, make, style: str = "bold underline"):
        self.make, self.style = make, style

    def __rich_console__(self, console, options):
        for cells in (48, 40, 32, 24, 16):
            text = self.make(cells)
            if cell_len(text) <= options.max_width:
                break
        yield Text(text, style=self.style)


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
