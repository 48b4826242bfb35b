"""`tracegpt neuron`: what one FFN neuron writes, where it fires in a corpus, what it does on a prompt."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..analysis.neurons import Distribution, NeuronReport, OnPrompt, ShownContext, Standing
from ..texts import say
from .common import bar, paragraph, pct, quoted, visible
from .palette import plain as sixteen_colours

GUIDE = "grey50"
PROMPT_ROWS = 24  # a longer prompt's table shows only its highest positions
PROMPT_TOP = 12

# The tint of a token, by its activation as a share of a maximum: none at or below 0, then four
# steps. Truecolor and 256-colour terminals get a black-body ramp (dark red, orange, gold, pale
# yellow); 16-colour ones red, yellow, white, bright white, whose order in brightness holds in the
# common palettes (xterm's, rich's, its SVG export's, Monokai's), where bright_yellow does not.
STEPS = (0.25, 0.5, 0.75)
TINTS = {
    "full": ("grey93 on dark_red", "black on dark_orange3", "black on gold1", "black on wheat1"),
    "standard": ("bright_white on red", "black on yellow", "black on white", "black on bright_white"),
}
FIRING = ("⟦", "⟧")


def _t(key: str, lang: str | None = None, **values) -> str:
    return say("neuron", key, lang, **values)


def _explain(text: str, width: int) -> Text:
    return paragraph(text, width, "italic grey70")


def r2(x: float) -> float:
    """Rounded as printed, without a minus on a zero (-0.001 prints as 0.00)."""
    return round(x, 2) + 0.0


def palette(color_system: str | None) -> tuple[str, ...]:
    return TINTS["standard"] if sixteen_colours(color_system) else TINTS["full"]


def level(value: float, top: float) -> int:
    """0 at or below 0 (or with nothing to compare to), else 1..4 by the share of `top`."""
    if value <= 0 or top <= 0:
        return 0
    return 1 + sum(value / top >= s for s in STEPS)


def tint(value: float, top: float, tints: tuple[str, ...]) -> str:
    step = level(value, top)
    return tints[step - 1] if step else ""


def plain(text: str) -> str:
    """A token inside running text: spaces as spaces, newlines and the invisible made visible."""
    return "".join(" " if ch == " " else visible(ch) for ch in text)


# --- what it writes ----------------------------------------------------------------------------

def writes_table(report: NeuronReport, lang: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column(_t("col_up", lang), style="green")
    table.add_column(_t("col_value", lang), justify="right")
    table.add_column(_t("col_down", lang), style="bright_red")
    table.add_column(_t("col_value", lang), justify="right")
    for up, down in zip(report.writes.up, report.writes.down):
        table.add_row(quoted(up.text), f"{up.value:+.3f}", quoted(down.text), f"{down.value:+.3f}")
    return table


# --- where it fires ----------------------------------------------------------------------------

def context_line(c: ShownContext, top: float, tints: tuple[str, ...], room: int) -> Text:
    """The context on one line of at most `room` cells: the firing token in ⟦ ⟧, cut on the left if need be."""
    pieces = []
    for i, (token, value) in enumerate(zip(c.tokens, c.values)):
        style = tint(value, top, tints)
        if i == c.firing:
            piece = Text(FIRING[0]).append(visible(token), style=f"bold {style}".strip()).append(FIRING[1])
        else:
            piece = Text(plain(token), style=style)
        pieces.append(piece)
    shown = [pieces[c.firing]]
    used = shown[0].cell_len
    for piece in pieces[c.firing + 1:]:  # what follows, as far as it fits beside a "…"
        if used + piece.cell_len > room - (1 if c.firing else 0):
            break
        shown.append(piece)
        used += piece.cell_len
    start = c.firing
    while start > 0:  # what comes before, leaving a cell for "…" unless the line reaches the context's start
        if used + pieces[start - 1].cell_len > (room if start == 1 else room - 1):
            break
        start -= 1
        used += pieces[start].cell_len
    line = Text("…", style=GUIDE) if start > 0 else Text()
    for piece in pieces[start:c.firing] + shown:
        line.append_text(piece)
    return line


def contexts_table(report: NeuronReport, tints: tuple[str, ...], width: int, lang: str) -> Table:
    top = report.distribution.maximum
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column(_t("col_rank", lang), justify="right")
    table.add_column(_t("col_act", lang), justify="right")
    table.add_column(_t("col_context", lang), no_wrap=True, overflow="crop")
    numbers = max(len(f"{c.activation:.2f}") for c in report.contexts)
    room = max(10, width - len(str(len(report.contexts))) - max(numbers, 3) - 4)
    for rank, c in enumerate(report.contexts, 1):
        table.add_row(str(rank), f"{c.activation:.2f}", context_line(c, top, tints, room))
    return table


def legend(top: float, tints: tuple[str, ...], of: str, lang: str) -> Text:
    """The tints and the activations where each begins: none at or below 0, then >0 and each step's share of top."""
    line = Text(_t("legend", lang), style="grey70")
    line.append("  ≤0 ")
    for lower, tinted in zip((None, *STEPS), tints):
        line.append(" ")
        line.append(" >0 " if lower is None else f" {r2(lower * top):.2f} ", style=tinted)
    line.append(" " + of, style="grey70")
    return line


def distribution_line(d: Distribution, width: int, lang: str) -> Text:
    if d.maximum <= 0:
        return _explain(_t("never_fires", lang, max=r2(d.maximum)), width)
    q = {level: r2(value) for level, value in d.quantiles}
    return paragraph(_t("distribution", lang, mean=r2(d.mean), active=pct(d.frac_active), p50=q[0.5], p90=q[0.9],
                    p99=q[0.99], p999=q[0.999], max=r2(d.maximum)), width)


def corpus_words(corpus: dict, model: str, lang: str | None = None) -> str:
    """What an index scanned, in words: the model's training text, or a text file."""
    if corpus.get("kind") == "training":
        return _t("corpus_training", lang, model=model, works=corpus.get("works", "?"))
    return _t("corpus_text", lang, file=corpus.get("file", "?"))


# --- on the prompt -----------------------------------------------------------------------------

def _level_text(level: float) -> str:
    return f"{level * 100:g}"


def standing_line(p: OnPrompt, d: Distribution | None, width: int, lang: str) -> Text:
    def say_(key: str, **values) -> Text:
        return paragraph(_t(key, lang, value=r2(p.values[p.top]), token=f"{quoted(p.tokens[p.top])}@{p.top}", **values),
                     width)

    s: Standing | None = p.standing
    if p.values[p.top] <= 0:
        return say_("prompt_silent")
    if s is None or d is None:
        return say_("prompt_highest")
    if s.beyond_max:
        return say_("standing_beyond", max=r2(d.maximum))
    if s.over is None:
        return say_("standing_bottom", under=_level_text(s.under[0]), under_value=r2(s.under[1]))
    if s.under is None:
        return say_("standing_top", over=_level_text(s.over[0]), over_value=r2(s.over[1]), max=r2(d.maximum))
    return say_("standing_between", over=_level_text(s.over[0]), over_value=r2(s.over[1]),
                under=_level_text(s.under[0]), under_value=r2(s.under[1]))


def prompt_text(p: OnPrompt, top: float, tints: tuple[str, ...]) -> Text:
    line = Text()
    for token, value in zip(p.tokens, p.values):
        line.append(plain(token), style=tint(value, top, tints))
    return line


def prompt_table(p: OnPrompt, top: float, tints: tuple[str, ...], lang: str) -> Table:
    rows = range(len(p.values))
    if len(p.values) > PROMPT_ROWS:
        rows = sorted(sorted(rows, key=lambda i: (-p.values[i], i))[:PROMPT_TOP])
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column(_t("col_pos", lang), justify="right")
    table.add_column(_t("col_token", lang), style="cyan")
    table.add_column(_t("col_activation", lang), justify="right")
    table.add_column("", no_wrap=True)
    for i in rows:
        value = p.values[i]
        table.add_row(str(i), quoted(p.tokens[i]), Text(f"{r2(value):.2f}", style=tint(value, top, tints)),
                      Text(bar(value / top if top > 0 else 0, 16), style="orange1"))
    return table


# --- the whole view ----------------------------------------------------------------------------

def render(report: NeuronReport, width: int, color_system: str | None = "truecolor", lang: str | None = None) -> Group:
    n = report.neuron
    tints = palette(color_system)

    def explain(key: str, **values) -> Text:
        return _explain(_t(key, lang, **values), width)

    def heading(key: str, **values) -> Text:
        return paragraph(_t(key, lang, **values), width, "bold bright_magenta")

    title = Text(_t("title", lang, neuron=n.text, model=report.model["name"]), style="bold underline")
    title.append("  " + report.site, style=GUIDE)
    parts = [title, explain("intro", layer=n.layer, d_mlp=report.d_mlp, index=n.index), Text()]

    parts += [heading("writes_title"), explain("writes_intro", norm=r2(report.writes.norm)),
              writes_table(report, lang), explain("direct_only"), Text()]

    d = report.distribution
    if report.contexts is not None:
        corpus = corpus_words(report.index.corpus, report.model["name"], lang)
        parts += [heading("fires_title"),
                  explain("fires_intro", n=len(report.contexts), corpus=corpus, tokens=report.index.n_tokens,
                          context=report.index.window - 1),
                  contexts_table(report, tints, width, lang),
                  legend(d.maximum, tints, _t("legend_of_corpus", lang, max=r2(d.maximum)), lang),
                  distribution_line(d, width, lang)]
    else:
        command = f"tracegpt neuron --build-index --model {report.model['name']} --text FILE --out FILE"
        parts.append(explain("no_index", model=report.model["name"], command=command))

    p = report.prompt
    if p is not None:
        top = d.maximum if d is not None else max(p.values)
        parts += [Text(), heading("prompt_title", prompt=quoted(p.prompt))]
        if len(p.values) > PROMPT_ROWS:
            parts.append(explain("prompt_some", shown=PROMPT_TOP, n=len(p.values)))
        else:
            parts.append(explain("prompt_intro", n=len(p.values)))
        parts += [prompt_text(p, top, tints), prompt_table(p, top, tints, lang)]
        if d is None and top > 0:
            parts.append(legend(top, tints, _t("legend_of_prompt", lang, max=r2(top)), lang))
        parts.append(standing_line(p, d, width, lang))
    return Group(*parts)


# --- building an index -------------------------------------------------------------------------

def corpus_label(corpus: dict, model: str, lang: str | None = None) -> str:
    return _t("build_scanning", lang, corpus=corpus_words(corpus, model, lang))


def size_text(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.0f} kB"


def built_line(summary: dict, lang: str | None = None) -> Text:
    """What --build-index wrote, from its JSON summary."""
    return Text(_t("built", lang, path=summary["path"], top=summary["top"], neurons=summary["neurons"],
                   n_layer=summary["n_layer"], d_mlp=summary["d_mlp"], tokens=summary["tokens"],
                   corpus=corpus_words(summary["corpus"], summary["model"], lang), seconds=summary["seconds"],
                   size=size_text(summary["bytes"])))


@contextmanager
def build_progress(total: int, label: str, show: bool) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on standard error while a corpus is scanned; nothing when not shown."""
    if not show:
        yield lambda done: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)
