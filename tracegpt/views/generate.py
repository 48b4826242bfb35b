"""`tracegpt generate`: the header, one step row at a time, the sampling pipeline, the tinted text.

The step table is printed row by row as the tokens come, so every row is its own rich Table
with the same fixed column widths: they line up without a live display, which also keeps
the output readable when standard output is a file or a pipe.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..generation import Comparison, RunInfo, RunSummary, Step
from ..sampling import SamplingSettings
from ..texts import say
from .common import Prose, bar, pct, quoted, weight_style

WIDE = 110  # from this many columns the top-5 candidates fit on the step's own line
N_TOP = 5
TOKEN_WIDTH = 12
NARROW_WIDTH = 65  # the step table without the candidates column, padding included
CANDIDATES_WIDTH = 72


def _t(key: str, **values) -> str:
    return say("generate", key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def is_wide(width: int) -> bool:
    return width >= WIDE


def _number(x: float) -> str:
    return f"{x:g}"


def shorten(text: str, limit: int = 60) -> str:
    """A long prompt as its start and its end: the end is what the model continues."""
    if len(text) <= limit:
        return text
    return text[: limit - 21] + "…" + text[-20:]


# --- header ---


def header(run: RunInfo) -> Group:
    """Title and what the run does: the loop, the sampling settings, the cache, the columns."""
    s = run.settings
    title = Prose(_t("title", model=run.model["name"], prompt=quoted(shorten(run.prompt))), style="bold underline")
    lines = [title, _explain(_t("loop"))]
    if s.is_greedy:
        lines.append(_explain(_t("greedy")))
    else:
        lines.append(_explain(_t("sampling", temperature=_number(s.temperature), top_k=s.top_k or _t("off"),
                                 top_p=_t("off") if s.top_p >= 1 else _number(s.top_p), seed=run.seed)))
    if run.use_cache:
        lines.append(_explain(_t("cache_on", n=run.n_prompt_tokens)))
    else:
        lines.append(_explain(_t("cache_off")))
    attention = run.attention
    if attention is not None:
        if attention.head is None:
            lines.append(_explain(_t("looks_at_mean", layer=attention.layer, n_head=run.model["n_head"])))
        else:
            lines.append(_explain(_t("looks_at_head", layer=attention.layer, head=attention.head)))
    lines.append(_explain(_t("columns")))
    if run.interventions:
        from .intervene import changes_grid

        lines += [Prose(_t("edits"), style="bold"), changes_grid(run.interventions, run.model["n_layer"])]
    return Group(*lines, Text())


# --- the step table, one row at a time ---


def candidates_width(width: int) -> int:
    return min(CANDIDATES_WIDTH, width - NARROW_WIDTH)


def _step_table(width: int, show_header: bool) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, show_header=show_header, header_style="bold",
                  padding=(0, 1))
    table.add_column(_t("col_step"), justify="right", width=4, no_wrap=True)
    table.add_column(_t("col_token"), width=TOKEN_WIDTH, no_wrap=True, overflow="ellipsis")
    table.add_column(_t("col_prob"), justify="right", width=6, no_wrap=True)
    if is_wide(width):
        # Five candidates take ~65 columns; more would only push the other columns away.
        table.add_column(_t("col_top", n=N_TOP), width=candidates_width(width), no_wrap=True, overflow="ellipsis")
    table.add_column(_t("col_looks_at"), width=16, no_wrap=True, overflow="ellipsis")
    table.add_column(_t("col_ctx"), justify="right", width=4, no_wrap=True)
    table.add_column(_t("col_new"), justify="right", width=4, no_wrap=True)
    table.add_column(_t("col_cache"), justify="right", width=5, no_wrap=True)
    return table


def step_header(width: int) -> Table:
    return _step_table(width, show_header=True)


def candidates_line(step: Step, room: int | None = None) -> Text:
    """The top candidates of the distribution the draw used, the drawn one marked ▸.

    Within `room` columns, candidates are dropped from the least likely end rather than wrapped;
    the drawn token is always shown.
    """
    def piece(c_text: str, prob: float, chosen: bool) -> Text:
        out = Text(("▸" if chosen else "") + quoted(c_text), style="bold cyan underline" if chosen else "cyan")
        return out.append(" " + pct(prob), style=weight_style(prob))

    shown = [(c.text, c.prob, c.id == step.token_id) for c in step.sampled.top(N_TOP)]
    if not any(chosen for _, _, chosen in shown):
        shown.append((step.text, step.prob, True))
    pieces = [piece(*s) for s in shown]
    while room is not None and len(pieces) > 1 and sum(p.cell_len + 2 for p in pieces) - 2 > room:
        # Drop the least likely candidate that was not drawn.
        drop = max(i for i, (_, _, chosen) in enumerate(shown) if not chosen)
        del shown[drop], pieces[drop]
    line = Text("  ").join(pieces)
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def looks_at(step: Step) -> Text:
    a = step.attention
    if a is None:
        return Text("")
    return Text(f"{quoted(a.text)}@{a.position} {pct(a.weight)}", style=weight_style(a.weight))


def step_row(step: Step, width: int) -> RenderableType:
    """One step: on one line when the console is wide, else with the candidates on a second line."""
    wide = is_wide(width)
    table = _step_table(width, show_header=False)
    cells = [str(step.number), Text(quoted(step.text), style=f"bold {weight_style(step.prob)}"), pct(step.prob)]
    if wide:
        cells.append(candidates_line(step, room=candidates_width(width)))
    cells += [looks_at(step), str(step.position), str(step.n_computed),
              str(step.cache_length) if step.cache_length else _t("off")]
    table.add_row(*cells)
    if wide:
        return table
    candidates = candidates_line(step, room=width - 6)
    # Under the token column, with a leading ▸ hanging one column to the left.
    indent = Text(" " * (5 if candidates.plain.startswith("▸") else 6), no_wrap=True, overflow="ellipsis")
    return Group(table, indent.append_text(candidates))


# --- the sampling pipeline of one step ---


def pipeline(step: Step, settings: SamplingSettings) -> Group:
    """logit → /T → top-k cut → top-p cut → renormalised prob, for the step's leading candidates."""
    s = step.sampled
    token = quoted(step.text)
    title = Prose(_t("pipeline_title", step=step.number, token=token), style="bold")
    if s.greedy:
        return Group(title, _explain(_t("pipeline_greedy", n_vocab=s.n_vocab)), _greedy_table(step), Text())
    lines = [title, _explain(_t("pipeline_temperature", n_vocab=s.n_vocab, temperature=_number(settings.temperature)))]
    if settings.top_k is None:
        lines.append(_explain(_t("pipeline_no_top_k")))
    else:
        lines.append(_explain(_t("pipeline_top_k", top_k=settings.top_k, n=s.n_top_k)))
    if settings.top_p >= 1:
        lines.append(_explain(_t("pipeline_no_top_p", n=s.n_top_k)))
    else:
        lines.append(_explain(_t("pipeline_top_p", top_p=_number(settings.top_p), pct=pct(settings.top_p),
                                 n=s.n_top_p, mass=f"{s.mass_top_p * 100:.1f}%")))
    chosen = s.chosen
    lines.append(_explain(_t("pipeline_draw", n=s.n_top_p, u=s.draw, token=token, start=chosen.cum_start,
                             end=chosen.cum_start + chosen.prob, pct=pct(s.prob))))
    return Group(*lines, _sampling_table(step), Text())


def _pipeline_table() -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column(_t("col_rank"), justify="right")
    table.add_column(_t("col_token"), no_wrap=True, max_width=TOKEN_WIDTH, overflow="ellipsis")
    table.add_column(_t("col_logit"), justify="right")
    return table


def _token_cell(text: str, chosen: bool) -> Text:
    # A styled span, not a styled Text: the cell's padding must not be underlined.
    return Text().append(quoted(text), style="bold cyan underline" if chosen else "cyan")


def _cut(kept: bool, reached: bool = True) -> Text:
    if not reached:
        return Text("·", style="grey50")
    return Text(_t("kept"), style="green") if kept else Text(_t("cut"), style="red")


def _sampling_table(step: Step) -> Table:
    table = _pipeline_table()
    for key in ("col_scaled", "col_p_t", "col_top_k", "col_top_p", "col_prob", "col_slice"):
        table.add_column(_t(key), justify="center" if key in ("col_top_k", "col_top_p") else "right", no_wrap=True)
    previous_rank = -1
    for c in step.sampled.candidates:
        rank = c.rank
        if rank != previous_rank + 1:
            table.add_row("…", "", "", "", "", "", "", "", "")
        chosen = c.id == step.token_id
        slice_text = f"{c.cum_start:.3f}–{c.cum_start + c.prob:.3f}" if c.prob > 0 else ""
        table.add_row(
            f"{'▸' if chosen else ''}{rank + 1}",
            _token_cell(c.text, chosen),
            f"{c.logit:.2f}", f"{c.scaled:.2f}", pct(c.p_temperature), _cut(c.in_top_k),
            _cut(c.in_top_p, reached=c.in_top_k), Text(pct(c.prob) if c.prob > 0 else "0", style=weight_style(c.prob)),
            slice_text)
        previous_rank = rank
    return table


def _greedy_table(step: Step) -> Table:
    table = _pipeline_table()
    table.add_column(_t("col_prob"), justify="right")
    table.add_column("", no_wrap=True)
    best = step.sampled.candidates[0].prob or 1.0
    for c in step.sampled.candidates:
        rank = c.rank
        chosen = c.id == step.token_id
        table.add_row(f"{'▸' if chosen else ''}{rank + 1}",
                      _token_cell(c.text, chosen),
                      f"{c.logit:.2f}", pct(c.prob), Text(bar(c.prob / best, 20), style=weight_style(c.prob)))
    return table


def pipeline_missing(step: int, n_steps: int) -> Text:
    return _explain(_t("pipeline_missing", step=step, n=n_steps))


# --- the text and the summary ---


def tinted_text(prompt: str, steps: list[Step], end_of_text: int | None = None) -> Group:
    """The prompt as given, then each generated token tinted by the probability it was drawn with."""
    text = Prose(prompt, style="bold")
    for step in steps:
        if step.token_id == end_of_text:
            text.append(step.text, style="grey50 italic")
        else:
            # A generated line break is marked, or a run of them would be invisible blank lines.
            text.append(step.text.replace("\n", "↵\n"), style=weight_style(step.prob))
    legend = Text()
    for low, label in ((0.5, "≥50%"), (0.2, "≥20%"), (0.05, "≥5%"), (0.0, "<5%")):
        legend.append(f"■ {label}  ", style=weight_style(low))
    return Group(_explain(_t("text_title")), legend, text, Text())


def comparison(c: Comparison) -> Group:
    """The plain run's text beside the edited one, and the step where they part."""
    if c.step is None:
        verdict = _t("compare_same")
    else:
        verdict = _t("compare_parts", step=c.step, edited=quoted(c.edited_token), plain=quoted(c.plain_token))
    title = _t("compare_title_greedy") if c.seed is None else _t("compare_title", seed=c.seed)
    text = Prose(c.prompt, style="bold").append(c.plain_text.replace("\n", "↵\n"))
    return Group(_explain(title), text, Prose(verdict, style="bold"), Text())


def summary(done: RunSummary, model: dict, stop_texts: tuple[str, ...] = ()) -> Group:
    """Why it stopped, how fast, and what the cache saved (or would have)."""
    n = done.n_new_tokens
    lines = [Prose(_t(f"stop_{done.stop_reason}", n=n, n_ctx=model["n_ctx"],
                      stop=_t("or").join(quoted(s) for s in stop_texts)), style="bold")]
    lines.append(Prose(_t("speed", n=n, seconds=f"{done.seconds:.3f}", rate=f"{done.tokens_per_s:.1f}",
                         n_prompt=done.n_prompt_tokens, first=f"{done.first_step_seconds * 1000:.1f}")))
    with_cache, without = done.positions_with_cache, done.positions_without_cache
    ratio = without / with_cache if with_cache else 1.0
    key = "positions" if done.use_cache else "positions_off"
    lines.append(Prose(_t(key, with_cache=f"{with_cache:,}", without=f"{without:,}", ratio=ratio)))
    key = "cache_bytes" if done.use_cache else "cache_bytes_off"
    lines.append(Prose(_t(key, positions=with_cache, n_layer=model["n_layer"], d_model=model["d_model"],
                         bytes=f"{done.cache_bytes:,}")))
    return Group(*lines)
