"""`tracegpt explain`: a numbered heading per step, its paragraph, then the numbers that back it."""

from __future__ import annotations

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ..analysis.walk import NarratedStep, Narration
from .common import bar, other_tokens, paragraph, quoted, weight_style

INDENT = 4  # paragraphs and numbers sit under their heading's text, past the step number ("10. ")
GUIDE = "grey50"
CANDIDATE_NAMES = {f"top{rank}_{what}" for rank in range(1, 11) for what in ("prob", "logit")}


def value_text(value, name: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if name.startswith("n_") else str(value)  # counts grouped as the texts write them


def numbers_table(step: NarratedStep) -> Table:
    """Each number that comes off the trace: its value, and the expression that finds it there."""
    table = Table(box=None, show_header=False, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(justify="right", no_wrap=True, style="bold cyan")
    table.add_column(style=GUIDE, overflow="fold")
    seen = set()
    for name, source in step.sources.items():
        # The same number may be cited under two names ("sharp_weight" and "head_0_weight"); the
        # candidates are in their own table.
        if source in seen or name in CANDIDATE_NAMES:
            continue
        seen.add(source)
        table.add_row(value_text(step.numbers[name], name), source)
    return table


def candidates_table(step: NarratedStep) -> Group:
    """The next-token step's top candidates, most likely first, each with where its probability comes from."""
    table = Table(box=None, show_header=False, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(justify="right", style=GUIDE, no_wrap=True)
    table.add_column(style="cyan", no_wrap=True, max_width=14)
    table.add_column(justify="right", no_wrap=True, style="bold cyan")
    table.add_column(no_wrap=True)
    table.add_column(style=GUIDE, overflow="fold")
    best = step.candidates[0].prob or 1.0
    for rank, guess in enumerate(step.candidates, 1):
        p = guess.prob
        table.add_row(f"#{rank}", quoted(guess.text), value_text(p), Text(bar(p / best, 10), style=weight_style(p)),
                      step.sources[f"top{rank}_prob"])
    return Group(table, Text(" " * 6 + other_tokens(step.rest), style=GUIDE))


def step_view(number: int, step: NarratedStep, width: int) -> Group:
    # expand=False: padding to the full width would end every line in spaces.
    parts = [Text(f"{number:>2}. {step.title}", style="bold bright_magenta"),
             Padding(paragraph(step.text, width - INDENT), (0, 0, 0, INDENT), expand=False)]
    if step.candidates:
        parts.append(Padding(candidates_table(step), (1, 0, 0, INDENT), expand=False))
    if step.sources:
        parts.append(Padding(numbers_table(step), (1, 0, 0, INDENT), expand=False))
    return Group(*parts, Text())


def render(narration: Narration, width: int) -> Group:
    parts = [paragraph(narration.title, width, "bold underline"),
             paragraph(narration.intro, width, "italic grey70"), Text()]
    parts += [step_view(i, step, width) for i, step in enumerate(narration.steps, 1)]
    return Group(*parts)
