"""What every view shares: how a token is written, bars, percentages, the consoles."""

from __future__ import annotations

import errno
import sys

from rich.console import Console

from ..texts import quoted, visible  # noqa: F401 - how every view writes a token


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


def make_console(width: int | None = None, color: bool = True, record: bool = False) -> Console:
    # None lets rich read NO_COLOR from the environment; --no-color forces it.
    return _Console(width=width, no_color=None if color else True, record=record, file=sys.stdout,
                    highlight=False, soft_wrap=False)
