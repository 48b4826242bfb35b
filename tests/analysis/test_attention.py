"""Attention analysis: pattern names for hand-built routing tables."""

import pytest
import torch

from tracegpt.analysis.attention import pattern

# --- the pattern names ----------------------------------------------------------------------------------


def one_hot_rows(n, pick):
    w = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        w[i, pick(i)] = 1.0
    return w


@pytest.mark.parametrize("pick, name", [(lambda i: max(i - 1, 0), "previous"), (lambda i: 0, "first"),
                                        (lambda i: i, "self")])
def test_sharp_heads_are_named(pick, name):
    assert pattern(one_hot_rows(6, pick)).name == name


def peaked_rows(n, pick, share):
    """Each row gives `share` to one key and spreads the rest evenly over the others it may read."""
    w = torch.zeros(n, n, dtype=torch.float64)
    w[0, 0] = 1.0
    for i in range(1, n):
        w[i, : i + 1] = (1 - share) / i
        w[i, pick(i)] = share
    return w


def test_a_head_that_mostly_looks_back_is_not_called_diffuse():
    assert pattern(peaked_rows(8, lambda i: i - 1, 0.6)).name == "previous"


def test_a_head_split_between_two_places_is_mixed():
    n = 12
    w = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        w[i, : i + 1] = 0.2 / (i + 1)
        w[i, 0] += 0.4
        w[i, max(i - 1, 0)] += 0.4
        w[i, i] += 1 - w[i].sum()  # row 0 has one key, which takes everything
    assert pattern(w).name == "mixed"


def test_even_rows_are_diffuse_and_one_token_is_single():
    even = torch.tril(torch.ones(6, 6, dtype=torch.float64))
    even /= even.sum(dim=1, keepdim=True)
    assert pattern(even).name == "diffuse"
    assert pattern(torch.ones(1, 1, dtype=torch.float64)).name == "single"
