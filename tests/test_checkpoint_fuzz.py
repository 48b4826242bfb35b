"""A small valid checkpoint, mutated: config fields, safetensors headers, tokenizer files,
pickled tensors, truncated and flipped bytes. Whatever the files say, `tracegpt trace` either
traces (a mutation can be harmless) or refuses in one line that names a file of the checkpoint.

Every case runs in a worker whose address space is capped at 3 GB (limited_cli): a case that
allocates what a file asks for fails, with the worker's death or `unexpected MemoryError`,
instead of eating the machine; one that runs past 10 s fails too. Examples are derandomized and
bounded, so the file runs in well under a minute.
"""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from checkpoint_kit import read_safetensors_parts, write_safetensors  # noqa: E402
from limited_cli import LimitedCli  # noqa: E402

MEMORY = 3 * 2**30
SECONDS = 10.0


def fuzz_settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def cli():
    with LimitedCli(MEMORY, timeout=SECONDS) as limited:
        limited.run("--version")  # the worker's start (torch's import) is no case's time
        yield limited


@pytest.fixture(scope="module")
def cases():
    """Every case's (what was mutated, seconds, exit code), summed up at the end (pytest -s shows it)."""
    seen = []
    yield seen
    if seen:
        slowest = max(seen, key=lambda c: c[1])
        refused = sum(1 for c in seen if c[2] != 0)
        print(f"\ncheckpoint fuzz: {len(seen)} cases, {refused} refused, {len(seen) - refused} traced; "
              f"slowest {slowest[1]:.2f} s ({slowest[0]})")


def check(cli, cases, base: Path, mutate, label: str):
    """Copy the checkpoint, mutate it, trace it; the invariants hold whatever the mutation."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ckpt"
        shutil.copytree(base, folder)
        mutate(folder)
        r = cli.run("trace", "hi", "--model", folder)
        cases.append((label, r.seconds, r.exit_code))
        assert r.exit_code is not None, (label, r.died, r.stderr)  # the worker lived, within time and memory
        assert r.exit_code in (0, 1, 2), (label, r.exit_code, r.stderr)
        assert r.seconds < SECONDS, (label, r.seconds)
        if r.exit_code == 0:
            assert r.stdout.strip(), label
            return
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (label, r.stderr)
        assert str(folder) in lines[0], (label, lines[0])  # names a file of the checkpoint (or the folder)
        assert "unexpected" not in lines[0] and "Traceback" not in r.stderr and "\x1b" not in r.stderr, (label, lines)


# ---------------------------------------------------------------------------------------------
# Values: JSON of any type, sizes far past anything real, and JSON nested too deep to parse

class Deep:
    """Stands for a value nested 100,000 lists deep (json.dumps would recurse too far to write it)."""

    def __repr__(self):
        return "DEEP"


DEEP = Deep()
SIZES = [0, 1, 2, 3, 7, 48, 397, 10**5, 10**7, 10**9, 2**31, 2**63, 10**18, -1, -(2**63)]
scalars = (st.none() | st.booleans() | st.integers(-3, 64) | st.sampled_from(SIZES)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6) | st.just(DEEP)


def dumps(doc) -> str:
    """json.dumps, with DEEP anywhere written as 100,000 nested lists."""
    marker = "@@DEEP@@"

    def swap(x):
        if x is DEEP:
            return marker
        if isinstance(x, list):
            return [swap(v) for v in x]
        if isinstance(x, dict):
            return {k: swap(v) for k, v in x.items()}
        return x

    return json.dumps(swap(doc)).replace(f'"{marker}"', "[" * 100_000 + "]" * 100_000)


def edit_json(path: Path, change):
    doc = json.loads(path.read_text())
    doc = change(doc)
    path.write_text(dumps(doc))


# ---------------------------------------------------------------------------------------------
# config.json

CONFIG_FIELDS = ["n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "n_inner", "layer_norm_epsilon",
                 "activation_function", "tie_word_embeddings", "scale_attn_weights", "reorder_and_upcast_attn",
                 "scale_attn_by_inverse_layer_idx", "model_type", "architectures", "add_cross_attention",
                 "num_hidden_layers", "hidden_size", "pruned_heads", "use_rotary_embeddings", "n_ctx"]


@st.composite
def config_mutations(draw):
    changes = draw(st.dictionaries(st.sampled_from(CONFIG_FIELDS) | st.text(max_size=6), json_values,
                                   min_size=1, max_size=3))
    dropped = draw(st.lists(st.sampled_from(CONFIG_FIELDS), max_size=2))
    whole = draw(st.none() | json_values) if draw(st.integers(0, 9)) == 0 else None

    def mutate(folder):
        def change(doc):
            if whole is not None:
                return whole
            for key in dropped:
                doc.pop(key, None)
            doc.update(changes)
            return doc
        edit_json(folder / "config.json", change)
    return mutate, f"config.json {changes!r:.120} dropped {dropped} whole {whole!r:.40}"


@fuzz_settings(45)
@given(mutation=config_mutations())
def test_config_json_mutated(cli, cases, made, mutation):
    check(cli, cases, made["3L3H-tied"][0], *mutation)


# ---------------------------------------------------------------------------------------------
# model.safetensors' header

ENTRY_FIELDS = ["dtype", "shape", "data_offsets"]


@st.composite
def header_mutations(draw):
    kind = draw(st.sampled_from(["field", "entry", "drop", "new", "metadata", "length", "whole"]))
    index = draw(st.integers(0, 40))
    field = draw(st.sampled_from(ENTRY_FIELDS))
    value = draw(json_values | st.sampled_from(["F16", "I64", "F8_E4M3", "BOOL"])
                 | st.lists(st.sampled_from(SIZES), min_size=1, max_size=4))
    length = draw(st.sampled_from([0, 1, 7, 2**20, 2**63, 2**64 - 1]) | st.integers(0, 20_000))

    def mutate(folder):
        path = folder / "model.safetensors"
        header, body = read_safetensors_parts(path)
        names = sorted(k for k in header if k != "__metadata__")
        name = names[index % len(names)]
        if kind == "field":
            header[name][field] = value
        elif kind == "entry":
            header[name] = value
        elif kind == "drop":
            del header[name][field]
        elif kind == "new":
            header["transformer.h.0.extra"] = {"dtype": "F32", "shape": value, "data_offsets": [0, 4]}
        elif kind == "metadata":
            header["__metadata__"] = value
        elif kind == "whole":
            header = value
        text = dumps(header).encode()
        if kind == "length":
            path.write_bytes(length.to_bytes(8, "little") + text + body)
        else:
            write_safetensors(path, text, body)
    return mutate, f"model.safetensors {kind} tensor #{index}.{field} = {value!r:.80} length {length}"


@fuzz_settings(45)
@given(mutation=header_mutations())
def test_safetensors_header_mutated(cli, cases, made, mutation):
    check(cli, cases, made["3L3H-tied"][0], *mutation)


# ---------------------------------------------------------------------------------------------
# Tokenizer files


@st.composite
def tokenizer_mutations(draw):
    kind = draw(st.sampled_from(["vocab_id", "vocab_token", "vocab_whole", "merges", "side_file", "tokenizer_json"]))
    value = draw(json_values)
    index = draw(st.integers(0, 400))
    side = draw(st.sampled_from(["tokenizer_config.json", "added_tokens.json", "special_tokens_map.json"]))
    side_doc = draw(st.dictionaries(st.sampled_from(["added_tokens_decoder", "add_prefix_space", "model_max_length"])
                                    | st.text(max_size=4), json_values, max_size=3) | json_values)
    line = draw(st.text(max_size=10))

    def mutate(folder):
        vocab = folder / "vocab.json"
        if kind == "vocab_id":
            edit_json(vocab, lambda d: {**d, sorted(d)[index % len(d)]: value})
        elif kind == "vocab_token":
            edit_json(vocab, lambda d: {**d, str(value): index})
        elif kind == "vocab_whole":
            vocab.write_text(dumps(value))
        elif kind == "merges":
            lines = (folder / "merges.txt").read_text().splitlines()
            lines.insert(1 + index % len(lines), line)
            (folder / "merges.txt").write_text("\n".join(lines) + "\n")
        elif kind == "side_file":
            (folder / side).write_text(dumps(side_doc))
        else:
            (folder / "tokenizer.json").write_text(dumps({"added_tokens": value, "model": side_doc}))
    return mutate, f"tokenizer {kind} {value!r:.60} at {index}, {side} {side_doc!r:.60}, line {line!r}"


@fuzz_settings(35)
@given(mutation=tokenizer_mutations())
def test_tokenizer_files_mutated(cli, cases, made, mutation):
    check(cli, cases, made["3L3H-tied"][0], *mutation)


# ---------------------------------------------------------------------------------------------
# Any file cut short or with a byte changed

FILES = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]


@st.composite
def byte_mutations(draw):
    file = draw(st.sampled_from(FILES))
    cut = draw(st.floats(0, 1))
    flip = draw(st.booleans())
    byte = draw(st.integers(0, 255))

    def mutate(folder):
        path = folder / file
        data = bytearray(path.read_bytes())
        at = int(cut * (len(data) - 1))
        if flip:
            data[at] = byte
        else:
            del data[at:]
        path.write_bytes(bytes(data))
    return mutate, f"{file} {'byte' if flip else 'cut'} at {cut:.3f} ({byte})"


@fuzz_settings(25)
@given(mutation=byte_mutations())
def test_files_cut_or_flipped(cli, cases, made, mutation):
    check(cli, cases, made["3L3H-tied"][0], *mutation)


# ---------------------------------------------------------------------------------------------
# pytorch_model.bin: tensors of other shapes, strides, dtypes, and things that are not tensors


@st.composite
def pickle_mutations(draw):
    kind = draw(st.sampled_from(["shape", "expanded", "dtype", "not_tensor", "key", "whole"]))
    index = draw(st.integers(0, 80))
    shape = draw(st.lists(st.sampled_from([0, 1, 2, 56, 397, 10**4]), max_size=3))
    huge = draw(st.sampled_from([10**6, 10**9, 10**12]))
    dtype = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool,
                                  torch.complex64, torch.uint8]))
    value = draw(st.none() | st.integers() | st.text(max_size=4) | st.lists(st.integers(), max_size=3))

    def mutate(folder):
        path = folder / "pytorch_model.bin"
        state = torch.load(path, weights_only=True)
        name = sorted(state)[index % len(state)]
        if kind == "shape":
            state[name] = torch.zeros(shape)
        elif kind == "expanded":
            state[name] = torch.zeros(1, 56).expand(huge, 56)
        elif kind == "dtype":
            state[name] = state[name].to(dtype)
        elif kind == "not_tensor":
            state[name] = value
        elif kind == "key":
            state[index] = state.pop(name)
        else:
            state = value
        torch.save(state, path)
    return mutate, f"pytorch_model.bin {kind} #{index} {shape} {huge} {dtype} {value!r:.30}"


@fuzz_settings(25)
@given(mutation=pickle_mutations())
def test_pytorch_weights_mutated(cli, cases, made, mutation):
    check(cli, cases, made["4L7H-hub-bin"][0], *mutation)
