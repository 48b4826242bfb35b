"""The few statistics the views print, defined once so a reader can reproduce every figure."""

from __future__ import annotations

import torch


def std(t: torch.Tensor) -> float:
    """The population standard deviation (divided by n, not n - 1): the one LayerNorm divides by,
    so `numpy.std` of a saved vector gives the printed figure."""
    return t.float().std(correction=0).item()


def norm(t: torch.Tensor) -> float:
    """The Euclidean (L2) length of a vector."""
    return t.float().norm().item()
