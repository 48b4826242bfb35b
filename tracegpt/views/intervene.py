"""`tracegpt intervene`: what was changed, the next-token table before → after, how far it moved."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..analysis.forward import Rest
from ..analysis.interventions import Candidate, Done, InterventionResult, RowChange
from ..texts import say, titled
from .common import Prose, Title, pct, quoted, weight_style

UP, DOWN = "green", "bright_red"


def _t(text_key: str, **values) -> str:
    return say("intervene", text_key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def sentence(done: Done, n_layer: int) -> str:
    d = done.detail
    last = n_layer - 1
    if done.kind == "ablate":
        how = _t("means" if d["mean"] else "zeros")
        if d["mlp"]:
            return _t("ablate_mlp", layer=done.layer, how=how)
        if d["head"] is None:
            return _t("ablate_layer", layer=done.layer, how=how, last=last)
        return _t("ablate_head", layer=done.layer, head=d["head"], how=how)
    if done.kind == "cut":
        if done.no_op:
            return _t("cut_masked", layer=done.layer, query=d["query"], key=d["key"])
        if d["head"] is None:
            return _t("cut_layer", layer=done.layer, query=d["query"], key=d["key"])
        return _t("cut_head", layer=done.layer, head=d["head"], query=d["query"], key=d["key"])
    if done.kind == "patch":
        return _t("patch", site=done.site, source=quoted(d["source"]))
    return _t("steer", layer=done.layer, alpha=f"{d['alpha']:g}", toward=quoted(d["toward"]),
              away=quoted(d["away"]), norm=d["norm"])


def changes_grid(done: list[Done], n_layer: int) -> Table:
    # A grid, so each sentence wraps under itself rather than under its bullet.
    items = Table.grid(padding=(0, 1))
    items.add_column(no_wrap=True)
    items.add_column()
    for d in done:
        spec = Prose(f"--{d.kind} {d.text}", style="bold cyan")
        items.add_row("•", spec.append("  " + sentence(d, n_layer), style=""))
    return items


def changes(result: InterventionResult) -> Group:
    return Group(Text(_t("list_title"), style="bold"), changes_grid(result.done, result.model["n_layer"]))


def _moved(before: float, after: float, text: str, higher_is_up: bool = True) -> Text:
    """`before → after`, the after coloured by the direction it moved."""
    style = "" if after == before else (UP if (after > before) == higher_is_up else DOWN)
    out = Text(text.split("→")[0])
    return out.append("→" + text.split("→")[1], style=style)


def next_token_table(rows: list[Candidate], before: Rest, after: Rest) -> Group:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column("#", justify="right")
    table.add_column(_t("col_token"), style="cyan", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column(_t("col_prob"), justify="right", no_wrap=True)
    table.add_column(_t("col_logit"), justify="right", no_wrap=True)
    table.add_column(_t("col_rank"), justify="right", no_wrap=True)
    for n, r in enumerate(rows, 1):
        table.add_row(str(n), quoted(r.text),
                      _moved(r.prob_before, r.prob_after, f"{pct(r.prob_before):>5} → {pct(r.prob_after):>5}"),
                      _moved(r.logit_before, r.logit_after, f"{r.logit_before:6.2f} → {r.logit_after:6.2f}"),
                      _moved(r.rank_before, r.rank_after, f"{r.rank_before:,} → {r.rank_after:,}", higher_is_up=False))
    others = _t("others", n=before.n, n_text=f"{before.n:,}", before=pct(before.prob), after=pct(after.prob))
    return Group(table, Text("   " + others, style="grey50"))


def verdict(result: InterventionResult) -> Group:
    before = min(result.rows, key=lambda r: r.rank_before)
    after = min(result.rows, key=lambda r: r.rank_after)
    if result.top_changed:
        top = Prose(_t("top_changed", before=quoted(before.text), after=quoted(after.text)), style="bold")
    else:
        top = Prose(_t("top_same", token=quoted(before.text), before=pct(before.prob_before),
                      after=pct(before.prob_after)), style="bold")
    return Group(top, _explain(_t("kl", kl=result.kl_bits)))


def cut_row(result: InterventionResult, row: RowChange) -> Group:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column(_t("col_key"), justify="right")
    table.add_column(_t("col_token"), style="cyan", no_wrap=True, max_width=14, overflow="ellipsis")
    table.add_column(_t("col_before"), justify="right")
    table.add_column(_t("col_after"), justify="right")
    for key, (b, a) in enumerate(zip(row.before, row.after)):
        table.add_row(str(key), quoted(result.tokens[key]), Text(pct(b), style=weight_style(b)),
                      Text(pct(a) if a > 0 else _t("cut"), style=weight_style(a) if a > 0 else DOWN))
    return Group(Prose(_t("row_title", layer=row.layer, head=row.head, query=row.query), style="bold"), table)


def render(result: InterventionResult) -> Group:
    token = quoted(result.tokens[result.position])
    parts = [Title(lambda cells: _t("title", model=result.model["name"],
                                    prompt=titled(result.prompt, len(result.tokens), cells))),
             _explain(_t("intro")), Text(), changes(result), Text(),
             Prose(_t("table_title", token=token, position=result.position), style="bold"),
             next_token_table(result.rows, result.rest_before, result.rest_after), Text(), verdict(result)]
    for row in result.cut_rows:
        parts += [Text(), cut_row(result, row)]
    return Group(*parts)
