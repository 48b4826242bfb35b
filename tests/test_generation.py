"""The generation loop on the embedded model: the cache changes the cost, never the result.

The embedded model may be retrained while these run, so nothing here expects particular
tokens: every check compares two ways of computing the same thing.
"""

import pytest
import torch

from tracegpt.errors import ParameterError, UsageError
from tracegpt.generation import AttentionSpec, Generation, PreallocatedKVCache
from tracegpt.model import KVCache
from tracegpt.sampling import SamplingSettings
from tracegpt.tracer import Tracer

GREEDY = SamplingSettings(greedy=True)
PROMPT = "ROMEO:\nI love thee, and"


def run(lm, ids, settings=GREEDY, n=12, **kw):
    gen = Generation(lm, ids, settings, n, stop_at_end_of_text=kw.pop("stop_at_end_of_text", False), **kw)
    return gen, list(gen)


def assert_same_greedy_run(cached, uncached):
    """Token for token equal, logits within 1e-4. Diverging is allowed only at a genuine tie."""
    for a, b in zip(cached, uncached):
        assert torch.allclose(a.logits, b.logits, atol=1e-4), (a.number, (a.logits - b.logits).abs().max())
        if a.token_id != b.token_id:
            top2 = torch.topk(b.logits, 2).values
            assert top2[0] - top2[1] < 1e-4, f"step {a.number}: {a.token_id} != {b.token_id} without a tie"
            return
    assert [s.token_id for s in cached] == [s.token_id for s in uncached]


def long_prompt(lm, n_tokens):
    ids = lm.encode("To be, or not to be, that is the question: " * 40)
    assert len(ids) >= n_tokens
    return ids[:n_tokens]


# --- the cache changes nothing but the cost ---


def test_greedy_with_cache_equals_without(lm):
    ids = lm.encode(PROMPT)
    _, cached = run(lm, ids, n=24, use_cache=True)
    _, uncached = run(lm, ids, n=24, use_cache=False)
    assert len(cached) == len(uncached) == 24
    assert_same_greedy_run(cached, uncached)


@pytest.mark.parametrize("n_prompt", [240, 250, 255, 256])
def test_greedy_with_cache_equals_without_near_the_context_limit(lm, n_prompt):
    ids = long_prompt(lm, n_prompt)
    gen_c, cached = run(lm, ids, n=40, use_cache=True)
    gen_u, uncached = run(lm, ids, n=40, use_cache=False)
    room = lm.config.n_ctx - n_prompt + 1
    assert len(cached) == len(uncached) == room
    assert gen_c.stop_reason == gen_u.stop_reason == "context"
    assert cached[-1].position == uncached[-1].position == lm.config.n_ctx  # the last pass read a full context
    assert_same_greedy_run(cached, uncached)


def test_each_step_uses_only_the_last_positions_logits(lm):
    ids = lm.encode(PROMPT)
    _, steps = run(lm, ids, n=5)
    context = list(ids)
    for step in steps:
        with torch.no_grad():
            full = lm.model(torch.tensor([context]))[0, -1]
        assert torch.allclose(step.logits, full, atol=1e-4)
        context.append(step.token_id)


@pytest.mark.parametrize("capacity", [1, 7, 64])  # too small (it must grow), a little short, roomy
def test_preallocated_cache_gives_the_same_logits_as_the_plain_one(lm, capacity):
    ids = lm.encode(PROMPT)
    plain, prealloc = KVCache(lm.config.n_layer), PreallocatedKVCache(lm.config.n_layer, capacity)
    feeds = [ids, [5], [6, 7], [8]]
    with torch.no_grad():
        for feed in feeds:
            a = lm.model(torch.tensor([feed]), cache=plain)
            b = lm.model(torch.tensor([feed]), cache=prealloc)
            assert torch.equal(a, b)
            assert len(plain) == len(prealloc)
    assert plain.nbytes() == prealloc.nbytes()


def test_positions_computed_and_cache_size(lm):
    ids = lm.encode(PROMPT)
    p, n = len(ids), 10
    gen_c, cached = run(lm, ids, n=n, use_cache=True)
    gen_u, uncached = run(lm, ids, n=n, use_cache=False)
    assert [s.n_computed for s in cached] == [p] + [1] * (n - 1)
    assert [s.n_computed for s in uncached] == [p + i for i in range(n)]
    assert [s.cache_length for s in cached] == [p + i for i in range(n)]
    assert {s.cache_length for s in uncached} == {0}
    for gen in (gen_c, gen_u):  # both runs know what the other would have cost
        summary = gen.summary()
        assert summary.positions_with_cache == sum(s.n_computed for s in cached)
        assert summary.positions_without_cache == sum(s.n_computed for s in uncached)
    c = lm.config
    expected_bytes = 2 * c.n_layer * (p + n - 1) * c.d_model * 4
    assert gen_c.summary().cache_bytes == gen_c.cache.nbytes() == expected_bytes
    assert gen_u.summary().cache_bytes == expected_bytes


def test_recorded_new_columns_agree_with_and_without_cache(lm):
    ids = lm.encode(PROMPT)
    _, cached = run(lm, ids, n=3, use_cache=True, record=True)
    _, uncached = run(lm, ids, n=3, use_cache=False, record=True)
    p, n_head = len(ids), lm.config.n_head
    assert cached[0].stages["blocks.0.attn.weights"].shape == (n_head, p, p)
    assert cached[2].stages["blocks.0.attn.weights"].shape == (n_head, 1, p + 2)
    assert cached[2].stages["tokens"].tolist() == [cached[1].token_id]
    for a, b in zip(cached, uncached):
        assert a.stages.keys() == b.stages.keys()
        for name in a.stages:
            assert a.stages[name].shape == b.stages[name].shape, name
            assert torch.allclose(a.stages[name].float(), b.stages[name].float(), atol=1e-4), (a.number, name)


# --- sampling inside the loop ---


def test_same_seed_same_text_different_seeds_different_text(lm):
    ids = lm.encode(PROMPT)
    settings = SamplingSettings(temperature=1.0)
    first = run(lm, ids, settings, n=24, seed=1)[0].new_ids
    again = run(lm, ids, settings, n=24, seed=1)[0].new_ids
    other = run(lm, ids, settings, n=24, seed=2)[0].new_ids
    assert first == again
    assert first != other


def test_sampled_text_is_the_same_with_and_without_cache(lm):
    ids = lm.encode(PROMPT)
    settings = SamplingSettings(temperature=0.9, top_k=50, top_p=0.95)
    cached = run(lm, ids, settings, n=16, seed=4, use_cache=True)[0].new_ids
    uncached = run(lm, ids, settings, n=16, seed=4, use_cache=False)[0].new_ids
    assert cached == uncached


@pytest.mark.parametrize("settings", [SamplingSettings(top_k=1), SamplingSettings(temperature=1e-4),
                                      SamplingSettings(temperature=0)])
def test_top_k_1_and_tiny_temperature_equal_greedy(lm, settings):
    ids = lm.encode(PROMPT)
    greedy = run(lm, ids, GREEDY, n=16)[0].new_ids
    assert run(lm, ids, settings, n=16, seed=9)[0].new_ids == greedy


def test_reported_probability_is_the_one_the_draw_used(lm):
    """Recompute each step's distribution from its logits by hand; the reported prob must match it."""
    ids = lm.encode(PROMPT)
    t, k, p = 0.7, 20, 0.9
    _, steps = run(lm, ids, SamplingSettings(temperature=t, top_k=k, top_p=p), n=10, seed=3)
    for step in steps:
        probs = torch.softmax(step.logits.double() / t, dim=0)
        values, order = probs.sort(descending=True, stable=True)
        values = values[:k] / values[:k].sum()
        n_keep = next(i + 1 for i in range(k) if values[: i + 1].sum() >= p - 1e-6)
        kept = {int(i): float(v) for i, v in zip(order[:n_keep], values[:n_keep] / values[:n_keep].sum())}
        assert step.token_id in kept, step.number
        assert step.prob == pytest.approx(kept[step.token_id], abs=1e-6)
        assert step.sampled.n_top_p == n_keep
        for c in step.sampled.top(5):
            assert c.prob == pytest.approx(kept[c.id], abs=1e-6)


# --- stopping ---


def test_stop_text_stops_at_its_first_occurrence(lm):
    ids = lm.encode(PROMPT)
    free, steps = run(lm, ids, n=12)
    texts = [s.text for s in steps]
    target = next(i for i, t in enumerate(texts) if t.strip() and i >= 2)
    stop = texts[target]
    generated = ""
    expected = None
    for i, t in enumerate(texts):
        generated += t
        if stop in generated:
            expected = i + 1
            break
    gen, stopped = run(lm, ids, n=12, stop_texts=(stop,))
    assert gen.stop_reason == "stop_text"
    assert len(stopped) == expected


class PreferEndOfText(torch.nn.Module):
    """The embedded model, except that from call `after` on <|endoftext|> wins by a mile."""

    def __init__(self, inner, eot, after):
        super().__init__()
        self.inner, self.eot, self.after, self.calls = inner, eot, after, 0
        self.config, self.wte = inner.config, inner.wte

    def forward(self, ids, taps=(), cache: KVCache | None = None):
        logits = self.inner(ids, taps=taps, cache=cache)
        self.calls += 1
        if self.calls > self.after:
            logits[..., self.eot] += 1000
        return logits

    def n_params(self):
        return self.inner.n_params()


def test_end_of_text_stops_and_stays_out_of_the_text(lm):
    from tracegpt.loader import LoadedModel

    eot = lm.encoding.eot_token
    biased = LoadedModel(name=lm.name, model=PreferEndOfText(lm.model, eot, after=3), encoding=lm.encoding)
    gen = Generation(biased, lm.encode(PROMPT), GREEDY, 20)
    steps = list(gen)
    assert gen.stop_reason == "end_of_text"
    assert len(steps) == 4 and steps[-1].token_id == eot
    assert "<|endoftext|>" not in gen.text()
    assert gen.text() == lm.encoding.decode([s.token_id for s in steps[:3]])


def test_max_new_tokens_is_capped_to_the_context(lm):
    ids = long_prompt(lm, 250)
    gen = Generation(lm, ids, GREEDY, 100)
    assert gen.capped and gen.room == 7 and gen.max_new_tokens == 7
    gen = Generation(lm, ids, GREEDY, 7)
    assert not gen.capped
    steps = list(gen)
    assert len(steps) == 7 and gen.stop_reason == "max_new_tokens"


def test_small_model_steps_run_on_one_thread_and_give_threads_back(lm, monkeypatch):
    """One-token steps of a small model on one CPU thread; the prompt's step, and the caller, untouched."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # as if torch had three
    set_to = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    run(lm, lm.encode(PROMPT), n=4)
    assert set_to == [1, 3] * 3  # steps 2-4 feed one token each; step 1 feeds the whole prompt
    set_to.clear()
    run(lm, lm.encode(PROMPT), n=4, use_cache=False)  # every step feeds the whole context
    assert set_to == []


def test_bad_values_are_usage_errors_named_by_parameter(lm):
    # The Python API speaks of its parameters; the CLI words the same errors with its options.
    ids = lm.encode(PROMPT)
    with pytest.raises(ParameterError, match="^max_new_tokens 0 is out of range") as e:
        Generation(lm, ids, GREEDY, 0)
    assert e.value.said_as(e.value.flag).startswith("--max-new-tokens 0 is out of range")
    with pytest.raises(ParameterError, match="^layer 4 does not exist"):
        Generation(lm, ids, GREEDY, 1, attention=AttentionSpec(layer=4))
    with pytest.raises(ParameterError, match="^head -1 does not exist"):
        Generation(lm, ids, GREEDY, 1, attention=AttentionSpec(layer=0, head=-1))
    with pytest.raises(UsageError):
        Generation(lm, [], GREEDY, 1)


# --- the attention column ---


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("head", [None, 2])
def test_attention_peek_matches_a_full_trace(lm, use_cache, head):
    ids = lm.encode(PROMPT)
    layer = 1
    gen, steps = run(lm, ids, n=5, use_cache=use_cache, attention=AttentionSpec(layer=layer, head=head))
    for step in steps:
        context = gen.ids[: step.position]
        tracer = Tracer(layers=[layer], stages=["attn.weights"])
        with torch.no_grad():
            lm.model(torch.tensor([context]), taps=tracer)
        row = tracer.store[f"blocks.{layer}.attn.weights"][:, -1, :]
        row = row.mean(0) if head is None else row[head]
        assert step.attention.position == int(row.argmax())
        assert step.attention.weight == pytest.approx(row.max().item(), abs=1e-5)
        assert step.attention.from_position == step.position - 1


def test_non_finite_logits_stop_generation_naming_the_first_stage(lm):
    import copy

    from tracegpt.tracer import NonFiniteError

    broken = copy.copy(lm)
    broken.model = copy.deepcopy(lm.model)
    with torch.no_grad():
        broken.model.h[2].attn.c_attn.bias[5] = float("inf")
    with pytest.raises(NonFiniteError, match="at blocks.2.attn.q"):
        list(Generation(broken, lm.encode(PROMPT), GREEDY, 3))


# --- interventions at every step ---


@pytest.mark.parametrize("spec", ["2.1", "1", "3.mlp=mean"])
def test_an_ablation_gives_the_same_tokens_with_and_without_the_cache(lm, spec):
    from tracegpt.analysis.interventions import check, edit_taps, parse_ablate

    ids = lm.encode(PROMPT)
    taps = edit_taps(check([parse_ablate(spec)], lm, len(ids)), lm, ids)
    runs = [Generation(lm, ids, GREEDY, 24, use_cache=cache, edits=taps) for cache in (True, False)]
    for run in runs:
        list(run)
    plain = Generation(lm, ids, GREEDY, 24)
    list(plain)
    assert runs[0].new_ids == runs[1].new_ids
    assert runs[0].new_ids != plain.new_ids or spec == "3.mlp=mean"  # the edit reaches the text


def test_a_cut_in_the_prompt_holds_for_every_later_step(lm):
    from tracegpt.analysis.interventions import Cut, edit_taps

    ids = lm.encode(PROMPT)
    taps = edit_taps([Cut(1, None, query=3, key=0)], lm, ids)
    cached, uncached = (Generation(lm, ids, GREEDY, 12, use_cache=c, edits=taps) for c in (True, False))
    list(cached), list(uncached)
    assert cached.new_ids == uncached.new_ids
