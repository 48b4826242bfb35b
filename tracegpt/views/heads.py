"""`tracegpt heads`: every head's strongest job on a grid, its scores and ablation in a table."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..analysis.heads import CHECK_TOP, MAX_CHECKS, ROLE_SHARE, HeadMap, HeadScore
from ..texts import say
from .common import Prose, pct, quoted
from .grid import Grid, Legend, Scale

LIST_ALL = 48  # a model with at most this many heads gets a table row for each; a bigger one, for its notable heads
# Colour codes of the roles, for the grid's scale: a category each (the order means nothing).
ROLE_CODES = ("none", "first", "self", "previous", "duplicate", "induction")


def _t(text_key: str, **values) -> str:
    return say("heads", text_key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def score(x: float | None) -> str:
    return "–" if x is None else pct(x)


def role_scale() -> Scale:
    """One colour per role; in 16 colours hues too, since categories keep no order of brightness."""
    return Scale(bounds=tuple(i + 0.5 for i in range(len(ROLE_CODES) - 1)),
                 rich=("grey50", "white on #4a4a4a", "black on #c9a0dc", "black on #6fa8dc", "black on #f6b26b",
                       "black on #93c47d"),
                 plain=("bright_black", "black on white", "black on bright_magenta", "white on blue", "black on yellow",
                        "black on green"),
                 labels=tuple(_t(f"role_{r}") for r in ROLE_CODES))


def cell(h: HeadScore) -> str:
    """The role and its score; a head without a role shows its strongest job in brackets."""
    if h.role == "none":
        return f"({_t('abbrev_' + h.strongest)} {score(h.score(h.strongest))})"
    return f"{_t('abbrev_' + h.role)} {score(h.score(h.role))}"


def role_grid(m: HeadMap) -> Group:
    n_layer, n_head = m.model["n_layer"], m.model["n_head"]
    values = [[float(ROLE_CODES.index(m.head(layer, h).role)) for h in range(n_head)] for layer in range(n_layer)]
    labels = [[cell(m.head(layer, h)) for h in range(n_head)] for layer in range(n_layer)]
    scale = role_scale()
    return Group(Prose(_t("grid_title", share=pct(ROLE_SHARE)), style="bold"),
                 Grid([_t("row_block", layer=layer) for layer in range(n_layer)], [str(h) for h in range(n_head)],
                      values, scale, corner=_t("corner"), labels=labels),
                 Legend(scale, _t("legend")))


def listed(m: HeadMap) -> list[HeadScore]:
    if len(m.heads) <= LIST_ALL:
        return m.heads
    return [h for h in m.heads if h.role != "none" or h.loss_ablated is not None]


def delta(after: float | None, before: float | None) -> Text:
    if after is None or before is None:
        return Text("")
    d = after - before
    return Text(f"{d:+.2f}", style="bold bright_red" if d >= 0.5 else "bright_red" if d >= 0.1 else "")


def heads_table(m: HeadMap) -> Group:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column(_t("col_head"), justify="right", no_wrap=True)
    table.add_column(_t("col_role"), no_wrap=True)
    for key in ("previous", "first", "self", "duplicate", "induction", "entropy"):
        table.add_column(_t(f"col_{key}"), justify="right", no_wrap=True)
    checked = m.checked != "none"
    others = any(h.loss_ablated_other is not None for h in m.heads)  # scored only where every head is ablated
    if checked:
        table.add_column(_t("col_delta"), justify="right", no_wrap=True)
    if others:
        table.add_column(_t("col_delta_other" if m.source == "probe" else "col_delta_rest"), justify="right",
                         no_wrap=True)
    rows = listed(m)
    for h in rows:
        row = [h.name, Text(_t(f"role_{h.role}"), style="grey50" if h.role == "none" else "bold"),
               score(h.previous), score(h.first), score(h.itself), score(h.duplicate), score(h.induction),
               f"{h.entropy_bits:.2f}"]
        if checked:
            row.append(delta(h.loss_ablated, m.loss_repeated))
        if others:
            row.append(delta(h.loss_ablated_other, m.loss_other))
        table.add_row(*row)
    parts = [table]
    if len(rows) < len(m.heads):
        parts.append(Prose(_t("not_listed", n=len(m.heads) - len(rows)), style="grey50"))
    return Group(*parts)


def intro(m: HeadMap) -> list[Text]:
    if m.source == "probe":
        out = [_explain(_t("probe", n_probes=m.n_probes, start=quoted(m.start_text), half=m.half, seed=m.seed))]
        out.append(Prose(_t("loss", other=m.loss_other, repeated=m.loss_repeated, chance=m.chance_loss)))
        gain = m.loss_other - m.loss_repeated
        out.append(Prose(_t("copies", gain=gain) if gain > 0 else _t("no_copy")))
        if min(m.loss_other, m.loss_repeated) > m.chance_loss:
            out.append(_explain(_t("above_chance")))
        return out
    if m.loss_repeated is None:
        return [_explain(_t("no_repeats"))]
    return [_explain(_t("prompt_intro", n=m.n_tokens, n_repeated=m.n_repeated)),
            Prose(_t("loss_prompt", repeated=m.loss_repeated, other=m.loss_other, chance=m.chance_loss))]


def checked_note(m: HeadMap) -> Text | None:
    if m.checked == "none":
        return None
    if m.checked == "some":
        n_checked = sum(h.loss_ablated is not None for h in m.heads)
        return _explain(_t("checked_some", n_checked=n_checked, n_heads=len(m.heads), top=CHECK_TOP, most=MAX_CHECKS,
                           intact=m.loss_repeated))
    if m.source == "prompt":
        return _explain(_t("checked_prompt", intact=m.loss_repeated))
    return _explain(_t("checked_all", intervene="tracegpt intervene --ablate L.H", intact=m.loss_repeated))


def verdict(m: HeadMap) -> Text | None:
    top = m.top("induction")
    if top is None:
        return None
    if top.loss_ablated is None:
        return Prose(_t("verdict_unchecked", head=top.name, score=score(top.induction)))
    values = dict(head=top.name, score=score(top.induction), intact=m.loss_repeated, ablated=top.loss_ablated,
                  delta=top.loss_ablated - m.loss_repeated)
    suffix = "" if m.source == "probe" else "_prompt"
    if top.loss_ablated_other is None:  # a big model: only the repeated predictions are scored
        suffix += "_only"
    else:
        values["delta_other"] = top.loss_ablated_other - m.loss_other
    if top.induction >= ROLE_SHARE:
        return Prose(_t("verdict_induction" + suffix, **values), style="bold")
    return Prose(_t("verdict_weak" + suffix, share=pct(ROLE_SHARE), **values), style="bold")


def render(m: HeadMap) -> Group:
    name = m.model["name"]
    if m.source == "probe":
        title = _t("title", model=name, n_heads=len(m.heads))
    else:
        title = _t("title_prompt", model=name, prompt=quoted(m.prompt))
    parts = [Text(title, style="bold underline"), *intro(m), Text(), role_grid(m), Text(), heads_table(m)]
    parts += [x for x in (checked_note(m), verdict(m)) if x is not None]
    hint = _t("attn_hint", attn="tracegpt attn TEXT --layer L --head H")
    parts += [_explain(_t("scores_how")), Text(), _explain(hint)]
    return Group(*parts)
