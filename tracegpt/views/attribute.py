"""`tracegpt attribute`: a logit split into the parts that wrote it, largest first, and the heads as a grid."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..analysis.attribution import Attribution, Neuron, NeuronSplit, Term
from ..texts import say
from .common import Prose, bar, pct, quoted
from .grid import Grid, Legend, signed

TOP_PARTS = 7  # parts listed each way
SHOWN = 5e-4  # a part listed by name moves the logit by at least this (it shows as ±0.001 or more)
BAR_CELLS = 20
UP, DOWN = "green", "bright_red"  # xterm's plain red reads at 3.4:1 on the dark theme; bright_red at 4.9:1


def _t(text_key: str, **values) -> str:
    return say("attribute", text_key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def part_label(term: Term) -> str:
    return _t(f"part_{term.kind}", layer=term.layer, head=term.head)


def share_bar(value: float, biggest: float) -> Text:
    return Text(bar(abs(value) / biggest if biggest else 0.0, BAR_CELLS), style=UP if value > 0 else DOWN)


def largest(a: Attribution) -> tuple[list[Term], list[Term], list[Term]]:
    """The parts pushing up most (strongest first), those pushing down most (weakest first), the rest."""
    ranked = sorted(a.terms, key=lambda t: -t.value)
    up = [t for t in ranked if t.value >= SHOWN][:TOP_PARTS]
    down = [t for t in ranked if t.value <= -SHOWN][-TOP_PARTS:]
    shown = {id(t) for t in up + down}
    return up, down, [t for t in ranked if id(t) not in shown]


def parts_table(a: Attribution) -> Group:
    up, down, rest = largest(a)
    biggest = max(abs(t.value) for t in a.terms)
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column(_t("col_part"), no_wrap=True)
    table.add_column(_t("col_share"), justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for t in up:
        table.add_row(part_label(t), Text(f"{t.value:+.3f}", style=UP), share_bar(t.value, biggest))
    if rest:
        table.add_row(Text(_t("rest", n=len(rest)), style="grey50"),
                      Text(f"{sum(t.value for t in rest):+.3f}", style="grey50"), "")
    for t in down:
        table.add_row(part_label(t), Text(f"{t.value:+.3f}", style=DOWN), share_bar(t.value, biggest))
    return Group(Prose(_t("table_title", n=len(a.terms)), style="bold"), table)


def heads_grid(a: Attribution) -> Group:
    grid = a.heads()
    limit = max((abs(v) for row in grid for v in row), default=0.0)
    scale = signed(limit)
    rows = [_t("row_block", layer=layer) for layer in range(len(grid))]
    cols = [str(h) for h in range(len(grid[0]) if grid else 0)]
    return Group(Prose(_t("heads_title"), style="bold"),
                 Grid(rows, cols, grid, scale, corner=_t("corner"), number="{:+.2f}"), Legend(scale, _t("legend")))


def sums(a: Attribution) -> Text:
    return Prose(_t("sums_vs" if a.vs is not None else "sums", n=len(a.terms), total=a.total, logit=a.logit,
                   diff=abs(a.total - a.logit)))


def target_line(a: Attribution) -> Text:
    focus = f"{quoted(a.tokens[a.position])}@{a.position}"
    if a.vs is None:
        return Prose(_t("target", token=quoted(a.target_text), focus=focus, logit=a.target_logit, prob=pct(a.prob),
                       rank=a.rank, vocab=a.model["vocab_size"]))
    return Prose(_t("target_vs", token=quoted(a.target_text), focus=focus, logit=a.target_logit, prob=pct(a.prob),
                   rank=a.rank, vs=quoted(a.vs_text), vs_logit=a.vs_logit, vs_prob=pct(a.vs_prob), vs_rank=a.vs_rank,
                   diff=a.logit))


def neuron_rows(table: Table, neurons: list[Neuron], biggest: float) -> None:
    for n in neurons:
        table.add_row(f"#{n.index}", f"{n.activation:.3f}", f"{n.weight:+.3f}",
                      Text(f"{n.value:+.3f}", style=UP if n.value > 0 else DOWN), share_bar(n.value, biggest))


def neurons_view(split: NeuronSplit) -> Group:
    up, down = split.top()
    biggest = max([abs(n.value) for n in up + down] or [1.0])
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 1))
    table.add_column(_t("col_neuron"), no_wrap=True)
    table.add_column(_t("col_activation"), justify="right", no_wrap=True)
    table.add_column(_t("col_weight"), justify="right", no_wrap=True)
    table.add_column(_t("col_share"), justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for label, group in ((_t("neurons_up"), up), (_t("neurons_down"), list(reversed(down)))):
        if group:
            table.add_row(Text(label, style="grey50"), "", "", "", "")
            neuron_rows(table, group, biggest)
    neurons = sum(n.value for n in split.neurons)
    return Group(Prose(_t("neurons_title", layer=split.layer, mlp=split.mlp, n=len(split.neurons)), style="bold"),
                 table, Prose(_t("neurons_sum", n=len(split.neurons), neurons=neurons, bias=split.bias,
                                total=split.total, mlp=split.mlp)))


def hints(a: Attribution) -> list[Text]:
    out = []
    if a.neurons is None:
        mlp = max(a.by_kind("mlp"), key=lambda t: abs(t.value))
        out.append(_explain(_t("neurons_hint", layer=mlp.layer)))
    head = max(a.by_kind("head"), key=lambda t: abs(t.value))
    out.append(_explain(_t("heads_hint", heads="tracegpt heads", head=f"{head.layer}.{head.head}")))
    return out


def render(a: Attribution) -> Group:
    token, prompt, model = quoted(a.target_text), quoted(a.prompt), a.model["name"]
    if a.vs is None:
        title = _t("title", token=token, model=model, prompt=prompt)
        intro = _t("intro", position=a.position, token=token)
    else:
        title = _t("title_vs", token=token, vs=quoted(a.vs_text), model=model, prompt=prompt)
        intro = _t("intro_vs", position=a.position, token=token, vs=quoted(a.vs_text))
    parts = [Text(title, style="bold underline"), _explain(intro), target_line(a), Text(), parts_table(a), Text(),
             heads_grid(a), Text(), sums(a), _explain(_t("approx", sigma=a.sigma))]
    if a.neurons is not None:
        parts += [Text(), neurons_view(a.neurons)]
    return Group(*parts, Text(), *hints(a))
