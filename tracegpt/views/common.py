"""What every view shares: how a token is written, bars, percentages, the consoles."""

from __future__ import annotations

import codecs
import errno
import os
import sys

from rich.console import Console

from ..texts import quoted, visible  # noqa: F401 - how every view writes a token

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


def pct(p: float) -> str:
    p *= 100
    return f"{p:.0f}%" if p >= 9.95 else f"{p:.1f}%"


def bar(fraction: float, width: int = 20) -> str:
    """A horizontal bar in eighths of a character."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")


def weight_style(w: float) -> str:
    """Stronger attention or probability reads brighter."""
    if w >= 0.5:
        return "bold bright_yellow"
    if w >= 0.2:
        return "yellow"
    if w >= 0.05:
        return "dark_orange3"
    return "grey50"


class _Console(Console):
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
    return _Console(width=width, no_color=None if color else True, record=record, file=sys.stdout,
                    highlight=False, soft_wrap=False)


def _terminal_width() -> int:
    try:
        return max(MIN_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return 80


def _usable_columns(columns: str | None) -> bool:
    return columns is None or (columns.strip().isdigit() and int(columns) >= MIN_WIDTH)
