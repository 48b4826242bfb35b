"""Head scores: exact on hand-built patterns; on a hand-built induction circuit the probe finds it and
its ablation breaks the copying; the ablation shortcut equals a full intervened pass."""

import pytest
import torch
import torch.nn.functional as F
from toy_induction import induction_model

from tracegpt import loader
from tracegpt.analysis import heads as H
from tracegpt.analysis.interventions import Ablate, edit_taps

N = 10  # half a hand-built probe


def probe_ids(half=N, batch=2):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(batch):
        drawn = (torch.randperm(50, generator=gen)[:half] + 1).tolist()
        rows.append([0, *drawn, *drawn])
    return torch.tensor(rows)


def pattern(ids, key_of):
    """(B, 1, T, T) weights: each query i ≥ 1 puts all its weight on key_of(i, row) (query 0 on itself)."""
    B, T = ids.shape
    w = torch.zeros(B, 1, T, T)
    w[:, 0, 0, 0] = 1
    for b in range(B):
        for i in range(1, T):
            w[b, 0, i, key_of(i, ids[b])] = 1
    return w


def scores(ids, key_of):
    s = H.layer_scores(pattern(ids, key_of), ids)
    return {k: (None if v is None else v[0].item()) for k, v in vars(s).items()}


def test_a_pure_previous_token_head_scores_one_as_previous_token_and_about_zero_as_first():
    ids = probe_ids()
    s = scores(ids, lambda i, row: i - 1)
    assert s["previous"] == pytest.approx(1.0)
    assert s["first"] == pytest.approx(1 / (ids.shape[1] - 1))  # only query 1, whose previous token is the first
    assert s["itself"] == 0 and s["duplicate"] == 0 and s["entropy_bits"] == 0
    assert s["induction"] == pytest.approx(0.0)
    assert H.role_of({**s, "self": s["itself"]}) == "previous"


def test_first_token_self_duplicate_and_induction_heads_score_one_at_their_job():
    ids = probe_ids()
    assert scores(ids, lambda i, row: 0)["first"] == pytest.approx(1.0)
    assert scores(ids, lambda i, row: i)["itself"] == pytest.approx(1.0)

    def earlier(i, row):  # the earlier occurrence of the query's token, if any
        found = [j for j in range(i) if row[j] == row[i]]
        return found[0] if found else i

    dup = scores(ids, earlier)
    assert dup["duplicate"] == pytest.approx(1.0) and dup["induction"] == pytest.approx(0.0)
    ind = scores(ids, lambda i, row: earlier(i, row) + 1 if earlier(i, row) < i else i)
    assert ind["induction"] == pytest.approx(1.0) and ind["duplicate"] == pytest.approx(0.0)
    assert H.role_of({**ind, "self": ind["itself"]}) == "induction"


def test_an_even_split_has_the_entropy_of_an_even_split_and_no_role():
    ids = probe_ids()
    T = ids.shape[1]
    w = torch.tril(torch.ones(T, T))
    w = (w / w.sum(-1, keepdim=True))[None, None].expand(ids.shape[0], 1, T, T)
    s = H.layer_scores(w, ids)
    expected = sum(torch.log2(torch.tensor(i + 1.0)).item() for i in range(1, T)) / (T - 1)
    assert s.entropy_bits[0].item() == pytest.approx(expected)
    values = {"previous": s.previous[0].item(), "first": s.first[0].item(), "self": s.itself[0].item(),
              "duplicate": s.duplicate[0].item(), "induction": s.induction[0].item()}
    assert H.role_of(values) == "none"


def test_no_repeated_token_leaves_duplicate_and_induction_unscored():
    ids = torch.tensor([[0, 1, 2, 3, 4]])
    s = H.layer_scores(pattern(ids, lambda i, row: i - 1), ids)
    assert s.duplicate is None and s.induction is None


def test_the_probe_is_seeded_repeated_and_free_of_special_tokens(lm):
    a, b = H.probe_tokens(lm, 3, 20, seed=5), H.probe_tokens(lm, 3, 20, seed=5)
    assert a == b and a != H.probe_tokens(lm, 3, 20, seed=6)
    for row in a:
        assert row[0] == lm.end_of_text and len(row) == 41 and row[1:21] == row[21:]
        assert len(set(row[1:21])) == 20 and lm.end_of_text not in row[1:]


# --- a model with a known induction circuit ---------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    return induction_model()


@pytest.fixture(scope="module")
def toy_map(toy):
    return H.head_map(toy, half=16)


def test_the_probe_finds_the_previous_token_and_the_induction_head(toy_map):
    m = toy_map
    prev, ind = m.head(0, 0), m.head(1, 0)
    assert prev.role == "previous" and prev.previous == pytest.approx(1.0, abs=1e-3)
    assert ind.role == "induction" and ind.induction == pytest.approx(1.0, abs=1e-3)
    assert m.head(0, 1).role == m.head(1, 1).role == "none"  # zero weights: an even split, no output
    assert m.top("induction") is ind and m.top("previous") is prev


def test_copying_lowers_the_repeated_half_and_ablating_the_circuit_raises_it(toy_map):
    m = toy_map
    assert m.checked == "all"
    assert m.loss_repeated < 0.01 < m.loss_other  # the repeated half is copied, the first half guessed
    ind, prev = m.head(1, 0), m.head(0, 0)
    assert ind.loss_ablated > m.loss_repeated + 2  # without the induction head: an even guess (ln 17)
    assert ind.loss_ablated == pytest.approx(torch.log(torch.tensor(17.0)).item(), abs=1e-3)
    assert prev.loss_ablated > m.loss_repeated + 2  # without the previous-token head it feeds, too
    for h in (m.head(0, 1), m.head(1, 1)):  # a head with no output changes nothing, bit for bit
        assert h.loss_ablated == m.loss_repeated and h.loss_ablated_other == m.loss_other


def test_an_ablated_loss_is_that_of_the_full_intervened_pass(toy, toy_map):
    # The shortcut (run from the ablated head's block, on the recorded stream) against a whole
    # forward pass with the intervention's edit taps.
    ids = torch.tensor(H.probe_tokens(toy, half=16))
    repeated, _ = H.prediction_sets(ids)
    for layer, head in ((0, 0), (1, 0)):
        with torch.no_grad():
            logits = toy.model(ids, taps=edit_taps([Ablate(layer, head)], toy, ids[0].tolist()))
        full = F.cross_entropy(logits[:, :-1][repeated], ids[:, 1:][repeated]).item()
        assert toy_map.head(layer, head).loss_ablated == pytest.approx(full, abs=1e-5)


def test_a_big_model_gets_the_top_heads_of_two_roles_ablated(toy, monkeypatch):
    monkeypatch.setattr(H, "ABLATE_ALL", 2)
    monkeypatch.setattr(H, "CHECK_TOP", 1)
    m = H.head_map(toy, half=16)
    assert m.checked == "some"
    assert {h.name for h in m.heads if h.loss_ablated is not None} == {"0.0", "1.0"}


def test_scores_on_a_prompt_count_only_its_repeated_tokens(toy):
    m = H.head_map(toy, prompt="abcdabcd")
    assert m.source == "prompt" and m.n_repeated == 3 and m.n_other == 4  # predictions from queries 4..6, 0..3
    # Without a start token, position 0 is its own "previous token", so 'a' is found twice: mostly right.
    assert m.head(1, 0).role == "induction" and m.head(1, 0).induction > 0.8 and m.loss_repeated < m.loss_other
    none = H.head_map(toy, prompt="abcdefg")
    assert none.loss_repeated is None and none.checked == "none" and none.head(1, 0).induction is None


# --- the embedded model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded_map(lm):
    return H.head_map(lm)


@pytest.mark.xfail(strict=True, reason="the embedded model does not copy: on the probe its repeated half is no "
                                       "easier than the first (13.67 vs 13.42 nats), and no head's induction score "
                                       "passes 0.02; strict, so a retrained model that copies makes this pass")
def test_the_embedded_models_repeated_half_is_easier_and_its_induction_head_matters(embedded_map):
    m = embedded_map
    assert m.loss_repeated < m.loss_other
    top = m.top("induction")
    assert top.induction >= H.ROLE_SHARE and top.loss_ablated > m.loss_repeated


def test_every_head_of_the_embedded_model_is_scored_and_ablated(lm, embedded_map):
    m = embedded_map
    c = lm.config
    assert len(m.heads) == c.n_layer * c.n_head and m.checked == "all"
    assert all(h.loss_ablated is not None and h.duplicate is not None for h in m.heads)
    assert m.n_repeated == H.N_PROBES * (H.HALF - 1) and m.n_other == H.N_PROBES * (H.HALF + 1)


@pytest.mark.parametrize("name", ["3L3H-tied", "2L5H-untied-flags"])
def test_random_checkpoints_are_mapped(made, name):
    lm = loader.load(str(made[name][0]))
    m = H.head_map(lm, n_probes=2)
    assert len(m.heads) == lm.config.n_layer * lm.config.n_head
    assert all(0 <= h.previous <= 1 and 0 <= h.induction <= 1 for h in m.heads)
