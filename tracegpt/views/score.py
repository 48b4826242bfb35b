"""`tracegpt score`: the text tinted by surprise, the most surprising tokens, one position worked out, the summary.

Pure rendering of analysis.scoring's dataclasses: every number shown is computed there.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ..analysis.scoring import Comparison, Score, SpanScore, Summary, TokenScore, Worked, WorkedCandidate
from ..texts import say
from .common import Prose, bar, cut, pct, quoted

TOKEN_WIDTH = 16  # a token in a table column; longer ones end in …
WORD_WIDTH = 20

# Surprise buckets, in bits. Quiet tokens fade, surprising ones sit on ever brighter backgrounds
# (dark red, yellow, white: luminance rises with surprise). Standard colour names only, so 16-colour
# terminals show the same ramp as truecolour ones instead of rounding neighbours together.
SURPRISE = ((2, "bright_black"), (5, "default"), (10, "bright_white on red"), (15, "black on yellow"),
            (float("inf"), "bold black on bright_white"))
FIRST_TOKEN = "italic"  # the first token is never scored: nothing comes before it


def _t(key: str, lang: str, **values) -> str:
    return say("score", key, lang, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def surprise_style(bits: float) -> str:
    return next(style for limit, style in SURPRISE if bits < limit)


def prob_text(p: float) -> str:
    """12%, 3.4%, 0.2%; below a tenth of a percent in powers of ten (1.8e-07), where percentages lose the digits."""
    return pct(p) if p >= 0.000995 else f"{p:.1e}"


def signed(x: float) -> str:
    """A number that follows a minus sign: (−1.3664) rather than − -1.3664."""
    return f"({x:.4f})".replace("-", "−") if x < 0 else f"{x:.4f}"


def short(text: str, width: int = TOKEN_WIDTH) -> str:
    """A quoted token within `width` cells (a Chinese character takes two)."""
    shown = quoted(text)
    return shown if cell_len(shown) <= width else cut(shown[:-1], width - 1) + "'"


def shorten(text: str, limit: int = 48) -> str:
    """A long text as its start and its end."""
    return text if len(text) <= limit else text[: limit - 17] + "…" + text[-16:]


# --- the text, tinted -----------------------------------------------------------------------------

def legend(lang: str) -> Text:
    line = Text()
    low = 0
    for high, style in SURPRISE:
        if low == 0:
            label = _t("legend_below", lang, high=high)
        elif high == float("inf"):
            label = _t("legend_above", lang, low=low)
        else:
            label = _t("legend_range", lang, low=low, high=high)
        line.append(f" {label} ", style=style)
        line.append(" ")
        low = high
    line.append(_t("legend_first", lang), style=FIRST_TOKEN)
    return line


def _visible_breaks(text: str) -> str:
    # A line break is marked, or a run of them would tint only invisible blank lines.
    return text.replace("\n", "↵\n")


def tinted_text(score: Score, lang: str) -> Group:
    text = Prose()  # no base style: each token carries its own
    text.append(_visible_breaks(score.texts[0]), style=FIRST_TOKEN)
    for row in score.rows():
        text.append(_visible_breaks(row.text), style=surprise_style(row.bits))
    return Group(Prose(_t("text_title", lang), style="bold"), legend(lang), text)


# --- the most surprising tokens ---------------------------------------------------------------------

def surprising_table(rows: list[TokenScore], lang: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column(_t("col_position", lang), justify="right", no_wrap=True)
    table.add_column(_t("col_token", lang), no_wrap=True)
    table.add_column(_t("col_prob", lang), justify="right", no_wrap=True)
    table.add_column(_t("col_bits", lang), justify="right", no_wrap=True)
    table.add_column(_t("col_rank", lang), justify="right", no_wrap=True)
    table.add_column(_t("col_expected", lang), no_wrap=True, overflow="ellipsis")
    for row in rows:
        expected = Text()
        if row.top:
            best = row.top[0]
            expected.append(short(best.text), style="cyan")
            expected.append(f" {prob_text(best.prob)}")
        # assembled, not the cell's style: a background should cover the token, not the column's padding
        token = Text.assemble((short(row.text), surprise_style(row.bits)))
        table.add_row(str(row.position), token, prob_text(row.prob), f"{row.bits:.2f}", f"{row.rank:,}", expected)
    return table


# --- one position worked out --------------------------------------------------------------------------

def _candidate_row(table: Table, c: WorkedCandidate, best: float):
    marker = "▸" if c.is_true else " "
    style = "bold bright_white on red" if c.is_true else "cyan"
    table.add_row(f"{c.rank:,}", Text.assemble((marker + short(c.text), style)), f"{c.logit:.4f}", prob_text(c.prob),
                  Text(bar(c.prob / best, 12), style="yellow"))


def worked_view(w: Worked, lang: str) -> Group:
    token = quoted(w.token.text)
    formula_token = short(w.token.text)  # the formula stays on one line
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column(_t("col_rank", lang), justify="right", no_wrap=True)
    table.add_column(_t("col_token", lang), no_wrap=True)
    table.add_column(_t("col_logit", lang), justify="right", no_wrap=True)
    table.add_column(_t("col_prob", lang), justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    best = w.candidates[0].prob
    for c in w.candidates:
        _candidate_row(table, c, best)
    if not w.true_listed:
        table.add_row("⋮", Prose(_t("worked_between", lang, n=w.n_between), style="grey50"),
                      "", "", "")
        _candidate_row(table, w.true, best)
    lhs = _t("worked_lhs", lang, token=formula_token)
    steps = [
        f"{lhs} = {_t('worked_rhs', lang, token=formula_token)}",
        " " * cell_len(lhs) + " = " + _t("worked_numbers", lang, lse=w.logsumexp, logit=signed(w.true_logit),
                                         nats=w.nats),
        _t("worked_bits", lang, nats=w.nats, bits=w.bits, prob=prob_text(w.prob)),
    ]
    return Group(
        Prose(_t("worked_title", lang, position=w.position, token=token), style="bold bright_magenta"),
        _explain(_t("worked_intro", lang, first=w.context_start, last=w.position - 1, n_context=w.token.context,
                    n_vocab=w.n_vocab)),
        table,
        Text(),
        Prose(_t("worked_loss_title", lang), style="bold"),
        Padding(Text("\n".join(steps), style="bold cyan"), (0, 0, 0, 2), expand=False),
        _explain(_t("worked_lse", lang, max=w.max_logit, rest=w.logsumexp_above_max)),
    )


# --- the summary -------------------------------------------------------------------------------------

def windows_text(s: Summary, lang: str) -> str:
    plan = s.plan
    if plan.n_windows == 1:
        return _t("windows_one", lang, n_read=plan.windows[0].n_read)
    return _t("windows_many", lang, n_windows=plan.n_windows, window=plan.window, stride=plan.stride,
              min_context=plan.min_context)


def summary_table(s: Summary, lang: str) -> Table:
    table = Table(box=None, show_header=False, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("row_scored", _t("scored", lang, n_scored=s.n_scored, n_tokens=s.n_tokens)),
        ("row_total", _t("total", lang, bits=s.total_bits)),
        ("row_per_token", _t("per_token", lang, bits=s.bits_per_token, nats=s.nats_per_token,
                                perplexity=s.perplexity)),
        ("row_per_char", _t("per_char", lang, bits=s.bits_per_char, n_bytes=s.n_bytes)),
        ("row_top1", _t("top1", lang, n=s.n_top1, n_scored=s.n_scored, share=pct(s.top1_share))),
        ("row_windows", windows_text(s, lang)),
    ]
    for label, value in rows:
        table.add_row(_t(label, lang), value)
    return table


def render(score: Score, surprising: list[TokenScore], lang: str | None = None, show_text: bool = True) -> Group:
    """The whole view; `surprising` is the table's rows (Score.most_surprising), empty for none."""
    s = score.summary
    parts = [Prose(_t("title", lang, model=s.model, text=quoted(shorten(score.text))), style="bold underline"),
             _explain(_t("intro", lang)), Text()]
    if show_text:
        parts += [tinted_text(score, lang), Text()]
    if show_text and surprising:
        parts += [Prose(_t("surprising_title", lang, n=len(surprising)), style="bold"),
                  surprising_table(surprising, lang), Text()]
    if score.worked is not None:
        parts += [worked_view(score.worked, lang), Text()]
    parts += [Prose(_t("summary_title", lang, model=s.model), style="bold"), summary_table(s, lang)]
    return Group(*parts)


# --- two models on one text --------------------------------------------------------------------------

def comparison_summary(c: Comparison, lang: str) -> Table:
    a, b = c.summaries
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column("", style="bold", no_wrap=True)
    table.add_column(a.model, justify="right", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column(b.model, justify="right", no_wrap=True, overflow="ellipsis", max_width=24)

    def windows(s: Summary) -> str:
        if s.plan.n_windows == 1:
            return _t("vs_windows_one", lang, n_read=s.plan.windows[0].n_read)
        return _t("vs_windows_many", lang, n_windows=s.plan.n_windows, window=s.plan.window, stride=s.plan.stride)

    rows = [
        ("row_scored", lambda s: _t("vs_scored", lang, n_scored=s.n_scored, n_tokens=s.n_tokens)),
        ("row_total", lambda s: f"{s.total_bits:,.1f}"),
        ("vs_row_per_token", lambda s: f"{s.bits_per_token:.3f}"),
        ("vs_row_per_char", lambda s: f"{s.bits_per_char:.3f}"),
        ("vs_row_perplexity", lambda s: f"{s.perplexity:,.1f}"),
        ("row_top1", lambda s: f"{s.n_top1:,} ({pct(s.top1_share)})"),
        ("row_windows", windows),
    ]
    for label, value in rows:
        table.add_row(_t(label, lang), value(a), value(b))
    return table


def disagreement_table(c: Comparison, spans: list[SpanScore], lang: str) -> Table:
    a, b = c.summaries
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column(_t("col_word", lang), no_wrap=True)
    table.add_column(a.model, justify="right", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column(b.model, justify="right", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column(_t("col_difference", lang), justify="right", no_wrap=True)
    for span in spans:
        first, second = span.bits_per_char
        better = span.difference < 0
        difference = Text(f"{span.difference:+.1f}".replace("-", "−"), style="green" if better else "bright_red")
        table.add_row(Text(short(span.text, WORD_WIDTH), style="cyan"), f"{first:.2f}", f"{second:.2f}", difference)
    return table


def render_comparison(c: Comparison, spans: list[SpanScore], text: str, lang: str | None = None) -> Group:
    """Each model's summary side by side, then per word; `spans` are the table's rows (Comparison.disagreements)."""
    a, b = c.summaries
    first, second = c.bits_per_char
    parts = [Prose(_t("vs_title", lang, a=a.model, b=b.model, text=quoted(shorten(text))), style="bold underline"),
             _explain(_t("vs_intro", lang)), Text(), comparison_summary(c, lang), Text(),
             Prose(_t("vs_common", lang, n_words=len(c.spans), n_bytes=c.n_bytes, a=a.model, b=b.model,
                     bpc_a=first, bpc_b=second, n_better=c.n_first_better))]
    if spans:
        parts += [Text(), Prose(_t("vs_words_title", lang, n=len(spans), a=a.model, b=b.model), style="bold"),
                  disagreement_table(c, spans, lang)]
    return Group(*parts)
