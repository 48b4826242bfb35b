"""The compact GPT against the reference: Hugging Face transformers' GPT-2, same weights."""

import pytest
import torch

from tracegpt.model import GPT, GPTConfig, KVCache
from tracegpt.weights import from_hf_state_dict, to_hf_state_dict

transformers = pytest.importorskip("transformers")

ODD_CONFIGS = [
    GPTConfig(n_layer=5, n_head=3, d_model=48, n_ctx=40, vocab_size=1001),
    GPTConfig(n_layer=2, n_head=5, d_model=35, n_ctx=17, vocab_size=333, layer_norm_eps=1e-6),
]


def random_model(config: GPTConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)  # far from the init, so a wrong transpose or a missed bias shows
    return model.eval()


def hf_twin(model: GPT):
    c = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.n_ctx, n_embd=c.d_model, n_layer=c.n_layer, n_head=c.n_head,
        n_inner=c.d_mlp, activation_function=c.activation, layer_norm_epsilon=c.layer_norm_eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=c.vocab_size - 1, eos_token_id=c.vocab_size - 1)
    hf_config._attn_implementation = "eager"  # the reference arithmetic, and attentions can be returned
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model.state_dict()), strict=False)
    assert not unexpected
    assert all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing), missing
    return hf


@pytest.mark.parametrize("config", ODD_CONFIGS, ids=["5L3H-v1001", "2L5H-v333"])
def test_logits_match_transformers(config):
    model = random_model(config)
    hf = hf_twin(model)
    gen = torch.Generator().manual_seed(1)
    for length in (1, 2, 7, config.n_ctx):
        ids = torch.randint(0, config.vocab_size, (2, length), generator=gen)
        with torch.no_grad():
            ours = model(ids)
            theirs = hf(ids).logits
        assert (ours - theirs).abs().max().item() <= 1e-4


@pytest.mark.parametrize("config", ODD_CONFIGS[:1])
def test_hf_state_dict_converts_back_to_ours(config):
    model = random_model(config, seed=3)
    hf = hf_twin(model)
    back = from_hf_state_dict(hf.state_dict())
    ours = model.state_dict()
    assert set(back) == set(ours)
    for name, tensor in ours.items():
        assert torch.equal(back[name], tensor), name


def test_future_tokens_do_not_change_the_past():
    model = random_model(ODD_CONFIGS[0])
    ids = torch.randint(0, 1001, (1, 12))
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 1001
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-5)
    assert not torch.allclose(a[0, 8:], b[0, 8:], atol=1e-3)


def test_kv_cache_gives_the_same_logits_as_a_full_pass():
    model = random_model(ODD_CONFIGS[0])
    ids = torch.randint(0, 1001, (1, 20))
    cache = KVCache(model.config.n_layer)
    with torch.no_grad():
        full = model(ids)
        first = model(ids[:, :13], cache=cache)
        steps = [model(ids[:, t : t + 1], cache=cache) for t in range(13, 20)]
    stepped = torch.cat([first] + steps, dim=1)
    assert len(cache) == 20
    assert (full - stepped).abs().max().item() <= 1e-4


def test_projections_are_stored_in_gpt2s_layout():
    """[in, out], as GPT-2's checkpoints hold them: x @ weight + bias."""
    model = random_model(ODD_CONFIGS[0])
    fc = model.h[0].mlp.c_fc
    assert tuple(fc.weight.shape) == (48, 4 * 48)
    x = torch.randn(2, 3, 48)
    with torch.no_grad():
        assert torch.allclose(fc(x), x @ fc.weight + fc.bias, atol=1e-6)


def test_decoding_copy_of_the_unembedding_follows_the_weights():
    model = random_model(ODD_CONFIGS[0])
    ids = torch.randint(0, 1001, (1, 6))
    with torch.no_grad():
        assert torch.equal(model.decoding_unembedding(), model.unembedding().T)
        model.wte.weight.mul_(2.0)  # changed in place
        assert torch.equal(model.decoding_unembedding(), model.unembedding().T)
        model.wte.weight = torch.nn.Parameter(torch.randn_like(model.wte.weight))  # replaced
        assert torch.equal(model.decoding_unembedding(), model.unembedding().T)
        cached = model(ids, cache=KVCache(model.config.n_layer))
        assert (cached - model(ids)).abs().max().item() <= 1e-4


def test_decoding_copy_works_for_weights_made_under_inference_mode():
    with torch.inference_mode():  # such weights keep no version count
        model = random_model(ODD_CONFIGS[1])
        ids = torch.randint(0, 333, (1, 5))
        cached = model(ids, cache=KVCache(model.config.n_layer))
        assert (cached - model(ids)).abs().max().item() <= 1e-4


def test_context_overflow_is_refused():
    model = random_model(ODD_CONFIGS[1])
    with pytest.raises(ValueError, match="context of 17"):
        model(torch.zeros(1, 18, dtype=torch.long))


def test_config_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(d_model=10, n_head=3)
    with pytest.raises(ValueError, match="unsupported activation"):
        GPTConfig(activation="mish")


def test_logits_from_unembeds_only_the_later_positions():
    model = random_model(ODD_CONFIGS[0])
    ids = torch.randint(0, 1001, (2, 12))
    with torch.no_grad():
        full, part = model(ids), model(ids, logits_from=5)
    assert part.shape == (2, 7, 1001)
    assert (part - full[:, 5:]).abs().max().item() <= 1e-5


def test_logits_from_is_refused_with_a_tap_that_reads_the_logits():
    from tracegpt.tracer import Tracer

    model = random_model(ODD_CONFIGS[0])
    with pytest.raises(ValueError, match="logits_from"):
        model(torch.zeros(1, 4, dtype=torch.long), taps=[Tracer(stages=["logits"])], logits_from=2)
