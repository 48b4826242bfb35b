"""Every number `tracegpt explain` cites is the model's own: each is recomputed here from an independent run."""

import math
import re

import pytest
import torch

from tracegpt import export, stages
from tracegpt.analysis import walk as explain
from tracegpt.taps import NO_BLOCK_TAPS
from tracegpt.tracer import run_trace

PROMPT = "To be, or not to be"
SOURCE = re.compile(r"^(‖|std )?([a-z_0-9.]+)\[([0-9, ]+)\]‖?$")  # ‖stage[i, j]‖, std stage[i], stage[i, j, k]


@pytest.fixture(scope="module")
def walk(lm):
    return explain.build(run_trace(lm, PROMPT), lm.token_text)


@pytest.fixture(scope="module")
def reference(lm):
    """A second, separate run of the same prompt: what the cited numbers are checked against."""
    return run_trace(lm, PROMPT)


def steps(walk) -> dict:
    return {s.id: s for s in walk.steps}


def test_the_walk_covers_the_forward_pass_in_order(walk):
    assert [s.id for s in walk.steps] == ["tokens", "embed", "attention", "heads", "mask", "ffn", "residual",
                                          "layernorm", "next_token", "generation", "no_hidden"]


def test_every_indexed_source_is_the_recorded_value(walk, reference):
    checked = 0
    for step in walk.steps:
        for name, source in step.sources.items():
            m = SOURCE.match(source)
            if not m:
                continue
            kind, stage, index = m.groups()
            t = reference[stage][tuple(int(i) for i in index.split(","))].float()
            expected = t.norm().item() if kind == "‖" else t.std(correction=0).item() if kind == "std " else t.item()
            assert step.numbers[name] == pytest.approx(expected, abs=1e-5), (step.id, name, source)
            checked += 1
    assert checked >= 30


def test_token_ids_are_the_tokenizers(lm, walk):
    ids = lm.encode(PROMPT)
    assert walk.token_ids == ids
    s = steps(walk)["tokens"]
    assert s.numbers["n_tokens"] == len(ids) and s.numbers["token_id"] == ids[-1]
    assert s.numbers["token"] == lm.token_text(ids[-1])


def test_the_cited_attention_is_softmax_of_q_dot_k(walk, reference):
    s = steps(walk)["attention"].numbers
    layer, head, focus = s["layer"], s["head"], len(reference.token_ids) - 1
    q = reference[f"blocks.{layer}.attn.q"][head, focus]
    k = reference[f"blocks.{layer}.attn.k"][head, : focus + 1]  # the keys the causal mask leaves
    scores = k @ q / math.sqrt(q.numel())
    weights = torch.softmax(scores, dim=-1)
    assert s["score"] == pytest.approx(scores[s["source"]].item(), abs=1e-4)
    assert s["weight"] == pytest.approx(weights[s["source"]].item(), abs=1e-5)
    assert s["weight2"] == pytest.approx(weights[s["second"]].item(), abs=1e-5)
    assert s["source"] != focus  # the head shown leans on an earlier token


def test_the_head_shown_leans_hardest_on_an_earlier_token(walk, reference):
    s = steps(walk)["attention"].numbers
    focus = len(reference.token_ids) - 1
    best = max(reference[f"blocks.{i}.attn.weights"][:, focus, :focus].max().item() for i in range(4))
    assert s["weight"] == pytest.approx(best)


def test_the_mask_deletes_every_future_edge(walk, reference):
    s = steps(walk)["mask"].numbers
    n = len(reference.token_ids)
    assert s["n_masked"] == n * (n - 1) // 2 and s["n_pairs"] == n * n
    future = torch.ones(n, n).triu(1).bool()
    assert all(reference[f"blocks.{i}.attn.weights"][:, future].abs().max() == 0 for i in range(4))
    assert s["future_weight"] == 0.0 and s["first_self"] == pytest.approx(1.0)


def test_the_ffn_is_local_to_the_token(lm, walk, reference):
    s = steps(walk)["ffn"].numbers
    layer, focus = s["layer"], len(reference.token_ids) - 1
    alone = reference[f"blocks.{layer}.ln2"][focus : focus + 1]  # only this token, no neighbours
    with torch.no_grad():
        out = lm.model.h[layer].mlp(alone, NO_BLOCK_TAPS)[0]
        act = lm.model.h[layer].mlp.act(lm.model.h[layer].mlp.c_fc(alone))[0]
    assert s["mlp_norm"] == pytest.approx(out.norm().item(), abs=1e-4)
    assert s["n_active"] == int((act > 0).sum()) and s["neuron"] == int(act.argmax())


def test_the_residual_stream_is_revised_by_addition(walk, reference):
    s = steps(walk)["residual"].numbers
    b, focus = f"blocks.{s['layer']}.", len(reference.token_ids) - 1
    x_in = reference[f"blocks.{s['layer'] - 1}.resid_out" if s["layer"] else "embed.sum"][focus]
    revised = x_in + reference[b + "attn.out"][focus] + reference[b + "mlp.out"][focus]
    assert s["after"] == pytest.approx(revised.norm().item(), abs=1e-4)
    assert s["start"] == pytest.approx(reference["embed.sum"][focus].norm().item(), abs=1e-5)


def test_the_next_token_is_the_softmax_of_the_models_logits(lm, walk):
    s = steps(walk)["next_token"].numbers
    with torch.no_grad():
        logits = lm.model(torch.tensor([lm.encode(PROMPT)]))[0, -1]  # the untraced forward
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs, 2)
    assert s["top1_id"] == int(top.indices[0]) and s["top2_id"] == int(top.indices[1])
    assert s["top1_prob"] == pytest.approx(top.values[0].item(), abs=1e-5)
    assert s["top2_prob"] == pytest.approx(top.values[1].item(), abs=1e-5)
    assert s["top1_token"] == lm.token_text(s["top1_id"]) and s["vocab_size"] == logits.numel()


def test_the_count_of_numbers_is_what_the_pass_computed(walk, reference):
    # The token ids and the causal masks are the pass's inputs: the text says they are not counted.
    computed = [name for name in reference.names()
                if name != "tokens" and not name.endswith(".attn.mask") and not stages.on_reading_only(name)]
    s = steps(walk)["no_hidden"].numbers
    assert s["n_numbers"] == sum(reference[name].numel() for name in computed)
    assert s["n_stages"] == len(computed)
    assert (s["first_stage"], s["last_stage"]) == ("embed.token", "probs")


def test_one_token_has_its_own_words(lm):
    walk = explain.build(run_trace(lm, "I"), lm.token_text)
    by_id = steps(walk)
    assert by_id["attention"].text_key == "attention_one" and "second_token" not in by_id["attention"].numbers
    assert by_id["mask"].numbers["n_masked"] == 0 and by_id["mask"].text_key == "mask_one"
    doc = export.narration_to_dict(explain.narrate(walk))
    assert all("{" not in s["text"] for s in doc["steps"])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_texts_carry_the_numbers(walk, lang):
    doc = export.narration_to_dict(explain.narrate(walk, lang))
    text = {s["id"]: s["text"] for s in doc["steps"]}
    a = steps(walk)["attention"].numbers
    assert f"{a['weight']:.1%}" in text["attention"] and f"'{a['source_token'].replace(' ', '␣')}'" in text["attention"]
    n = steps(walk)["next_token"].numbers
    assert f"{n['top1_prob']:.1%}" in text["next_token"]
    assert doc["lang"] == lang and doc["schema_version"] == 1
