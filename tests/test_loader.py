"""The embedded model: really trained, quality checked on held-out Shakespeare, errors named."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tracegpt import loader
from tracegpt.errors import UsageError

HELDOUT = Path(__file__).parent / "data" / "heldout_twelfth_night.txt"


def test_card_describes_the_model(lm):
    card = lm.card
    assert card["config"]["n_layer"] >= 4 and card["config"]["n_head"] >= 4 and card["config"]["n_ctx"] >= 256
    assert "twelfth_night" in card["corpus"]["heldout_works"]
    assert "twelfth_night" not in card["corpus"]["train_works"]
    assert card["training"]["steps"] > 0 and card["heldout"]["bits_per_char"] <= 1.9
    assert (loader.ASSETS / card["weights"]).stat().st_size <= 16 * 2**20


def bits_per_char(lm, text: str) -> float:
    ids = torch.tensor(lm.encode(text))
    n_ctx = lm.config.n_ctx
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, n_ctx):
            window = ids[start : start + n_ctx + 1]
            logits = lm.model(window[None, :-1])[0]
            total += F.cross_entropy(logits, window[1:], reduction="sum").item()
            count += len(window) - 1
    # Every token but the first is predicted; charge the characters of those tokens only.
    predicted_chars = len(text) - len(lm.token_text(int(ids[0])))
    return total / predicted_chars / math.log(2)


def test_heldout_quality(lm):
    text = HELDOUT.read_text()
    bpc = bits_per_char(lm, text)
    assert bpc <= 1.9, f"{bpc:.3f} bits/char on held-out Twelfth Night"
    # The measure can fail: shuffled words are far less predictable.
    words = text.split(" ")
    shuffled = " ".join(words[i] for i in torch.randperm(len(words), generator=torch.Generator().manual_seed(0)))
    assert bits_per_char(lm, shuffled) > bpc + 0.5


def test_unknown_model_and_device_are_named():
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        loader.load("nope")
    with pytest.raises(UsageError, match="--device"):
        loader.load(device="tpu")
    with pytest.raises(UsageError, match="--dtype"):
        loader.load(dtype="int3")


def test_environment_variable_picks_the_default(monkeypatch):
    monkeypatch.setenv("TRACEGPT_MODEL", "nope")
    with pytest.raises(UsageError, match="'nope'"):
        loader.load()
