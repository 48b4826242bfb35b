"""What the tracer records is the forward pass itself: checked from the recorded tensors alone."""

from functools import partial

import pytest
import torch

from tracegpt.errors import UsageError
from tracegpt.model import attention_weights, next_token_probs
from tracegpt.stages import names as stage_names
from tracegpt.tracer import Tracer, run_trace

PROMPTS = ["I love", "To be, or not to be, that is the question:", "My lord,\nI"]

# The stage names are an interface people script against: a change here is a breaking change.
BLOCK = ["ln1", "attn.q", "attn.k", "attn.v", "attn.scores", "attn.mask", "attn.weights", "attn.mix",
         "attn.head_out", "attn.out", "resid_attn", "ln2", "mlp.pre", "mlp.act", "mlp.out", "resid_out"]
EXPECTED_NAMES = (["tokens", "embed.token", "embed.position", "embed.sum"]
                  + [f"blocks.{i}.{s}" for i in range(4) for s in BLOCK] + ["ln_f", "logits", "probs"])


def test_stage_names_are_pinned(lm):
    assert stage_names(4) == EXPECTED_NAMES
    assert run_trace(lm, "I love").names() == EXPECTED_NAMES


@pytest.mark.parametrize("prompt", PROMPTS)
def test_traced_logits_equal_untraced(lm, prompt):
    trace = run_trace(lm, prompt)
    with torch.no_grad():
        plain = lm.model(torch.tensor([trace.token_ids]))[0]
    assert (plain - trace["logits"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("prompt", PROMPTS)
def test_attention_rows_are_distributions_over_the_past(lm, prompt):
    trace = run_trace(lm, prompt)
    T = trace.n_tokens
    future = ~torch.tril(torch.ones(T, T, dtype=torch.bool))
    for layer in range(4):
        w = trace[f"blocks.{layer}.attn.weights"]
        assert torch.allclose(w.sum(-1), torch.ones(4, T), atol=1e-6)
        assert (w[:, future] == 0).all()
        assert torch.equal(trace[f"blocks.{layer}.attn.mask"], ~future)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_residual_stream_is_revised_by_addition(lm, prompt):
    trace = run_trace(lm, prompt)
    x = trace["embed.sum"]
    assert torch.allclose(x, trace["embed.token"] + trace["embed.position"])
    for layer in range(4):
        p = f"blocks.{layer}."
        assert torch.allclose(trace[p + "resid_attn"], x + trace[p + "attn.out"], atol=1e-5)
        assert torch.allclose(trace[p + "resid_out"], trace[p + "resid_attn"] + trace[p + "mlp.out"], atol=1e-5)
        x = trace[p + "resid_out"]
    logits = trace["ln_f"] @ lm.model.wte.weight.T
    assert torch.allclose(logits, trace["logits"], atol=1e-4)
    assert torch.allclose(trace["probs"], torch.softmax(trace["logits"], -1), atol=1e-6)


def test_attention_stages_are_the_arithmetic_they_name(lm):
    trace = run_trace(lm, "I love thee")
    p = "blocks.2.attn."
    q, k, v = trace[p + "q"], trace[p + "k"], trace[p + "v"]
    scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5)
    assert torch.allclose(scores, trace[p + "scores"], atol=1e-5)
    weights = torch.softmax(scores.masked_fill(~trace[p + "mask"], float("-inf")), -1)
    assert torch.allclose(weights, trace[p + "weights"], atol=1e-6)
    assert torch.allclose(weights @ v, trace[p + "mix"], atol=1e-5)


def test_recording_can_be_limited_to_layers_and_stages(lm):
    trace = run_trace(lm, "I love", layers=[1, 3], stages=["attn.weights", "logits"])
    assert trace.names() == ["blocks.1.attn.weights", "blocks.3.attn.weights", "logits"]
    only_layer = run_trace(lm, "I love", layers=[2])
    assert {n.split(".")[1] for n in only_layer.names() if n.startswith("blocks.")} == {"2"}
    assert "embed.sum" in only_layer and "logits" in only_layer


def test_bad_prompts_say_what_is_wrong(lm):
    with pytest.raises(UsageError, match="empty"):
        run_trace(lm, "")
    with pytest.raises(UsageError, match="at most 256"):
        run_trace(lm, " thee" * 300)
    with pytest.raises(UsageError, match="layers 0..3"):
        run_trace(lm, "I love", layers=[4])


def test_derived_stages_are_what_the_model_computes_from_the_kept_ones(lm):
    # run_trace keeps neither attn.weights nor probs: reading them recomputes them with the
    # model's own functions from the kept scores, mask and logits, so they are bit for bit what
    # those give. Not computing the weights, the model mixes V with its fused kernel: the mix
    # agrees with weights @ V, and every stage with a tracer that keeps everything, to rounding.
    prompt = "To be, or not to be, that is the question"
    derived = run_trace(lm, prompt)
    assert "probs" in derived.derived and "blocks.2.attn.weights" in derived.derived
    keeper = Tracer()
    with torch.no_grad():
        lm.model(torch.tensor([lm.encode(prompt)]), taps=keeper)
    # attn.head_out is derived by every tracer: no forward pass computes it.
    assert sorted(keeper.store) == sorted(n for n in derived.names() if not n.endswith("head_out"))
    assert sorted(keeper.derived) == sorted(n for n in derived.names() if n.endswith("head_out"))
    for name, kept in keeper.store.items():
        torch.testing.assert_close(derived[name], kept, rtol=1e-5, atol=1e-5, msg=name)
    assert torch.equal(derived["blocks.0.attn.scores"], keeper.store["blocks.0.attn.scores"])
    assert torch.equal(derived["probs"], next_token_probs(derived["logits"]))
    for layer in range(lm.config.n_layer):
        stage = partial("blocks.{}.attn.{}".format, layer)
        weights = derived[stage("weights")]
        assert torch.equal(weights, attention_weights(derived[stage("scores")], derived[stage("mask")], weights.dtype))
        torch.testing.assert_close(derived[stage("mix")], weights @ derived[stage("v")], rtol=0, atol=1e-6)
    # Asked for the weights alone, there is nothing to derive them from: they are kept.
    alone = run_trace(lm, prompt, stages=["attn.weights"])
    assert "blocks.0.attn.weights" in alone.tensors and not alone.derived


def test_non_finite_numbers_are_refused_naming_the_first_stage(lm):
    import copy

    from tracegpt.tracer import NonFiniteError

    broken = copy.copy(lm)
    broken.model = copy.deepcopy(lm.model)
    with torch.no_grad():
        broken.model.h[1].mlp.c_fc.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="at blocks.1.mlp.pre, the first stage"):
        run_trace(broken, "I love")
    with pytest.raises(NonFiniteError, match="at blocks.1.mlp.pre"):
        run_trace(broken, "I love", stages=["resid_out", "mlp.pre"])  # no logits recorded: every stage is scanned


def test_each_heads_output_is_derived_and_adds_up_to_the_attention_update(lm):
    # attn.head_out: no forward pass computes it; the trace derives it from attn.mix and c_proj,
    # holding nothing more in memory. Summed over heads, plus c_proj's bias, it is attn.out.
    trace = run_trace(lm, "To be, or not to be, that is the question")
    T, d = trace.n_tokens, lm.config.d_model
    for layer in range(lm.config.n_layer):
        name = f"blocks.{layer}.attn.head_out"
        assert name in trace.derived and name not in trace.tensors
        heads = trace[name]
        assert heads.shape == (lm.config.n_head, T, d)
        bias = lm.model.h[layer].attn.c_proj.bias.detach()
        torch.testing.assert_close(heads.sum(0) + bias, trace[f"blocks.{layer}.attn.out"], rtol=0, atol=1e-5)
    # Asked for alone, it is still derived: the mix it needs is kept aside, out of the trace's names.
    alone = run_trace(lm, "To be, or not to be", layers=[1], stages=["attn.head_out"])
    assert alone.names() == ["blocks.1.attn.head_out"] and not alone.tensors
    full = run_trace(lm, "To be, or not to be", layers=[1])
    assert torch.equal(alone["blocks.1.attn.head_out"], full["blocks.1.attn.head_out"])


def test_all_finite_finds_a_nan_or_an_infinity_in_any_slice():
    from tracegpt.tracer import all_finite

    t = torch.zeros(3, 1000)
    assert all_finite(t, chunk=7)
    for where, bad in ((0, float("nan")), (2999, float("inf")), (1403, float("-inf"))):
        u = t.clone()
        u.view(-1)[where] = bad
        assert not all_finite(u, chunk=7) and not all_finite(u)
