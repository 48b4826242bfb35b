"""The embedded model: really trained, quality checked on held-out Shakespeare, errors named."""

from pathlib import Path

import pytest
import torch

from tracegpt import loader
from tracegpt.analysis.scoring import score
from tracegpt.errors import ParameterError, UsageError

# The held-out tails (the last 5% the training never saw) of Hamlet, Twelfth Night and the Sonnets.
HELDOUT = Path(__file__).parent / "data" / "heldout_tails.txt"


# The target: <= 1.9 bits/char on held-out text (the card says 1.728). The shipped model
# measures 1.735 on this slice; the bound leaves it a little room and fails a retrained model
# that does worse.
CARD_BITS_PER_CHAR = 1.9
SLICE_BITS_PER_CHAR = 1.77


def test_card_describes_the_model(lm):
    card = lm.card
    assert card["config"]["n_layer"] >= 4 and card["config"]["n_head"] >= 4 and card["config"]["n_ctx"] >= 256
    assert {"hamlet", "twelfth_night", "sonnets"} <= set(card["corpus"]["works"])
    assert card["corpus"]["heldout"].startswith("the last 5% of every work")
    assert card["training"]["steps"] > 0 and card["heldout"]["bits_per_char"] <= CARD_BITS_PER_CHAR
    assert (loader.ASSETS / card["weights"]).stat().st_size <= 16 * 2**20


def bits_per_char(lm, text: str) -> float:
    """Held-out cross-entropy as the card measures it, by the scoring function `tracegpt score` uses:
    windows of n_ctx tokens, stride n_ctx/2, each token scored once, with at least n_ctx/2 tokens of
    context after the first window; bits per UTF-8 byte of the scored tokens."""
    return score(text, lm, top_k=0).summary.bits_per_char


def test_heldout_quality(lm):
    text = HELDOUT.read_text()
    bpc = bits_per_char(lm, text)
    assert bpc <= SLICE_BITS_PER_CHAR, f"{bpc:.3f} bits/char on the held-out tails"
    # The measure can fail: shuffled words are far less predictable.
    words = text.split(" ")
    shuffled = " ".join(words[i] for i in torch.randperm(len(words), generator=torch.Generator().manual_seed(0)))
    assert bits_per_char(lm, shuffled) > bpc + 0.5


def test_unknown_model_and_device_are_named():
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        loader.load("nope")
    with pytest.raises(ParameterError, match="^device 'tpu' is not a device") as e:
        loader.load(device="tpu")
    assert e.value.flag == "--device" and e.value.exit_code == 2
    with pytest.raises(ParameterError, match="^dtype 'int3' is not supported") as e:
        loader.load(dtype="int3")
    assert e.value.flag == "--dtype"
    with pytest.raises(ParameterError, match="^model ./no/such: no such file") as e:
        loader.load("./no/such")
    assert e.value.flag == "--model"


def test_environment_variable_picks_the_default(monkeypatch):
    monkeypatch.setenv("TRACEGPT_MODEL", "nope")
    with pytest.raises(UsageError, match="'nope'"):
        loader.load()
