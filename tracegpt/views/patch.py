"""`tracegpt patch`: each sweep as a grid of the recovered metric, and how well the first-order estimate does."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from .. import stages
from ..analysis.patching import PatchingResult, Sweep
from ..texts import say
from .common import Prose, quoted
from .grid import PATCH, Grid, Legend


def _t(text_key: str, **values) -> str:
    return say("patch", text_key, **values)


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def row_label(stage: str) -> str:
    layer = stages.layer_of(stage)
    return _t("row_embed") if layer is None else _t("row_block", layer=layer)


def column_labels(result: PatchingResult, sweep: Sweep) -> list[str]:
    if sweep.kind == "heads":
        return [str(h) for h in sweep.columns]
    return [quoted(result.tokens[p]) for p in sweep.columns]


def sweep_title(sweep: Sweep) -> str:
    if sweep.kind in ("resid_out", "heads"):
        return _t(f"{sweep.kind}_title")
    return _t("stage_title", stage=sweep.kind)


def worst_error(result: PatchingResult, sweep: Sweep) -> Text:
    cells = [(abs(e), i, j) for i, row in enumerate(sweep.errors) for j, e in enumerate(row)]
    _, i, j = max(cells)
    column = _t("col_head", head=sweep.columns[j]) if sweep.kind == "heads" else \
        f"{quoted(result.tokens[sweep.columns[j]])}@{sweep.columns[j]}"
    return _explain(_t("estimate_error", error=sweep.errors[i][j], row=row_label(sweep.rows[i]), column=column,
                       exact=sweep.values[i][j], estimate=sweep.estimates[i][j]))


def sweep_view(result: PatchingResult, sweep: Sweep) -> Group:
    rows = [row_label(s) for s in sweep.rows]
    cols = column_labels(result, sweep)
    corner = _t("corner") if sweep.kind == "heads" else ""
    exact = Grid(rows, cols, sweep.values, PATCH, corner=corner)
    estimate = Grid(rows, cols, sweep.estimates, PATCH, corner=corner)
    return Group(Prose(sweep_title(sweep), style="bold"), exact, Text(),
                 _explain(_t("estimate_title")), estimate, worst_error(result, sweep))


def render(result: PatchingResult) -> Group:
    parts = [Prose(_t("title", model=result.model["name"], clean=quoted(result.clean), corrupt=quoted(result.corrupt)),
                  style="bold underline"),
             _explain(_t("metric", answer=quoted(result.answer_text), wrong=quoted(result.wrong_text),
                         clean_metric=result.metric_clean, corrupt_metric=result.metric_corrupt)),
             Legend(PATCH, _t("legend"))]
    for sweep in result.sweeps:
        parts += [Text(), sweep_view(result, sweep)]
    return Group(*parts)
