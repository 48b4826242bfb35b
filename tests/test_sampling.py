"""The sampling stage on hand-made distributions, where the right answer is known exactly."""

import math
import re

import pytest
import torch

from tracegpt.errors import ParameterError
from tracegpt.sampling import SamplingSettings, sample, top_p_count


def logits_of(*probs, dtype=torch.float32):
    return torch.tensor(probs, dtype=torch.float64).log().to(dtype)


def draws(logits, settings, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [sample(logits, settings, g) for _ in range(n)]


# --- top-p: the smallest set whose mass reaches p ---


@pytest.mark.parametrize("p, expected", [
    (0.3, 1), (0.5, 1),  # the first token alone reaches 0.5 exactly
    (0.51, 2), (0.8, 2),  # 0.5 + 0.3 reaches 0.8 exactly: the third is not needed
    (0.80001, 3), (0.95, 3), (1.0, 3),
])
def test_top_p_count_keeps_the_smallest_set_reaching_p(p, expected):
    assert top_p_count(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), p) == expected


def test_top_p_count_exact_boundary_despite_rounding():
    # In floating point 0.7 + 0.2 is 0.8999999999999999: it still reaches 0.9.
    assert top_p_count(torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64), 0.9) == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("probs, p", [((0.5, 0.3, 0.2), 0.8), ((0.7, 0.2, 0.1), 0.9), ((0.6, 0.1, 0.3), 0.9)])
def test_top_p_exact_boundary_through_logits(dtype, probs, p):
    # Through log, softmax and cumsum the first two come back a hair off p; they must still count as reaching it.
    logits = logits_of(*probs, dtype=dtype)
    top_two = sorted(range(3), key=lambda i: -probs[i])[:2]
    results = draws(logits, SamplingSettings(top_p=p), n=400)
    assert {r.n_top_p for r in results} == {2}
    assert {r.token_id for r in results} == set(top_two)
    first = next(r for r in results if r.token_id == top_two[0])
    assert first.prob == pytest.approx(probs[top_two[0]] / p, abs=1e-6)
    assert first.mass_top_p == pytest.approx(p, abs=1e-6)


def test_top_p_on_random_distributions_is_minimal_and_sufficient():
    g = torch.Generator().manual_seed(1)
    for trial in range(30):
        probs = torch.softmax(torch.randn(50, generator=g, dtype=torch.float64) * 2, dim=0)
        desc = probs.sort(descending=True).values
        p = float(torch.rand((), generator=g, dtype=torch.float64)) * 0.98 + 0.01
        n = top_p_count(desc, p)
        assert desc[:n].sum() >= p - 1e-6, (trial, p, n)
        assert desc[: n - 1].sum() < p, (trial, p, n)


def test_top_p_never_draws_outside_the_kept_set():
    logits = logits_of(0.4, 0.25, 0.15, 0.1, 0.06, 0.04)
    results = draws(logits, SamplingSettings(top_p=0.7), n=500)
    assert {r.token_id for r in results} == {0, 1, 2}  # 0.4 + 0.25 = 0.65 < 0.7, so three tokens


# --- top-k, temperature, greedy ---


def test_top_k_1_is_greedy():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(100, generator=g)
        r = sample(logits, SamplingSettings(top_k=1), g)
        assert r.token_id == int(logits.argmax())
        assert r.prob == 1.0
        assert r.n_top_k == 1


def test_top_k_cuts_then_renormalises():
    logits = logits_of(0.4, 0.3, 0.2, 0.1)
    results = draws(logits, SamplingSettings(top_k=2), n=300)
    assert {r.token_id for r in results} == {0, 1}
    r = next(r for r in results if r.token_id == 1)
    assert r.prob == pytest.approx(0.3 / 0.7, abs=1e-6)
    assert [c.in_top_k for c in r.candidates] == [True, True, False, False]
    assert [c.prob > 0 for c in r.candidates] == [True, True, False, False]


def test_top_k_larger_than_the_vocabulary_keeps_everything():
    r = sample(logits_of(0.6, 0.4), SamplingSettings(top_k=50), torch.Generator().manual_seed(0))
    assert r.n_top_k == 2


def test_temperature_towards_zero_approaches_greedy():
    logits = torch.tensor([2.0, 1.9, 1.0, -1.0])
    chosen_prob = []
    for t in (2.0, 1.0, 0.5, 0.1, 0.01):
        r = sample(logits, SamplingSettings(temperature=t), torch.Generator().manual_seed(0))
        chosen_prob.append(r.candidates[0].p_temperature)  # the argmax's share at this temperature
    assert chosen_prob == sorted(chosen_prob)
    assert chosen_prob[-1] > 0.9999
    results = draws(logits, SamplingSettings(temperature=1e-3), n=200)
    assert {r.token_id for r in results} == {0}


def test_tiny_temperature_does_not_overflow():
    r = sample(torch.tensor([3.0, 1.0, 2.0]), SamplingSettings(temperature=1e-300), torch.Generator().manual_seed(0))
    assert r.token_id == 0
    assert r.prob == 1.0
    assert all(math.isfinite(c.p_temperature) for c in r.candidates)


def test_temperature_above_one_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    hot = sample(logits, SamplingSettings(temperature=3.0), torch.Generator().manual_seed(0))
    cold = sample(logits, SamplingSettings(temperature=1.0), torch.Generator().manual_seed(0))
    assert hot.candidates[0].p_temperature < cold.candidates[0].p_temperature


@pytest.mark.parametrize("settings", [SamplingSettings(greedy=True), SamplingSettings(temperature=0)])
def test_greedy_takes_the_argmax_and_reports_the_model_probability(settings):
    logits = torch.tensor([0.5, 3.0, 1.0, 2.9])
    r = sample(logits, settings, None)
    assert r.greedy and r.draw is None
    assert r.token_id == 1
    # Greedy works in float32 (no cumulative sums to keep exact): its rounding, ~1e-7.
    assert r.prob == pytest.approx(torch.softmax(logits.double(), 0)[1].item(), abs=1e-6)


# --- the draw ---


def test_the_draw_falls_in_the_chosen_tokens_slice():
    g = torch.Generator().manual_seed(5)
    for _ in range(100):
        logits = torch.randn(30, generator=g)
        r = sample(logits, SamplingSettings(temperature=0.9, top_k=10, top_p=0.8), g)
        c = r.chosen
        assert c.prob == r.prob
        assert c.cum_start <= r.draw < c.cum_start + c.prob + 1e-12
        kept = [c for c in r.candidates if c.prob > 0]
        assert sum(c.prob for c in kept) == pytest.approx(1.0, abs=1e-9)


def test_frequencies_follow_the_probabilities():
    results = draws(logits_of(0.5, 0.3, 0.2), SamplingSettings(), n=4000, seed=3)
    counts = [sum(r.token_id == i for r in results) / len(results) for i in range(3)]
    assert counts == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def test_same_seed_same_draws_other_seed_other_draws():
    logits = torch.randn(200, generator=torch.Generator().manual_seed(0))
    a = [r.token_id for r in draws(logits, SamplingSettings(), n=50, seed=11)]
    b = [r.token_id for r in draws(logits, SamplingSettings(), n=50, seed=11)]
    c = [r.token_id for r in draws(logits, SamplingSettings(), n=50, seed=12)]
    assert a == b
    assert a != c


def test_a_chosen_token_beyond_the_leading_candidates_is_still_recorded():
    logits = torch.zeros(100)  # uniform: the draw lands far down the list most of the time
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        r = sample(logits, SamplingSettings(), g, keep=5)
        assert r.chosen.id == r.token_id
        assert len(r.candidates) in (5, 6)


# --- settings ---


@pytest.mark.parametrize("settings, fragment", [
    (SamplingSettings(temperature=-0.5), "--temperature -0.5 is out of range"),
    (SamplingSettings(temperature=float("nan")), "--temperature nan"),
    (SamplingSettings(temperature=float("inf")), "--temperature inf"),
    (SamplingSettings(top_p=1.5), "--top-p 1.5 is out of range; it must be in (0, 1]"),
    (SamplingSettings(top_p=0), "--top-p 0 is out of range"),
    (SamplingSettings(top_p=-0.1), "--top-p -0.1"),
    (SamplingSettings(top_k=0), "--top-k 0 is out of range; it must be at least 1"),
])
def test_bad_settings_are_named_with_their_range(settings, fragment):
    # Named by parameter in Python (temperature, top_p), by option on the command line (--top-p).
    with pytest.raises(ParameterError) as e:
        settings.check()
    assert fragment in e.value.said_as(e.value.flag)
    assert str(e.value).startswith(e.value.parameter + " ") and e.value.parameter in ("temperature", "top_p", "top_k")


@pytest.mark.parametrize("settings", [SamplingSettings(), SamplingSettings(temperature=0), SamplingSettings(top_p=1),
                                      SamplingSettings(top_k=1, top_p=1e-9, temperature=50)])
def test_good_settings_pass(settings):
    settings.check()


@pytest.mark.parametrize("temperature", [0.001, 1e-300, 1e300])
def test_candidates_are_the_highest_logits_whatever_the_temperature(temperature):
    # At extreme temperatures p underflows or ties for most tokens; the rows are still ordered by logit.
    logits = torch.randn(4096, generator=torch.Generator().manual_seed(3)) * 3
    s = sample(logits, SamplingSettings(temperature=temperature), torch.Generator().manual_seed(0))
    shown = [c.logit for c in s.candidates]
    assert shown == sorted(shown, reverse=True)  # the drawn token, if it ranks lower, comes last
    assert [c.id for c in s.candidates[:10]] == torch.topk(logits, 10).indices.tolist()


@pytest.mark.parametrize("value, shown", [(1.0000001, "1.0000001"), (1.5, "1.5"), (0.0, "0"), (-1e-300, "-1e-300")])
def test_a_value_out_of_range_is_printed_as_given(value, shown):
    with pytest.raises(ParameterError, match=f"^top_p {re.escape(shown)} is out of range"):
        SamplingSettings(top_p=value).check()
