"""The attn views: pure functions from the attn document to renderables, drawn at several widths."""

import pytest
import torch
from conftest import draw

from tracegpt import export
from tracegpt.analysis.attention import AttentionReport, HeadReport, LayerReport, attention_report, focus_of, pattern
from tracegpt.texts import say
from tracegpt.tracer import run_trace
from tracegpt.views.attn import MAX_SOFTMAX_ROWS, SHADES, Heatmap, overview, render, worked_view
from tracegpt.views.common import quoted, visible

PROMPT = "To be, or not to be, that is the question:"
LONG = ("ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun. "
        "Arise, fair sun, and kill the envious moon.")


@pytest.fixture(scope="module")
def doc_for(lm):
    def make(prompt=PROMPT, layers=(1,), heads=(2,), focus=-1, cell=None):
        layers = None if layers is None else list(layers)
        trace = run_trace(lm, prompt, layers=layers, stages=["attn.*"])
        return attention_report(trace, lm, layers, None if heads is None else list(heads), focus % trace.n_tokens,
                                cell)

    return make


def grid_rows(text: str, doc: dict) -> dict[int, list[str]]:
    """Heatmap rows by query position: the cells after the position and the token label."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].isdigit() and int(parts[0]) < len(doc["tokens"]):
            i = int(parts[0])
            if parts[1] == visible(doc["tokens"][i]["text"]):
                rows[i] = parts[2:]
    return rows


def test_heatmap_rows_are_queries_with_each_cell_its_weight_and_the_future_masked(doc_for):
    report = doc_for()
    doc = export.attention_to_dict(report)
    rows = grid_rows(draw(render(report), 200), doc)
    n = len(doc["tokens"])
    assert sorted(rows) == list(range(n))
    for i, cells in rows.items():
        expected = [f"{doc['weights'][i][j]:.2f}" for j in range(i + 1)] + ["·"] * (n - 1 - i)
        assert cells == expected, i


def test_scores_view_masks_the_future_instead_of_showing_its_scores(doc_for):
    report = doc_for()
    doc = export.attention_to_dict(report)
    rows = grid_rows(draw(render(report, scores=True), 200), doc)
    n = len(doc["tokens"])
    for i, cells in rows.items():
        assert cells == [f"{doc['scores'][i][j]:.2f}" for j in range(i + 1)] + ["·"] * (n - 1 - i), i


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("options", [
    {}, {"scores": True}, {"cell": (6, 1)}, {"heads": None}, {"layers": None, "heads": None},
    {"layers": None, "heads": (0,)}, {"heads": (0, 3)},
])
def test_every_view_renders_with_its_labels(doc_for, width, options):
    scores = options.pop("scores", False)
    report = doc_for(**options)
    doc = export.attention_to_dict(report)
    text = draw(render(report, scores=scores), width)
    assert "'To␣be,␣or␣not␣to␣be,␣that" in text.replace("\n", "")
    if report.overview:
        last = len(doc["tokens"]) - 1
        assert say("attn", "col_head") in text and f"{quoted(doc['tokens'][last]['text'])}@{last}" in text
        layers = [layer["layer"] for layer in doc["layers"]]
        assert all(f"Layer {layer}: every head" in text for layer in layers)
    else:
        assert say("attn", "queries_axis") in text and say("attn", "keys_axis") in text
        assert "␣question" in text and "␣be" in text
    if "cell" in options:
        assert "q₆·k₁" in text and "score[6, 1]" in text


def test_a_long_prompt_is_windowed_at_80_columns_and_says_so(doc_for):
    report = doc_for(LONG)
    doc = export.attention_to_dict(report)
    n = len(doc["tokens"])
    narrow, wide = draw(render(report), 80), draw(render(report), 200)
    note = say("attn", "window", rows="", keys="", last=n - 1).split(";")[1]  # the advice after the numbers
    assert note.strip()[:20] in narrow.replace("\n", " ")
    narrow_rows, wide_rows = grid_rows(narrow, doc), grid_rows(wide, doc)
    assert n - 1 in narrow_rows and n - 1 in wide_rows  # the last query (the focus) always shows
    assert len(wide_rows[n - 1]) > len(narrow_rows[n - 1])
    assert narrow_rows[n - 1][0] == f"{doc['weights'][n - 1][0]:.2f}"  # key 0 stays pinned
    assert "…" in narrow_rows[n - 1]


def test_the_window_moves_to_the_worked_cell(doc_for):
    report = doc_for(LONG, cell=(20, 3))
    doc = export.attention_to_dict(report)
    text = draw(render(report), 80)
    rows = grid_rows(text, doc)
    assert max(rows) == 20
    assert rows[20][0] == f"{doc['weights'][20][3]:.2f}"  # the worked key is the pinned column


def test_narrow_terminals_get_one_shaded_character_per_cell(doc_for):
    report = doc_for()
    doc = export.attention_to_dict(report)
    heatmap = Heatmap([t["text"] for t in doc["tokens"]], doc["weights"], doc["mask"], doc["focus_position"])
    rows = grid_rows(draw(heatmap, 40), doc)
    assert rows, "no grid rows drawn"
    for i, cells in rows.items():
        assert all(c in SHADES for c in cells[: i + 1]) and set(cells[i + 1:]) <= {"·"}, i


def test_worked_view_fits_80_columns(doc_for, lm):
    last = len(lm.encode(PROMPT)) - 1
    report = doc_for(cell=(last, 0))
    doc = export.attention_to_dict(report)
    text = draw(worked_view(report, report.single.worked), 80)
    w = doc["worked"]
    assert f"{w['dot']:.4f}" in text and f"{w['weight']:.6f}" in text and f"score[{last}, 0]" in text


def test_a_long_softmax_row_lists_the_worked_key_and_the_heaviest_and_sums_the_rest(doc_for, lm):
    report = doc_for(LONG, cell=(len(lm.encode(LONG)) - 3, 3))
    doc = export.attention_to_dict(report)
    w = doc["worked"]
    text = draw(worked_view(report, report.single.worked), 80)
    heaviest = max(w["row"], key=lambda r: r["weight"])
    assert f"{heaviest['exp']:.4f}" in text and f"{w['row'][3]['exp']:.4f}" in text
    n_hidden = len(w["row"]) - MAX_SOFTMAX_ROWS
    assert say("attn", "worked_hidden_keys", n=n_hidden, rest=0.0).split(";")[0] in text
    assert f"{w['sum_exp']:.4f}" in text


def synthetic_report(head_weights: list[torch.Tensor]) -> AttentionReport:
    n = head_weights[0].shape[0]
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    heads = [HeadReport(layer=0, head=h, scale=0.125, scale_text="1/√64", weights=w.tolist(),
                        scores=[[v if k else None for v, k in zip(r, kr)] for r, kr in zip(w.tolist(), mask.tolist())],
                        focus=focus_of(w, n - 1), pattern=pattern(w)) for h, w in enumerate(head_weights)]
    texts = ["A", " b", " c", " d", " e", " f"][:n]
    return AttentionReport(model={"name": "toy"}, prompt="".join(texts), focus_position=n - 1, tokens=texts,
                           token_ids=list(range(n)), mask=mask.tolist(), all_heads=True, overview=True,
                           layers=[LayerReport(0, heads)])


def one_hot(n: int, pick) -> torch.Tensor:
    w = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        w[i, pick(i)] = 1.0
    return w


def test_overview_names_each_heads_pattern():
    report = synthetic_report([one_hot(6, lambda i: max(i - 1, 0)), one_hot(6, lambda i: 0),
                               one_hot(6, lambda i: i)])
    text = draw(overview(report, report.layers[0]), 80)
    lines = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0].isdigit()}
    assert say("attn", "pattern_previous") in lines["0"] and "'␣e'@4" in lines["0"]
    assert say("attn", "pattern_first") in lines["1"] and "'A'@0" in lines["1"]
    assert say("attn", "pattern_self") in lines["2"] and "'␣f'@5" in lines["2"]
