"""`tracegpt generate`: the header, one step row at a time, the sampling pipeline, the tinted text.

The step table is printed row by row as the tokens come, so every row is its own rich Table
with the same fixed column widths: they line up without a live display, which also keeps
the output readable when standard output is a file or a pipe.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..analysis.forward import Rest
from ..generation import Comparison, RunInfo, RunSummary, Step
from ..sampling import SamplingSettings
from ..texts import say, titled
from .common import Prose, Title, bar, other_tokens, pct, quoted, visible, weight_style

WIDE = 110  # from this many columns the top-5 candidates fit on the step's own line
N_TOP = 5
TOKEN_WIDTH = 12
CANDIDATES_WIDTH = 78


def _t(key: str, **values) -> str:
    return say("generate", key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def is_wide(width: int) -> bool:
    return width >= WIDE


def _number(x: float) -> str:
    return f"{x:g}"


# --- header ---


def header(run: RunInfo) -> Group:
    """Title and what the run does: the loop, the sampling settings, the cache, the columns."""
    s = run.settings
    title = Title(lambda cells: _t("title", model=run.model["name"],
                                   prompt=titled(run.prompt, run.n_prompt_tokens, cells)))
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
    lines.append(_explain(_t(probability_note(s))))
    lines.append(_explain(_t("columns")))
    if run.interventions:
        from .intervene import changes_grid

        lines += [Prose(_t("edits"), style="bold"), changes_grid(run.interventions, run.model["n_layer"])]
    return Group(*lines, Text())


def shows_model_prob(s: SamplingSettings) -> bool:
    """Whether the draw's distribution differs from the model's own: a temperature or a cut."""
    return not s.is_greedy and (s.temperature != 1 or s.top_k is not None or s.top_p < 1)


def probability_note(s: SamplingSettings) -> str:
    return "prob_model" if shows_model_prob(s) else "prob_own"


# --- the step table, one row at a time ---

FIXED = {"step": 4, "prob": 6, "model": 6, "looks": 16, "ctx": 4, "new": 4, "cache": 5}
TEXT_MIN = 16  # cells of the text so far, at the least


class StepTable:
    """The table the explainers draw, one row per step: step | text so far | prob | looks at | (top) | cache.

    Rows are printed as the tokens come, each a Table of its own with the same column widths, so
    they line up without a live display (and stay plain lines in a pipe or a file). With a
    temperature or a cut, a `model` column gives the model's own probability beside the one the
    draw used. From WIDE columns on, the candidates sit on the step's own line.
    """

    def __init__(self, width: int, with_model: bool):
        self.width = width
        self.with_model = with_model
        self.wide = is_wide(width)
        fixed = sum(v for k, v in FIXED.items() if k != "model" or with_model)
        columns = len(FIXED) + 1 - (0 if with_model else 1) + (1 if self.wide else 0)  # the text column too
        room = width - fixed - 2 * (columns - 1)  # cells are padded one space on each inner side
        if self.wide:
            self.candidates = min(CANDIDATES_WIDTH, room - TEXT_MIN)
            room -= self.candidates
        self.text = max(TEXT_MIN, room)

    def _table(self, show_header: bool) -> Table:
        table = Table(box=None, show_edge=False, pad_edge=False, show_header=show_header, header_style="bold",
                      padding=(0, 1))
        table.add_column(_t("col_step"), justify="right", width=FIXED["step"], no_wrap=True)
        table.add_column(_t("col_text"), width=self.text, no_wrap=True, overflow="crop")
        table.add_column(_t("col_prob"), justify="right", width=FIXED["prob"], no_wrap=True)
        if self.with_model:
            table.add_column(_t("col_model"), justify="right", width=FIXED["model"], no_wrap=True)
        table.add_column(_t("col_looks"), width=FIXED["looks"], no_wrap=True, overflow="ellipsis")
        if self.wide:
            table.add_column(_t("col_top", n=N_TOP), width=self.candidates, no_wrap=True, overflow="ellipsis")
        table.add_column(_t("col_ctx"), justify="right", width=FIXED["ctx"], no_wrap=True)
        table.add_column(_t("col_new"), justify="right", width=FIXED["new"], no_wrap=True)
        table.add_column(_t("col_cache"), justify="right", width=FIXED["cache"], no_wrap=True)
        return table

    def header(self) -> Table:
        return self._table(show_header=True)

    def row(self, step: Step, before: str) -> RenderableType:
        """One step; `before` is the text the step's pass read (prompt and tokens so far)."""
        table = self._table(show_header=False)
        cells = [str(step.number), text_so_far(before, step, self.text), pct(step.prob)]
        if self.with_model:
            cells.append(Text(pct(step.sampled.model_prob), style="grey70"))
        cells.append(looks_at(step))
        if self.wide:
            cells.append(candidates_line(step, room=self.candidates))
        cells += [str(step.position), str(step.n_computed), str(step.cache_length) if step.cache_length else _t("off")]
        table.add_row(*cells)
        if self.wide:
            return table
        # The candidates under the text column, a leading ▸ hanging one column to the left.
        candidates = candidates_line(step, room=self.width - 6)
        indent = Text(" " * (5 if candidates.plain.startswith("▸") else 6), no_wrap=True, overflow="ellipsis")
        return Group(table, indent.append_text(candidates))


def text_so_far(before: str, step: Step, cells: int) -> Text:
    """The tail of the text that fits, the newest token highlighted at its end."""
    newest = visible(step.text)
    earlier = visible(before)
    if cell_len(newest) >= cells:  # a token longer than the column: its start, cut
        newest, earlier = _head(newest, cells - 1) + "…", ""
    room = cells - cell_len(newest)
    if cell_len(earlier) > room:
        earlier = "…" + _tail(earlier, room - 1) if room > 1 else ""
    out = Text(earlier, style="grey70")
    out.append(newest, style=f"bold {weight_style(step.prob)}")
    return out


def _head(text: str, cells: int) -> str:
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells:
            break
        out += ch
    return out


def _tail(text: str, cells: int) -> str:
    out = ""
    for ch in reversed(text):
        if cell_len(ch + out) > cells:
            break
        out = ch + out
    return out


def candidates_line(step: Step, room: int | None = None) -> Text:
    """The top candidates of the distribution the draw used, the drawn one marked ▸, then what the rest hold.

    Within `room` columns, candidates are dropped from the least likely end rather than wrapped;
    the drawn token, and the share of the others, are always shown.
    """
    def piece(c_text: str, prob: float, chosen: bool) -> Text:
        out = Text(("▸" if chosen else "") + quoted(c_text), style="bold cyan underline" if chosen else "cyan")
        return out.append(" " + pct(prob), style=weight_style(prob))

    listed = step.sampled.top(N_TOP)
    shown = [(c.text, c.prob, c.id == step.token_id) for c in listed]
    if not any(chosen for _, _, chosen in shown):
        shown.append((step.text, step.prob, True))
        listed = [*listed, step.sampled.chosen]
    n, prob = step.sampled.rest(listed)
    others = Text(other_tokens(Rest(n, prob), short=True), style="grey50")
    pieces = [piece(*s) for s in shown]
    while room is not None and len(pieces) > 1 and sum(p.cell_len + 2 for p in pieces) + others.cell_len > room:
        # Drop the least likely candidate that was not drawn; its share joins the others'.
        drop = max(i for i, (_, _, chosen) in enumerate(shown) if not chosen)
        n, prob = n + 1, prob + shown[drop][1]
        others = Text(other_tokens(Rest(n, prob), short=True), style="grey50")
        del shown[drop], pieces[drop]
    line = Text("  ").join([*pieces, others])
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def looks_at(step: Step) -> Text:
    a = step.attention
    if a is None:
        return Text("—", style="grey50")
    return Text(f"{quoted(a.text)}@{a.position} {pct(a.weight)}", style=weight_style(a.weight))


# --- the sampling pipeline of one step ---


def pipeline(step: Step, settings: SamplingSettings) -> Group:
    """logit → /T → top-k cut → top-p cut → renormalised prob, for the step's leading candidates."""
    s = step.sampled
    token = quoted(step.text)
    title = Prose(_t("pipeline_title", step=step.number, token=token), style="bold")
    if s.greedy:
        rest = Rest(*s.rest(s.candidates))
        return Group(title, _explain(_t("pipeline_greedy", n_vocab=s.n_vocab)), _greedy_table(step),
                     Text("    " + other_tokens(rest), style="grey50"), Text())
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


def _pipeline_table(lines: bool = False) -> Table:
    # With `lines`, a rule under the header and wherever a cut falls (rows marked end_section).
    table = Table(box=box.HORIZONTALS if lines else None, show_edge=False, pad_edge=False, header_style="bold",
                  padding=(0, 1 if not lines else 0))
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
    return Text(_t("kept"), style="green") if kept else Text(_t("cut"), style="bright_red")


def _sampling_table(step: Step) -> Group:
    """Every kept row (up to sampling.MAX_LISTED), a line where each cut falls, and what the cut rows hold."""
    s = step.sampled
    table = _pipeline_table(lines=True)
    for key in ("col_scaled", "col_p_t", "col_top_k", "col_top_p", "col_prob", "col_slice"):
        table.add_column(_t(key), justify="center" if key in ("col_top_k", "col_top_p") else "right", no_wrap=True)
    cuts = {}  # the rank of the first row each cut removes -> what the rows from there on hold
    if s.n_top_p < s.n_top_k:
        n = s.n_top_k - s.n_top_p
        cuts[s.n_top_p] = _t("cut_top_p", rank=s.n_top_p, n=n, n_text=f"{n:,}",
                             pct=pct(s.mass_top_k * (1 - s.mass_top_p)))
    if s.n_top_k < s.n_vocab:
        n = s.n_vocab - s.n_top_k
        cuts[s.n_top_k] = _t("cut_top_k", rank=s.n_top_k, n=n, n_text=f"{n:,}", pct=pct(1 - s.mass_top_k))
    listed_kept = sum(1 for c in s.candidates if c.in_top_p and c.in_top_k)
    notes = [Text("── " + cuts[rank], style="bright_red") for rank in sorted(cuts)]
    if listed_kept < s.n_top_p:
        n = s.n_top_p - listed_kept
        notes.insert(0, Text(_t("more_kept", n=n, n_text=f"{n:,}"), style="grey70"))
    rows = s.candidates
    for c, after in zip(rows, [*rows[1:], None]):
        if c.rank != (rows[rows.index(c) - 1].rank + 1 if rows.index(c) else 0):
            table.add_row("…", "", "", "", "", "", "", "", "")
        chosen = c.id == step.token_id
        slice_text = f"{c.cum_start:.3f}–{c.cum_start + c.prob:.3f}" if c.prob > 0 else ""
        next_rank = c.rank + 1
        table.add_row(
            f"{'▸' if chosen else ''}{c.rank + 1}",
            _token_cell(c.text, chosen),
            f"{c.logit:.2f}", f"{c.scaled:.2f}", pct(c.p_temperature), _cut(c.in_top_k),
            _cut(c.in_top_p, reached=c.in_top_k), Text(pct(c.prob) if c.prob > 0 else "0", style=weight_style(c.prob)),
            slice_text, end_section=next_rank in cuts and after is not None and after.rank == next_rank)
    return Group(table, *notes)


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
