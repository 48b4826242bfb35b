"""Weights are read without running code, and every way a file can be wrong has a clear message."""

import json
import os

import pytest
import torch

from tracegpt import loader
from tracegpt.errors import TraceGPTError
from tracegpt.model import GPT, GPTConfig
from tracegpt.weights import WeightsError, build_model, read_pytorch_bin, read_safetensors, save_safetensors

SMALL = GPTConfig(n_layer=1, n_head=2, d_model=8, n_ctx=8, vocab_size=300)


def small_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(GPT(SMALL), path)
    return path


def test_round_trip(tmp_path):
    state = read_safetensors(small_file(tmp_path))
    model = build_model(SMALL, {k: v.float() for k, v in state.items()}, source="m")
    assert model.n_params() == GPT(SMALL).n_params()


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        read_safetensors(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path):
    path = small_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        read_safetensors(path)


@pytest.mark.parametrize("header", [b"\xff" * 8 + b"{}", (10**15).to_bytes(8, "little") + b"{}"])
def test_corrupted_or_absurd_header(tmp_path, header):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(header + b"\0" * 64)
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        read_safetensors(path)


def test_absurd_tensor_offsets(tmp_path):
    header = json.dumps({"wte.weight": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}})
    path = tmp_path / "huge.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + b"\0" * 16)
    with pytest.raises(WeightsError, match="outside the file"):
        read_safetensors(path)


def test_config_that_does_not_match_names_the_tensor(tmp_path):
    state = read_safetensors(small_file(tmp_path))
    wider = GPTConfig(n_layer=1, n_head=2, d_model=16, n_ctx=8, vocab_size=300)
    with pytest.raises(WeightsError, match="'wte.weight' has shape"):
        build_model(wider, state, source="m")
    deeper = GPTConfig(n_layer=2, n_head=2, d_model=8, n_ctx=8, vocab_size=300)
    with pytest.raises(WeightsError, match="'h.1.ln_1.weight' missing"):
        build_model(deeper, state, source="m")


class Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    torch.save({"wte.weight": torch.zeros(2), "x": Exploit(target)}, path)
    with pytest.raises(WeightsError, match="refused"):
        read_pytorch_bin(path)
    assert not target.exists()


def test_embedded_assets_that_are_broken_give_one_clear_error(tmp_path):
    for name in ("shakespeare.json", "shakespeare.safetensors", "shakespeare.tiktoken"):
        (tmp_path / name).write_bytes((loader.ASSETS / name).read_bytes())
    weights = tmp_path / "shakespeare.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(TraceGPTError, match="truncated or corrupted"):
        loader.load_embedded(tmp_path)
    (tmp_path / "shakespeare.json").write_text("{not json")
    with pytest.raises(TraceGPTError, match="broken model card"):
        loader.load_embedded(tmp_path)
