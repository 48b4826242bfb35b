"""Direct logit attribution: the terms add up to the model's own logit, at every position, on every model."""

import math

import pytest
import torch

from tracegpt import loader, stages
from tracegpt.analysis.attribution import STAGES, attribute, attribution
from tracegpt.tracer import run_trace

PROMPTS = ["I love", "To be, or not to be, that is the question:", "My lord,\nI love thee well", "I"]
EXACT = 1e-4


def worst_error(lm, prompt, n_tokens=3):
    """The largest |sum of terms − logit| over every position and its top tokens (and a logit difference)."""
    trace = run_trace(lm, prompt, stages=STAGES)
    worst = 0.0
    for position in range(trace.n_tokens):
        top = trace["logits"][position].topk(n_tokens).indices.tolist()
        for token in top:
            a = attribution(lm, trace, position, token)
            assert a.logit == pytest.approx(trace["logits"][position, token].item(), abs=1e-6)
            worst = max(worst, abs(a.total - a.logit))
        diff = attribution(lm, trace, position, top[0], vs=top[-1])
        worst = max(worst, abs(diff.total - diff.logit))
    return worst


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_terms_add_up_to_the_logit_at_every_position(lm, prompt):
    assert worst_error(lm, prompt) <= EXACT


@pytest.mark.parametrize("name", ["3L3H-tied", "2L5H-untied-flags"])
def test_the_terms_add_up_on_random_gpt2_checkpoints(made, name):
    # 2L5H-untied-flags reads out through its own lm_head, divides scores by the layer index and
    # upcasts attention; its LayerNorm eps is 1e-2, which sigma must include.
    folder, hf = made[name]
    lm = loader.load(str(folder))
    for prompt in PROMPTS[:3]:
        assert worst_error(lm, prompt) <= EXACT, prompt
    ids = lm.encode(PROMPTS[1])
    with torch.no_grad():
        reference = hf(torch.tensor([ids])).logits[0]  # transformers' logits: the sum matches them too
    a = attribute(lm, PROMPTS[1])
    assert a.total == pytest.approx(reference[-1, a.target].item(), abs=2e-4)


def test_a_logit_difference_is_the_difference_of_the_two_splits(lm):
    trace = run_trace(lm, PROMPTS[1], stages=STAGES)
    you, thee = lm.encode(" you")[0], lm.encode(" thee")[0]
    a, b, d = (attribution(lm, trace, 5, you), attribution(lm, trace, 5, thee), attribution(lm, trace, 5, you, thee))
    assert d.logit == pytest.approx(a.logit - b.logit, abs=1e-6)
    assert d.total == pytest.approx(a.total - b.total, abs=1e-9)
    for ta, tb, td in zip(a.terms, b.terms, d.terms):
        assert (td.kind, td.layer, td.head) == (ta.kind, ta.layer, ta.head)
        assert td.value == pytest.approx(ta.value - tb.value, abs=1e-9)


def test_every_part_is_there_once(lm):
    a = attribute(lm, "I love")
    c = lm.config
    kinds = [t.kind for t in a.terms]
    assert kinds.count("head") == c.n_layer * c.n_head
    assert kinds.count("mlp") == kinds.count("attn_bias") == c.n_layer
    assert kinds.count("token_embedding") == kinds.count("position_embedding") == kinds.count("ln_f_bias") == 1
    assert {(t.layer, t.head) for t in a.by_kind("head")} == {(i, h) for i in range(c.n_layer) for h in range(c.n_head)}
    assert a.target == int(run_trace(lm, "I love")["logits"][-1].argmax()) and a.rank == 1
    # Each term is its vector read along one direction; the last, the LayerNorm's bias, is not divided by sigma.
    readout = torch.tensor(a.readout, dtype=torch.float64)
    for term, vector in zip(a.terms, a.vectors):
        assert term.value == pytest.approx((torch.tensor(vector, dtype=torch.float64) @ readout).item(), abs=1e-9)
    beta = lm.model.ln_f.bias.detach().double()
    assert a.terms[-1].value == pytest.approx((beta @ lm.model.unembedding()[a.target].detach().double()).item())
    final = run_trace(lm, "I love")["blocks.3.resid_out"][-1].double()
    assert a.sigma == pytest.approx(math.sqrt(final.var(correction=0).item() + 1e-5), rel=1e-9)


def test_an_ffn_splits_into_its_neurons_and_bias(lm):
    a = attribute(lm, "To be, or not to be", neurons=2)
    split = a.neurons
    assert len(split.neurons) == lm.config.d_mlp
    assert split.total == pytest.approx(split.mlp, abs=1e-5)
    trace = run_trace(lm, "To be, or not to be")
    act = trace["blocks.2.mlp.act"][-1]
    assert [n.activation for n in split.neurons[:5]] == pytest.approx(act[:5].tolist(), abs=1e-6)
    up, down = split.top()
    assert up[0].value == max(n.value for n in split.neurons) and down[0].value == min(n.value for n in split.neurons)


@pytest.mark.parametrize("name", [None, "3L3H-tied", "2L5H-untied-flags"])
def test_each_heads_stage_adds_up_to_the_attention_output(request, name):
    if name is None:
        lm = request.getfixturevalue("lm")
    else:
        lm = loader.load(str(request.getfixturevalue("made")[name][0]))
    for prompt in PROMPTS[:3]:
        trace = run_trace(lm, prompt)
        for layer in range(lm.config.n_layer):
            heads = trace[stages.block_stage(layer, "attn.head_out")]
            bias = lm.model.h[layer].attn.c_proj.bias.detach()
            out = trace[stages.block_stage(layer, "attn.out")]
            assert (heads.sum(0) + bias - out).abs().max().item() <= 1e-5, (prompt, layer)


def test_attribution_names_what_is_wrong(lm):
    from tracegpt.errors import ParameterError

    with pytest.raises(ParameterError, match="token ' you you' is 2 tokens"):
        attribute(lm, "I love", token=" you you")
    with pytest.raises(ParameterError, match="neurons 4 does not exist; shakespeare has layers 0..3"):
        attribute(lm, "I love", neurons=4)
    with pytest.raises(ParameterError, match="position 2 is out of range"):
        attribute(lm, "I love", position=2)
    with pytest.raises(ParameterError, match="vs ' you' is the top prediction"):
        attribute(lm, "I love", vs=" you")
