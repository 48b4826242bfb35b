"""The neuron index is honest (a brute-force scan finds the same, rerunning a context gives its activation),
deterministic and refused when stale; what a neuron writes is the weights' own product."""

import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tracegpt import loader, stages
from tracegpt.analysis import neurons
from tracegpt.analysis.neurons import NeuronId, NeuronIndexError
from tracegpt.errors import ParameterError
from tracegpt.tracer import trace_ids

SLICE = Path(__file__).parent.parent / "data" / "twelfth_night_act2.txt"


@pytest.fixture(scope="module")
def slice_ids(lm):
    text = "".join(SLICE.read_text().splitlines(keepends=True)[:150])
    return np.array(lm.encode(text), dtype=np.int64)


@pytest.fixture(scope="module")
def built(lm, slice_ids):
    return neurons.build_index(lm, slice_ids, {"kind": "text", "file": SLICE.name})


@pytest.fixture(scope="module")
def brute(lm, slice_ids):
    """Every activation of every neuron at every position of the slice: (positions, layers, neurons).

    Each window of the scan run on its own through the tracer, a path the index build does not take."""
    window = neurons.WINDOW
    rows = []
    for start, end in neurons.windows(len(slice_ids), window):
        t = trace_ids(lm, slice_ids[start:end].tolist(), stages=["mlp.act"])
        rows.append(torch.stack([t[stages.block_stage(i, "mlp.act")] for i in range(lm.config.n_layer)], dim=1))
    return torch.cat(rows).numpy()


def test_the_slice_spans_many_windows(slice_ids, built):
    assert len(slice_ids) > 20 * neurons.WINDOW
    assert built.n_tokens == len(slice_ids) and built.window == neurons.WINDOW


def test_top_contexts_equal_a_brute_force_scan(built, brute):
    n_layer, d_mlp = brute.shape[1:]
    positions = built.positions[built.context]  # (layer, neuron, TOP)
    for layer in range(n_layer):
        for n in range(d_mlp):
            values = brute[:, layer, n]
            # highest first; ties to the earlier position
            order = np.lexsort((np.arange(len(values)), -values))[:neurons.TOP]
            assert positions[layer, n].tolist() == order.tolist(), (layer, n)
            np.testing.assert_allclose(built.activation[layer, n], values[order], atol=1e-5)


def test_statistics_equal_the_brute_force_ones(built, brute):
    np.testing.assert_allclose(built.mean, brute.mean(axis=0), atol=1e-5)
    np.testing.assert_array_equal(built.frac_active, ((brute > 0).sum(axis=0) / len(brute)).astype(np.float32))
    sample = brute[::neurons.HIST_STRIDE]  # the histogram's fixed sample: positions divisible by the stride

    def bins(x):
        return np.arcsinh(x / neurons.HIST_SCALE) * neurons.HIST_PER_UNIT

    for i, q in enumerate(neurons.QUANTILES):
        exact = np.quantile(sample, q, axis=0, method="inverted_cdf")
        assert np.abs(bins(built.quantiles[..., i]) - bins(exact)).max() <= 1.0 + 1e-6, q  # within its bin


def test_every_stored_context_gives_its_activation_again(lm, built):
    """The model run on a stored context alone reproduces the stored activation (for a sample of neurons)."""
    picked = [NeuronId(layer, n) for layer in range(lm.config.n_layer) for n in range(0, lm.config.d_mlp, 97)]
    for neuron in picked:
        for c in built.contexts(neuron):
            t = trace_ids(lm, c.token_ids, stages=["mlp.act"], layers=[neuron.layer])
            again = t[neuron.stage][c.firing, neuron.index].item()
            assert abs(again - c.activation) < 1e-3, (neuron, c)
            assert c.firing <= neurons.WINDOW - 1 and len(c.token_ids) - c.firing - 1 <= neurons.AFTER


def test_rerun_contexts_tints_with_the_models_own_values(lm, built):
    neuron = NeuronId(2, 403)
    stored = built.contexts(neuron)
    for c, values in zip(stored, neurons.rerun_contexts(lm, neuron, stored)):
        assert len(values) == len(c.token_ids)
        assert abs(values[c.firing] - c.activation) < 1e-3


def test_written_and_read_back_unchanged(lm, built, tmp_path):
    path = neurons.write_index(built, tmp_path / "slice.npz")
    again = neurons.read_index(path, lm)
    assert again.meta == json.loads(json.dumps(built.meta))
    for name, array in built.arrays().items():
        np.testing.assert_array_equal(getattr(again, name), array)
        assert getattr(again, name).dtype == array.dtype
    with zipfile.ZipFile(path) as z:  # a zip of plain .npy arrays and one JSON file: no pickle
        assert sorted(z.namelist()) == sorted(["meta.json"] + [f"{n}.npy" for n in neurons.ARRAYS])
    assert again.meta["weights"] == [{"file": "shakespeare.safetensors",
                                      "sha256": neurons.weights_fingerprint(lm)[0]["sha256"]}]


def test_same_corpus_same_bytes(lm, slice_ids, tmp_path):
    ids = slice_ids[:300]
    a = neurons.write_index(neurons.build_index(lm, ids, {"kind": "text", "file": "x"}), tmp_path / "a.npz")
    b = neurons.write_index(neurons.build_index(lm, ids, {"kind": "text", "file": "x"}), tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes()


def test_a_stale_index_is_refused(lm, built, tmp_path):
    path = neurons.write_index(built, tmp_path / "slice.npz")
    assets = tmp_path / "assets"
    shutil.copytree(loader.ASSETS, assets, ignore=shutil.ignore_patterns("*.npz"))
    weights = assets / "shakespeare.safetensors"
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0x01  # one bit of the last weight
    weights.write_bytes(bytes(data))
    retrained = loader.load_embedded(assets=assets)
    with pytest.raises(NeuronIndexError, match="built for other weights.*stale.*--build-index"):
        neurons.read_index(path, retrained)


def test_an_index_for_another_shape_is_refused(lm, built, tmp_path):
    path = neurons.write_index(built, tmp_path / "slice.npz")
    other = neurons.read_index(path)
    other.meta["model"]["d_mlp"] = 512
    with pytest.raises(NeuronIndexError, match="512 neurons"):
        neurons.check_fits(other, lm)


@pytest.mark.parametrize("damage", ["not a zip", "no meta", "other format", "truncated", "wrong shape"])
def test_a_broken_index_is_one_error(built, tmp_path, damage):
    path = neurons.write_index(built, tmp_path / "slice.npz")
    if damage == "not a zip":
        path.write_text("hello")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    else:
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        meta = json.loads(members["meta.json"])
        if damage == "no meta":
            del members["meta.json"]
        elif damage == "other format":
            meta["format"] = "something else"
        else:
            meta["model"]["n_layer"] = 3
        if "meta.json" in members:
            members["meta.json"] = json.dumps(meta).encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    with pytest.raises(NeuronIndexError, match=str(path)):
        neurons.read_index(path)


def test_a_missing_index_names_the_build():
    with pytest.raises(NeuronIndexError, match="no such file.*--build-index"):
        neurons.read_index("/nonexistent/x.npz")


# --- what a neuron writes, by hand from the weights file ---


def read_weights_by_hand(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """safetensors, read as its format says: an 8-byte header size, a JSON header, then raw little-endian data."""
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    base = 8 + size
    found = {}
    for name in names:
        entry = header[name]
        assert entry["dtype"] == "F16"
        start, end = entry["data_offsets"]
        data = np.frombuffer(raw[base + start:base + end], dtype="<f2")
        found[name] = data.astype(np.float64).reshape(entry["shape"])
    return found


def test_what_it_writes_is_the_weights_product(lm):
    w = read_weights_by_hand(loader.ASSETS / "shakespeare.safetensors",
                             ["h.2.mlp.c_proj.weight", "ln_f.weight", "wte.weight"])
    row = w["h.2.mlp.c_proj.weight"][403]  # GPT-2 stores the output projection [d_mlp, d_model]
    effect = w["wte.weight"] @ ((row - row.mean()) * w["ln_f.weight"])
    order = np.argsort(-effect, kind="stable")
    writes = neurons.what_it_writes(lm, NeuronId(2, 403), k=10)
    assert [p.id for p in writes.up] == order[:10].tolist()
    assert [p.id for p in writes.down] == order[::-1][:10].tolist()
    np.testing.assert_allclose([p.value for p in writes.up], effect[order[:10]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([p.value for p in writes.down], effect[order[::-1][:10]], rtol=1e-5, atol=1e-6)
    assert writes.up[0].text == lm.token_text(int(order[0]))
    assert abs(writes.norm - np.linalg.norm(row)) < 1e-5


@pytest.mark.parametrize("text, fragment", [
    ("2", "is not LAYER.NEURON"), ("2.x", "is not LAYER.NEURON"), ("-1.3", "is not LAYER.NEURON"),
    ("4.0", "layer 4 does not exist"), ("0.1024", "neuron 1024 does not exist"),
])
def test_a_bad_neuron_names_the_range(lm, text, fragment):
    with pytest.raises(ParameterError, match=fragment) as e:
        neurons.parse_neuron(text, lm)
    assert "layers 0..3 and neurons 0..1023" in str(e.value)


def test_a_neuron_is_named_as_the_command_takes_it(lm):
    neuron = neurons.parse_neuron(" 2.403 ", lm)
    assert neuron == NeuronId(2, 403) and neuron.text == "2.403"
    assert neuron.site == "blocks.2.mlp.act[neuron=403]" and stages.parse_site(neuron.site).select == {"neuron": 403}


def test_the_prompt_standing(lm, built):
    report = neurons.neuron_report(lm, NeuronId(2, 403), built, prompt="It was like an unskilful")
    p = report.prompt
    assert p.tokens[p.top] == " an" and p.values[p.top] == max(p.values)
    d = report.distribution
    s = p.standing
    assert s.over is not None and s.over[1] <= p.values[p.top]
    assert s.under is None or s.under[1] > p.values[p.top]
    assert s.beyond_max == (p.values[p.top] > d.maximum)
