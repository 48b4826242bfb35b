"""The attribute view: the largest parts each way, the heads' grid, the sum against the logit, the note on σ."""

import pytest
from conftest import draw

from tracegpt.analysis.attribution import attribute
from tracegpt.views.attribute import largest, part_label, render
from tracegpt.views.grid import signed


@pytest.fixture(scope="module")
def split(lm):
    return attribute(lm, "I love")


@pytest.mark.parametrize("width", [40, 80, 140])
@pytest.mark.parametrize("color_system", ["truecolor", "standard", None])
def test_it_fits_every_width_and_colour_system(split, width, color_system):
    text = " ".join(draw(render(split), width, color_system).split())
    assert "Where the logit of '␣you' comes from" in text
    assert f"the model's own logit is {split.logit:.4f}" in text and "held at this run's value" in text


def test_the_largest_parts_each_way_are_listed_with_the_rest_summed(split):
    up, down, rest = largest(split)
    assert up[0].value == max(t.value for t in split.terms) and down[-1].value == min(t.value for t in split.terms)
    assert len(up) + len(down) + len(rest) == len(split.terms)
    text = draw(render(split), 100)
    for t in up + down:
        assert f"{part_label(t)} " in text and f"{t.value:+.3f}" in text
    assert f"… {len(rest)} smaller parts {sum(t.value for t in rest):+.3f}" in " ".join(text.split())


def test_the_heads_grid_shows_every_head(split):
    text = draw(render(split), 100)
    grid = split.heads()
    for layer, row in enumerate(grid):
        line = next(line for line in text.splitlines() if line.startswith(f"block {layer} "))
        assert line.split()[2:] == [f"{v:+.2f}" for v in row]


def test_a_difference_and_a_neuron_split_are_drawn(lm):
    a = attribute(lm, "I love", vs=" thee", neurons=3)
    text = " ".join(draw(render(a), 80).split())
    assert "Why '␣you' beats '␣thee'" in text and f"The difference is {a.logit:.2f}" in text
    assert "FFN 3 (" in text and "split into its 1024 neurons" in text and f"#{a.neurons.top()[0][0].index}" in text
    assert "--neurons" not in text.split("neurons:")[-1]  # no hint to do what was just done


def test_the_signed_scale_keeps_its_order():
    scale = signed(2.0)
    assert list(scale.bounds) == sorted(scale.bounds) and scale.bounds[0] < 0 < scale.bounds[-1]
    assert scale.style(0.0, "truecolor") == "" and "red" in scale.style(-3.0, "standard")
    assert len(scale.labels) == len(scale.rich) == len(scale.plain) == len(scale.bounds) + 1
