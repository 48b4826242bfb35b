"""The scoring function: transformers' loss in one window, a sliding-window loss worked by hand, every token once."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import tracegpt
from tracegpt import costs, loader
from tracegpt.analysis import scoring
from tracegpt.analysis.scoring import compare, plan_windows, score, score_tokens
from tracegpt.errors import ParameterError, UsageError

transformers = pytest.importorskip("transformers")

TEXT = (Path(__file__).parent.parent / "data" / "twelfth_night_act2.txt").read_text()
LN2 = math.log(2)


def within_context(lm, text: str) -> str:
    """The longest start of `text`, cut at a space, that fits the model's context."""
    cut = text[: 4 * lm.config.n_ctx]
    while len(lm.encode(cut)) > lm.config.n_ctx:
        cut = cut[: cut.rindex(" ", 0, len(cut) - 1)]
    return cut


# --- parity with transformers ---


@pytest.mark.parametrize("name", ["3L3H-tied", "2L5H-untied-flags"])
def test_one_window_totals_transformers_loss(made, name):
    folder, hf = made[name]
    lm = loader.load(str(folder))
    text = within_context(lm, TEXT)
    s = score(text, lm)
    ids = torch.tensor([lm.encode(text)])
    n = ids.shape[1]
    assert n > 100 and s.summary.plan.n_windows == 1
    with torch.no_grad():
        out = hf(ids, labels=ids)  # transformers shifts the labels: the mean over the n - 1 predicted tokens
        per_token = torch.nn.functional.cross_entropy(out.logits[0, :-1], ids[0, 1:], reduction="none")
    expected = out.loss.item() * (n - 1)
    ours = s.summary.total_bits * LN2
    assert abs(ours - expected) <= 1e-4 * expected
    assert np.allclose(s.scored.bits[1:] * LN2, per_token.double().numpy(), rtol=1e-4, atol=1e-4)
    ranks = (out.logits[0, :-1] > out.logits[0, :-1].gather(1, ids[0, 1:, None])).sum(-1) + 1
    assert s.scored.ranks[1:].tolist() == ranks.tolist()


def by_hand(hf, ids: list[int], n_ctx: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sliding windows as the card describes them, with transformers: read n_ctx tokens from `start`, keep the
    predictions of tokens no earlier window predicted, move on by `stride`. Per position: nats, times, context."""
    n = len(ids)
    nats, times, context = np.zeros(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    done, start = 1, 0  # the tokens before `done` are scored; the first one never is
    while done < n:
        window = ids[start : start + n_ctx]
        with torch.no_grad():
            logp = torch.log_softmax(hf(torch.tensor([window])).logits[0].double(), dim=-1)
        for p in range(done, min(start + n_ctx + 1, n)):  # row p - start - 1 predicts the token at p
            nats[p] += -logp[p - start - 1, ids[p]].item()
            times[p] += 1
            context[p] = p - start
        done = min(start + n_ctx + 1, n)
        start += stride
    return nats, times, context


@pytest.mark.parametrize("stride", [None, 37, 128])
def test_a_text_longer_than_the_context_is_scored_as_sliding_windows_by_hand(made, stride):
    folder, hf = made["3L3H-tied"]
    lm = loader.load(str(folder))
    n_ctx = lm.config.n_ctx
    text = TEXT[:2500]
    ids = lm.encode(text)
    assert len(ids) > 4 * n_ctx
    s = score(text, lm, stride=stride)
    step = stride or n_ctx // 2
    nats, times, context = by_hand(hf, ids, n_ctx, step)
    assert times[0] == 0 and (times[1:] == 1).all()
    assert (context[n_ctx + 1 :] >= n_ctx - step).all()
    assert abs(s.summary.total_bits * LN2 - nats.sum()) <= 1e-4 * nats.sum()
    assert np.allclose(s.scored.bits[1:] * LN2, nats[1:], rtol=1e-4, atol=1e-4)
    assert s.scored.context[1:].tolist() == context[1:].tolist()
    assert s.summary.plan.min_context >= n_ctx - step


# --- the windows ---


@pytest.mark.parametrize("n, window, stride", [(2, 1, 1), (5, 256, 128), (256, 256, 128), (257, 256, 128),
                                               (258, 256, 128), (300, 256, 256), (1000, 128, 1), (999, 100, 33)])
def test_every_token_but_the_first_is_scored_once_with_the_context_promised(n, window, stride):
    plan = plan_windows(n, window, stride)
    seen = np.zeros(n, dtype=int)
    for i, w in enumerate(plan.windows):
        assert w.start == i * stride and 1 <= w.n_read <= window and w.first > w.start
        seen[w.first : w.stop] += 1
    assert seen[0] == 0 and (seen[1:] == 1).all()
    assert all(w.min_context >= window - stride for w in plan.windows[1:])
    assert (plan.min_context is None) == (plan.n_windows == 1)


# --- what each row says ---


def test_rows_summary_and_text_agree(lm):
    text = "My lord, I love thee; and so, good night, sweet prince."
    s = score(text, lm)
    rows = s.tokens
    assert [r.position for r in rows] == list(range(1, len(lm.encode(text))))
    assert "".join([s.texts[0]] + [r.text for r in rows]) == text
    for r in rows:
        assert math.isclose(r.prob, 2.0 ** -r.bits, rel_tol=1e-9)
        assert (r.rank == 1) == (r.top[0].id == r.id)
        assert r.top[0].prob >= r.prob and [c.prob for c in r.top] == sorted((c.prob for c in r.top), reverse=True)
        assert r.context == r.position  # one window: each token read all the text before it
    summary = s.summary
    first_bytes = len(s.texts[0].encode())
    assert summary.n_bytes == len(text.encode()) - first_bytes
    assert math.isclose(summary.total_bits, sum(r.bits for r in rows), rel_tol=1e-12)
    assert math.isclose(summary.bits_per_char, summary.total_bits / summary.n_bytes)
    assert math.isclose(summary.perplexity, 2 ** summary.bits_per_token)
    assert summary.n_top1 == sum(r.rank == 1 for r in rows)


def test_rank_counts_the_tokens_the_model_preferred(lm):
    text = "To be, or not to be, that is the question"
    s = score(text, lm)
    ids = lm.encode(text)
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids]))[0]
    for p in range(1, len(ids)):
        row = logits[p - 1]
        assert s.scored.ranks[p] == int((row > row[ids[p]]).sum()) + 1


def test_most_surprising_are_the_most_bits_first(lm):
    s = score("But soft, what light through yonder window breaks?", lm)
    worst = s.most_surprising(4)
    assert [r.bits for r in worst] == sorted((r.bits for r in s.tokens), reverse=True)[:4]


def test_a_worked_position_is_its_rows_cross_entropy(lm):
    text = "To be, or not to be, that is the question"
    s = score(text, lm, position=-1)
    w = s.worked
    n = len(lm.encode(text))
    assert w.position == n - 1 and w.token == s.row(n - 1)
    assert math.isclose(w.bits, w.token.bits, rel_tol=1e-5) and math.isclose(w.prob, w.token.prob, rel_tol=1e-4)
    assert math.isclose(w.nats, w.logsumexp - w.true_logit) and w.true.rank == w.token.rank
    with torch.no_grad():
        probs = torch.softmax(lm.model(torch.tensor([lm.encode(text)]))[0, -2], dim=-1)
    for c in w.candidates:
        assert math.isclose(c.prob, probs[c.id].item(), rel_tol=1e-4)
    assert [c.rank for c in w.candidates] == list(range(1, len(w.candidates) + 1))
    assert sum(c.is_true for c in w.candidates) == (1 if w.true_listed else 0)


def test_dropout_is_off_and_the_model_is_left_as_it_was(lm):
    text = "O Mistress mine, where are you roaming?"
    expected = score(text, lm).summary.total_bits
    assert lm.config.dropout > 0  # the embedded model trained with dropout: on in train mode
    lm.model.train()
    try:
        again = score(text, lm).summary.total_bits
        assert lm.model.training
    finally:
        lm.model.eval()
    assert again == expected


def test_the_python_api_is_this_function(lm):
    assert tracegpt.score is score
    s = tracegpt.score("To be, or not to be", model=lm)
    assert s.summary.model == "shakespeare" and s.summary.n_scored == s.summary.n_tokens - 1


def test_score_tokens_takes_ids_and_a_bare_model():
    """The training command scores token ids with the GPT it is training, no tokenizer."""
    from test_model import ODD_CONFIGS, random_model

    model = random_model(ODD_CONFIGS[0])
    ids = torch.randint(0, 1001, (100,), generator=torch.Generator().manual_seed(0))
    scored = score_tokens(model, ids, stride=7, top_k=0)
    assert scored.n_scored == 99 and scored.top_ids.shape == (100, 0)
    assert scored.plan.n_windows == math.ceil((100 - 41) / 7) + 1
    assert math.isclose(scored.nats_per_token, scored.total_bits * LN2 / 99)


# --- bad input ---


def test_nothing_to_score_is_said(lm):
    with pytest.raises(UsageError, match="empty"):
        score("", lm)
    with pytest.raises(UsageError, match="one token"):
        score("I", lm)


@pytest.mark.parametrize("kwargs, parameter, fragment", [
    (dict(stride=0), "stride", "1..256"),
    (dict(window=100, stride=101), "stride", "1..100"),
    (dict(window=0), "window", "1..256"),
    (dict(window=257), "window", "1..256"),
    (dict(position=0), "position", "position 0 has nothing before it"),
    (dict(position=5), "position", "1..4"),
    (dict(position=-5), "position", "-4..-1"),
    (dict(top_k=-1), "top_k", "at least 0"),
])
def test_out_of_range_values_name_their_parameter(lm, kwargs, parameter, fragment):
    with pytest.raises(ParameterError, match=fragment) as e:
        score("To be, or not", lm, **kwargs)  # 5 tokens
    assert e.value.parameter == parameter


def test_a_text_that_would_not_fit_in_memory_is_refused_before_any_forward(lm, monkeypatch):
    calls = []
    monkeypatch.setattr(lm.model, "forward", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(costs, "memory_available", lambda: 100_000)
    need = scoring.score_bytes(lm.config, 7, 256)
    assert need > 100_000
    with pytest.raises(UsageError, match=r"needs about \d+\.\d MB, more than the 0\.1 MB of memory available") as e:
        score("To be, or not to be", lm)
    assert f"{need / 1e6:.1f} MB" in str(e.value) and "smaller window" in str(e.value)
    assert calls == []


def test_the_estimate_grows_with_the_window_and_the_text(lm):
    c = lm.config
    assert scoring.score_bytes(c, 10_000, 256) > scoring.score_bytes(c, 10_000, 128) > scoring.score_bytes(c, 10, 128)
    assert scoring.score_bytes(c, 10_000, 256) >= 256 * c.vocab_size * 4 * 3  # a window's logits, in float32


# --- two models on one text ---


def test_a_model_compared_with_itself_agrees_everywhere(lm):
    s = score("O Mistress mine, where are you roaming?", lm)
    c = compare(s, s)
    assert c.n_first_better == 0 and all(span.difference == 0 for span in c.spans)
    assert c.bits_per_char[0] == c.bits_per_char[1]


def test_words_carry_every_bit_of_both_tokenizers(lm, made):
    text = "O Mistress mine, where are you roaming? O, stay and hear; your true love's coming."
    other = loader.load(str(made["3L3H-tied"][0]))
    a, b = score(text, lm), score(text, other)
    assert a.texts[0] == b.texts[0] == "O"  # the unscored first token is the first word for both
    assert a.scored.n_tokens != b.scored.n_tokens  # the tokenizers differ
    c = compare(a, b)
    assert "".join(span.text for span in c.spans) == text[1:]
    assert c.spans[0].start == 1 and c.spans[-1].end == len(text.encode())
    for i, s in enumerate((a, b)):
        assert math.isclose(sum(span.bits[i] for span in c.spans), s.summary.total_bits, rel_tol=1e-9)
    assert c.n_bytes == a.summary.n_bytes == b.summary.n_bytes
    worst = c.disagreements(3)
    assert [abs(x.difference) for x in worst] == sorted((abs(x.difference) for x in c.spans), reverse=True)[:3]


def test_scores_of_different_texts_are_not_compared(lm):
    with pytest.raises(UsageError, match="different texts"):
        compare(score("To be, or not", lm), score("To be, or not to be", lm))
