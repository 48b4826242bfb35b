"""`tracegpt score`: grade a text token by token, as a view, JSON Lines, SVG or HTML; one model or two.

JSON Lines (--json): one {"event": "token", ...} per scored token, then {"event": "position", ...}
with --position, then {"event": "done", ...} with the summary; with --vs the second model's
tokens and done follow, then one {"event": "comparison", ...}.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .common import check_outputs, check_writable, emit_json, read_text, said_saved, save_exports


def check_counts(top_k: int, surprising: int) -> None:
    if top_k < 0:
        raise UsageError(f"--top-k {top_k} is out of range; it must be at least 0")
    if surprising < 0:
        raise UsageError(f"--surprising {surprising} is out of range; it must be at least 0")


def run(text: str | None, file: Path | None, model: str | None, vs: str | None, window: int | None,
        stride: int | None, position: int | None, top_k: int, surprising: int, summary_only: bool, as_json: bool,
        save: Path | None, svg: Path | None, html: Path | None, lang: str, device: str, dtype: str,
        width: int | None, color: bool) -> None:
    check_outputs(as_json, svg, html)
    if save is not None:
        check_writable(save, "--save")
    check_counts(top_k, surprising)
    from ..texts import load as load_texts

    load_texts(lang)  # an unknown --lang is named before the work
    text = read_text(text, file)  # before torch is imported
    if not text:
        raise UsageError("the text is empty, so there is nothing to score; give some text, '-' for standard "
                         "input, or --file PATH")

    from .. import export, loader
    from ..analysis import scoring

    # A ParameterError names the Python parameter (stride, window, position); the CLI says the flag.
    scores = [scoring.score(text, loader.load(model, device=device, dtype=dtype), window=window, stride=stride,
                            top_k=top_k, position=position)]
    if vs is not None:
        scores.append(scoring.score(text, loader.load(vs, device=device, dtype=dtype), window=window, stride=stride,
                                    top_k=top_k))
    comparison = scoring.compare(*scores) if vs is not None else None
    if save is not None:
        said_saved(export.save_score_npz(save, dict(zip(("", "vs/"), scores))))
    if as_json:
        for s in scores:
            for row in s.rows():
                emit_json(export.score_token_event(s.summary.model, row))
            if s.worked is not None:
                emit_json(export.score_worked_event(s.summary.model, s.worked))
            emit_json(export.score_done_event(s.summary))
        if comparison is not None:
            emit_json(export.score_comparison_event(comparison, comparison.disagreements(surprising)))
        return

    from ..views import common
    from ..views import score as view

    console = common.make_console(width=width, color=color, record=bool(svg or html))
    if comparison is None:
        console.print(view.render(scores[0], scores[0].most_surprising(surprising), lang=lang,
                                  show_text=not summary_only))
    else:
        if scores[0].worked is not None:
            console.print(view.worked_view(scores[0].worked, lang))
            console.print()
        console.print(view.render_comparison(comparison, comparison.disagreements(surprising), text, lang=lang))
    save_exports(console, svg, html, "tracegpt score")
