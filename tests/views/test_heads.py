"""The heads view: a grid of roles, a table of scores and ablations, and what they say about copying."""

import pytest
from conftest import draw
from toy_induction import induction_model

from tracegpt.analysis.heads import head_map
from tracegpt.views.grid import Grid
from tracegpt.views.heads import cell, render, role_scale


@pytest.fixture(scope="module")
def embedded(lm):
    return head_map(lm)


@pytest.fixture(scope="module")
def toy():
    return head_map(induction_model(), half=16)


@pytest.mark.parametrize("width", [40, 80, 140])
@pytest.mark.parametrize("color_system", ["truecolor", "standard", None])
def test_it_fits_every_width_and_colour_system(embedded, toy, width, color_system):
    for m in (embedded, toy):
        draw(render(m), width, color_system)


def test_the_embedded_model_is_said_not_to_copy(embedded):
    text = " ".join(draw(render(embedded), 100).split())
    assert "The repeated half is not easier" in text and "No head reaches 30% induction" in text
    assert f"{embedded.loss_other:.2f} nats per token on the first half" in text
    for h in embedded.heads:
        assert cell(h).startswith("(")  # no role: the strongest job in brackets


def test_a_copying_model_names_its_induction_head_and_what_removing_it_costs(toy):
    text = " ".join(draw(render(toy), 100).split())
    assert "The repeated half is" in text and "nats lower: the model copies" in text
    ind = toy.head(1, 0)
    assert (f"Head 1.0 has the highest induction score (100%); removing it raises the repeated half's loss from "
            f"{toy.loss_repeated:.2f} to {ind.loss_ablated:.2f}") in text
    assert cell(ind) == "ind 100%" and cell(toy.head(0, 0)) == "prev 100%"
    row = next(line for line in draw(render(toy), 100).splitlines() if line.split()[:1] == ["1.0"])
    assert "induction" in row and f"{ind.loss_ablated - toy.loss_repeated:+.2f}" in row


def test_a_prompt_view_speaks_of_repeated_positions(lm):
    text = " ".join(draw(render(head_map(lm, prompt="I love thee, I love thee")), 100).split())
    assert "where the current token occurred before" in text and "Δ rest" in text
    plain = " ".join(draw(render(head_map(lm, prompt="I love thee")), 100).split())
    assert "No token of this text occurs twice" in plain and "Δ rep" not in plain


def test_a_big_model_says_which_heads_were_ablated(monkeypatch):
    from tracegpt.analysis import heads as H

    monkeypatch.setattr(H, "ABLATE_ALL", 2)
    monkeypatch.setattr(H, "CHECK_TOP", 1)
    m = head_map(induction_model(), half=16, n_probes=8)
    text = " ".join(draw(render(m), 100).split())
    assert "Ablated: 2 of the 4 heads" in text and "Δ 1st" not in text
    assert "removing it raises the repeated half's loss from 0.00 to 2.83" in text



def test_grid_cells_wider_than_ten_columns_keep_to_the_width():
    # '(prev 9.7%)' is 11 cells: a grid of such labels still fits, windowing its columns where it must.
    labels = [["(prev 9.7%)"] * 12 for _ in range(3)]
    grid = Grid(["block 0", "block 1", "block 2"], [str(h) for h in range(12)], [[0.0] * 12] * 3, role_scale(),
                labels=labels)
    for width in (80, 140, 160):
        lines = draw(grid, width).splitlines()  # draw checks the width
        assert [line.split()[:2] for line in lines[1:4]] == [["block", str(i)] for i in range(3)]
        assert ("do not fit" in " ".join(lines)) == (width < 160)
