"""The tap contract: an edit takes effect or raises, never vanishes; taps compose; positions are absolute."""

import copy

import pytest
import torch

from tracegpt import stages
from tracegpt.model import KVCache, attention_weights
from tracegpt.taps import NO_BLOCK_TAPS, Edit, Tap, TapError
from tracegpt.tracer import Tracer, run_trace

PROMPT = "To be, or not to be, that is the question:"
EDITABLE = [n for n in stages.names(4) if n not in ("tokens", "probs") and not stages.on_reading_only(n)]


class Replace(Tap):
    """Returns fn(tensor) for one stage, declaring it written unless told not to."""

    def __init__(self, stage, fn, declare=True):
        self.stage, self.fn, self.declare = stage, fn, declare

    def needs(self, run):
        return {self.stage}

    def writes(self, n_layer):
        return {self.stage} if self.declare else set()

    def __call__(self, name, tensor, offset):
        return self.fn(tensor)


class Identity(Tap):
    """Needs every stage and hands each one back untouched."""

    def needs(self, run):
        return {n for n in stages.names(run.n_layer) if not stages.on_reading_only(n)}

    def __call__(self, name, tensor, offset):
        return tensor


def delta(tensor):
    gen = torch.Generator().manual_seed(0)
    return tensor + 0.05 * torch.randn(tensor.shape, generator=gen)


def cut_last_row_first_key(mask):
    out = mask.clone()
    out[-1, 0] = False  # the last query no longer reads the first token
    return out


def edit_of(name):
    return cut_last_row_first_key if stages.kind(name) == "attn.mask" else delta


def forward(lm, ids, taps=()):
    with torch.no_grad():
        return lm.model(torch.tensor([ids]), taps=taps)[0]


@pytest.fixture(scope="module")
def ids(lm):
    return lm.encode(PROMPT)


@pytest.fixture(scope="module")
def plain(lm, ids):
    return forward(lm, ids)


@pytest.mark.parametrize("name", EDITABLE)
def test_every_edit_changes_the_logits(lm, ids, plain, name):
    edited = forward(lm, ids, [Replace(name, edit_of(name))])
    assert (edited - plain).abs().max().item() > 1e-3, name


@pytest.mark.parametrize("kind", ["attn.scores", "attn.mask", "attn.weights"])
def test_routing_edits_equal_the_rest_of_the_block_by_hand(lm, ids, kind):
    layer = 2
    name = stages.block_stage(layer, kind)
    before = run_trace(lm, PROMPT)  # everything up to the edited stage is unchanged by the edit
    scores, mask = before[stages.block_stage(layer, "attn.scores")], before[stages.block_stage(layer, "attn.mask")]
    if kind == "attn.scores":
        weights = attention_weights(delta(scores), mask, scores.dtype)
    elif kind == "attn.mask":
        weights = attention_weights(scores, cut_last_row_first_key(mask), scores.dtype)
    else:
        weights = delta(attention_weights(scores, mask, scores.dtype))
    block = lm.model.h[layer]
    with torch.no_grad():
        mix = weights @ before[stages.block_stage(layer, "attn.v")]  # (heads, T, d_head)
        merged = mix.transpose(0, 1).reshape(len(ids), -1)
        x = before[stages.stream_into(layer)] + block.attn.c_proj(merged)
        x = x + block.mlp(block.ln_2(x), NO_BLOCK_TAPS)
        for later in lm.model.h[layer + 1:]:
            x = later(x[None], NO_BLOCK_TAPS)[0]
        by_hand = lm.model.read_out(x)
    edited = forward(lm, ids, [Replace(name, edit_of(name))])  # the batch axis changes nothing of delta's draws
    assert (edited - by_hand).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["tokens", "probs", "blocks.1.attn.head_out"])
def test_a_replacement_nothing_reads_raises_with_the_stage_name(lm, ids, name):
    with pytest.raises(TapError, match=name):
        forward(lm, ids, [Replace(name, lambda t: t.clone(), declare=False)])
    with pytest.raises(TapError, match=f"{name} cannot be replaced"):
        forward(lm, ids, [Replace(name, lambda t: t.clone())])


def test_a_tap_cannot_wait_for_a_stage_no_forward_pass_computes(lm, ids):
    # attn.head_out exists only in traces: a tap asking for it would never be called, so it is refused.
    with pytest.raises(TapError, match="blocks.2.attn.head_out, which the forward pass never computes"):
        forward(lm, ids, [Replace("blocks.2.attn.head_out", lambda t: None, declare=False)])


def test_an_undeclared_replacement_or_a_wrong_shape_raises(lm, ids):
    name = "blocks.1.resid_out"
    with pytest.raises(TapError, match=f"{name}.*did not declare"):
        forward(lm, ids, [Replace(name, delta, declare=False)])
    with pytest.raises(TapError, match=f"replaced {name} of shape"):
        forward(lm, ids, [Replace(name, lambda t: t[:, :1])])


def test_a_tap_that_hands_every_stage_back_changes_nothing_bit_for_bit(lm, ids, plain):
    assert torch.equal(forward(lm, ids, [Identity()]), plain)


def test_an_editor_then_a_tracer_records_what_was_used(lm, ids):
    # An edit to the scores: the trace's attn.weights (derived on reading) are the softmax of the
    # edited scores, which is what the model mixed V with.
    name = "blocks.1.attn.scores"
    trace = run_trace(lm, PROMPT, taps=[Replace(name, delta)])
    plain = run_trace(lm, PROMPT)
    assert torch.equal(trace[name], delta(plain[name][None])[0])
    weights = trace["blocks.1.attn.weights"]
    torch.testing.assert_close(weights, torch.softmax(trace[name].masked_fill(~trace["blocks.1.attn.mask"],
                                                                             float("-inf")), -1), rtol=0, atol=1e-7)
    assert torch.allclose(trace["blocks.1.attn.mix"], weights @ trace["blocks.1.attn.v"], atol=1e-6)
    # An edit to the weights themselves: they are kept as used, never derived from the scores.
    edited = run_trace(lm, PROMPT, taps=[Replace("blocks.2.attn.weights", delta)])
    assert "blocks.2.attn.weights" in edited.tensors
    assert torch.equal(edited["blocks.2.attn.weights"], delta(plain["blocks.2.attn.weights"][None])[0])


def test_the_fused_path_matches_the_step_by_step_one_under_an_edit(lm, ids):
    editor = Replace("blocks.1.resid_out", delta)
    fused = forward(lm, ids, [editor])  # no tap needs attention internals
    traced = run_trace(lm, PROMPT, taps=[editor])  # the tracer needs every block's scores and mask
    assert (fused - traced["logits"]).abs().max().item() <= 1e-5
    assert torch.equal(traced["blocks.1.resid_out"], delta(run_trace(lm, PROMPT)["blocks.1.resid_out"][None])[0])
    keeper = Tracer()  # keeps the weights too: every block's table written out
    forward(lm, ids, [editor, keeper])
    assert (fused - keeper.store["logits"]).abs().max().item() <= 1e-5


def test_an_edit_pinned_to_a_position_is_the_same_with_a_kv_cache(lm, ids):
    # In float64: float32's own cached-vs-full rounding (~1.5e-5 on these logits, with no edit at
    # all) would drown the 1e-5 this checks; an edit landing on the wrong row would not.
    model = copy.deepcopy(lm.model).double()
    sites = [stages.Site("blocks.1.resid_out", {"position": 5}), stages.Site("blocks.2.attn.scores",
                                                                             {"head": 1, "query": 7, "key": 3})]
    edits = [Edit(sites[0], lambda x: x + 0.5), Edit(sites[1], lambda s: torch.full_like(s, float("-inf")))]
    with torch.no_grad():
        full = model(torch.tensor([ids]), taps=edits)[0]
        plain = model(torch.tensor([ids]))[0]
        cache = KVCache(lm.config.n_layer)
        stepped = torch.cat([model(torch.tensor([[t]]), taps=edits, cache=cache)[0] for t in ids])
    assert (full - stepped).abs().max().item() <= 1e-5
    assert (full - plain).abs().max().item() > 1e-3  # the edits did something


def test_several_readers_in_one_pass_each_get_their_stages(lm, ids):
    first, second = Tracer(stages=["logits"]), Tracer(layers=[3], stages=["attn.weights"])
    forward(lm, ids, [first, second])
    assert set(first.store) == {"logits"} and set(second.store) == {"blocks.3.attn.weights"}


def test_a_pass_leaves_no_reference_cycle_keeping_its_taps_alive(lm, ids):
    import gc
    import weakref

    tracer = Tracer()
    gone = weakref.ref(tracer)
    gc.disable()
    try:
        forward(lm, ids, [tracer])
        del tracer
        assert gone() is None  # freed at once, with its recorded tensors, not when the cycle collector runs
    finally:
        gc.enable()
