"""Local GPT-2 checkpoints: find one, read its config, weights and tokenizer, build the compact GPT.

    --model ./my-run                        a folder: config.json + model.safetensors (or shards,
                                            or pytorch_model.bin) + vocab.json and merges.txt
    --model ./my-run/model.safetensors      one weights file, config.json beside it
    --model gpt2 | openai-community/gpt2    a snapshot in the local Hugging Face cache

Nothing here touches the network, and transformers is not needed: the files are read directly.
Whatever the model cannot represent (another architecture, an activation or a flag that changes
the arithmetic) is refused with a message, rather than traced with wrong numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import tiktoken
import torch

from .errors import TraceGPTError, UsageError
from .loader import EMBEDDED, LoadedModel
from .model import ACTIVATIONS, GPTConfig
from .tokenizer import GPT2_SPLIT, TokenizerError
from .weights import (
    IGNORED_SUFFIXES,
    WeightsError,
    build_model,
    check_safetensors_header,
    read_pytorch_bin,
)


class CheckpointError(TraceGPTError):
    """A checkpoint folder that is incomplete, or describes a model tracegpt cannot compute."""


# ---------------------------------------------------------------------------------------------
# Where the files are: a path, or a snapshot in the Hugging Face cache

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# Bare names of the GPT-2 family, and the organisation the hub now keeps them under.
HUB_ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(@[\w./-]+)?$")


@dataclass
class CheckpointFiles:
    name: str  # what the model is called in messages: the repo id, or the folder's name
    folder: Path  # config.json and the tokenizer files live here
    weights: list[Path]  # one file, or every shard in order
    origin: str  # "path" or "cache"
    revision: str | None = None  # the cache snapshot's commit

    @property
    def format(self) -> str:
        return "safetensors" if self.weights[0].suffix == ".safetensors" else "pytorch"


def hub_cache_dir() -> tuple[Path, str]:
    """The Hugging Face hub cache, and which setting chose it (the order huggingface_hub uses)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser(), "HF_HUB_CACHE"
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser(), "HUGGINGFACE_HUB_CACHE"
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub", "HF_HOME"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub", "XDG_CACHE_HOME"
    return Path.home() / ".cache" / "huggingface" / "hub", "the default"


def repo_ids(name: str) -> list[str]:
    """Repo ids to look for: the name itself, then where the hub keeps a bare GPT-2 name now."""
    ids = [name]
    if name in HUB_ALIASES:
        ids.append(HUB_ALIASES[name])
    return ids


def cache_folder_name(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def find_snapshot(repo_dir: Path, revision: str | None) -> tuple[Path, str] | None:
    """models--ORG--NAME/snapshots/<commit>: the one refs/<revision or main> names, else the newest."""
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / (revision or "main")
    if ref.is_file():
        commit = ref.read_text().strip()
        if (snapshots / commit).is_dir():
            return snapshots / commit, commit
    if revision is not None:
        return (snapshots / revision, revision) if (snapshots / revision).is_dir() else None
    found = [d for d in snapshots.iterdir() if d.is_dir()] if snapshots.is_dir() else []
    complete = [d for d in found if (d / "config.json").is_file()]
    if not (complete or found):
        return None
    newest = max(complete or found, key=lambda d: d.stat().st_mtime)
    return newest, newest.name


def find_in_cache(name: str) -> CheckpointFiles:
    """A hub-style name in the local cache, or a usage error that says how to get it there."""
    repo, _, revision = name.partition("@")
    cache, chosen_by = hub_cache_dir()
    for repo_id in repo_ids(repo):
        hit = find_snapshot(cache / cache_folder_name(repo_id), revision or None)
        if hit is not None:
            folder, commit = hit
            return CheckpointFiles(name=repo_id, folder=folder, weights=find_weights(folder),
                                   origin="cache", revision=commit)
    wanted = repo_ids(repo)[-1]
    looked = " or ".join(cache_folder_name(r) for r in repo_ids(repo))
    raise UsageError(
        f"unknown model {name!r}: not the embedded model ({EMBEDDED}), not a file or folder here, and not in the "
        f"local Hugging Face cache (no {looked} in {cache}, chosen by {chosen_by}). tracegpt never downloads: "
        f"on a machine with network run `hf download {wanted}` (older huggingface_hub: `huggingface-cli download "
        f"{wanted}`), copy its {cache_folder_name(wanted)} folder into {cache} here (or set HF_HUB_CACHE), "
        f"or pass --model the path of a checkpoint folder")


def find_weights(folder: Path) -> list[Path]:
    """The weights in a checkpoint folder: safetensors first (as transformers prefers), shards in order."""
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json; a checkpoint folder needs config.json "
                              f"(the model's shape) beside its weights")
    for file in WEIGHT_FILES:
        path = folder / file
        if path.is_file():
            return read_shard_index(path) if file.endswith(".index.json") else [path]
    others = sorted(p.name for p in folder.glob("*") if p.suffix in (".h5", ".msgpack", ".ckpt", ".onnx", ".gguf"))
    also = f" (found {', '.join(others)}, which tracegpt cannot read)" if others else ""
    raise CheckpointError(f"{folder}: no weights; expected model.safetensors, model.safetensors.index.json "
                          f"or pytorch_model.bin{also}")


def read_shard_index(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = list(dict.fromkeys(weight_map.values()))  # each shard once, in order
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise WeightsError(f"{index}: not a shard index ({type(e).__name__}: {e})") from None
    paths = [index.parent / s for s in shards]
    for path in paths:
        if not path.is_file():
            raise WeightsError(f"{index}: shard {path.name} is missing; the download looks incomplete")
    if not paths:
        raise WeightsError(f"{index}: the shard index lists no files")
    return paths


def resolve(source: str) -> CheckpointFiles:
    """--model as a path (folder or weights file) if it exists, else a name in the local cache."""
    # absolute(), not resolve(): in the HF cache the files are links to blobs/<hash>, named for nothing.
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        folder = path
        return CheckpointFiles(name=folder.name, folder=folder, weights=find_weights(folder), origin="path")
    if path.is_file():
        if path.suffix not in (".safetensors", ".bin"):
            raise UsageError(f"--model {source}: give a checkpoint folder, or a .safetensors or .bin weights file")
        file = path
        if not (file.parent / "config.json").is_file():
            raise CheckpointError(f"{file.parent}: no config.json beside {file.name}; a weights file needs its "
                                  f"config.json (the model's shape) in the same folder")
        return CheckpointFiles(name=file.parent.name, folder=file.parent, weights=[file], origin="path")
    looks_like_path = source.startswith(("/", "./", "../", "~", ".\\")) or "\\" in source or source.count("/") > 1 \
        or source.endswith((".safetensors", ".bin", ".json"))
    if looks_like_path or not HUB_NAME.match(source):
        raise UsageError(f"--model {source}: no such file or folder")
    return find_in_cache(source)


# ---------------------------------------------------------------------------------------------
# config.json -> GPTConfig

GPT2_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
# Keys of a GPT-2 config.json that do not change the forward pass's arithmetic (dropout is off
# in inference; summary_* belong to GPT2DoubleHeadsModel; the rest is bookkeeping).
NEUTRAL_KEYS = {
    "architectures", "model_type", "transformers_version", "_name_or_path", "dtype", "torch_dtype",
    "attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout", "initializer_range",
    "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
    "use_cache", "output_past", "gradient_checkpointing", "bos_token_id", "eos_token_id", "pad_token_id",
    "sep_token_id", "decoder_start_token_id", "task_specific_params", "id2label", "label2id", "num_labels",
    "problem_type", "finetuning_task", "tokenizer_class", "prefix", "n_ctx", "_attn_implementation",
    "attn_implementation", "return_dict", "output_attentions", "output_hidden_states", "torchscript",
    "is_decoder", "is_encoder_decoder", "max_length", "min_length", "do_sample", "num_beams",
    "temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "early_stopping", "bad_words_ids", "num_return_sequences", "chunk_size_feed_forward",
    "cross_attention_hidden_size", "use_bfloat16", "tf_legacy_loss", "torch_compile",
}
SHAPE_KEYS = {  # ours <- config.json's name (and the alias transformers also accepts)
    "n_layer": ("n_layer", "num_hidden_layers"),
    "n_head": ("n_head", "num_attention_heads"),
    "d_model": ("n_embd", "hidden_size"),
    "n_ctx": ("n_positions", "max_position_embeddings"),
    "vocab_size": ("vocab_size", None),
}
FLAG_KEYS = {  # ours <- config.json's flags that change the arithmetic, all computed by model.py
    "scale_attn_weights": "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx": "scale_attn_by_inverse_layer_idx",
    "upcast_attn": "reorder_and_upcast_attn",
}
# transformers' GPT2Config defaults, used as it uses them when a key is absent.
GPT2_DEFAULTS = {"n_layer": 12, "n_head": 12, "d_model": 768, "n_ctx": 1024, "vocab_size": 50257}
# An unknown key with one of these words and a value that is set probably changes the arithmetic.
ARITHMETIC_WORDS = re.compile(r"attn|attention|scale|upcast|norm|rope|rotary|alibi|parallel|residual|"
                              r"quant|position|activation|bias|logit|softcap|window", re.I)


def config_from_hf(raw: dict, where: str) -> GPTConfig:
    """A GPT-2 config.json as a GPTConfig; anything it cannot compute exactly is refused."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where}: config.json is not a JSON object")
    model_type = raw.get("model_type")
    archs = raw.get("architectures") or []
    if model_type not in (None, "gpt2") or (model_type is None and not archs):
        raise CheckpointError(f"{where}: model_type {model_type!r} is not GPT-2; tracegpt computes the GPT-2 "
                              f"architecture only (config.json with model_type 'gpt2')")
    other = [a for a in archs if a not in GPT2_ARCHITECTURES]
    if other:
        raise CheckpointError(f"{where}: architecture {other[0]} is not one tracegpt computes; it runs GPT-2 "
                              f"language models ({' or '.join(GPT2_ARCHITECTURES)})")
    if raw.get("add_cross_attention"):
        raise CheckpointError(f"{where}: add_cross_attention is set; tracegpt does not compute cross-attention")
    if raw.get("pruned_heads"):
        raise CheckpointError(f"{where}: pruned_heads is set; tracegpt needs every block to keep all its heads")
    if raw.get("quantization_config"):
        raise CheckpointError(f"{where}: quantized checkpoints are not supported; use the unquantized weights")

    args = {}
    for ours, (key, alias) in SHAPE_KEYS.items():
        value = raw.get(key, raw.get(alias, GPT2_DEFAULTS[ours]) if alias else GPT2_DEFAULTS[ours])
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{where}: {key} must be a positive integer, not {value!r}")
        args[ours] = value
    n_inner = raw.get("n_inner")
    if n_inner is not None and (isinstance(n_inner, bool) or not isinstance(n_inner, int) or n_inner < 1):
        raise CheckpointError(f"{where}: n_inner must be null or a positive integer, not {n_inner!r}")
    args["d_mlp"] = n_inner or 0
    eps = raw.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise CheckpointError(f"{where}: layer_norm_epsilon must be a positive number, not {eps!r}")
    args["layer_norm_eps"] = float(eps)
    activation = raw.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{where}: activation_function {activation!r} is not one tracegpt computes; "
                              f"supported: {', '.join(sorted(ACTIVATIONS))}")
    args["activation"] = activation
    for ours, key in FLAG_KEYS.items():
        value = raw.get(key, ours == "scale_attn_weights")
        if not isinstance(value, bool):
            raise CheckpointError(f"{where}: {key} must be true or false, not {value!r}")
        args[ours] = value
    tie = raw.get("tie_word_embeddings", True)
    args["tie_embeddings"] = bool(tie)

    known = NEUTRAL_KEYS | {"n_inner", "layer_norm_epsilon", "activation_function", "tie_word_embeddings",
                            "add_cross_attention", "pruned_heads", "quantization_config"} \
        | set(FLAG_KEYS.values()) | {k for pair in SHAPE_KEYS.values() for k in pair if k}
    unknown = sorted(k for k in raw if k not in known)
    for key in unknown:
        if ARITHMETIC_WORDS.search(key) and raw[key] not in (None, False, 0, "", [], {}):
            raise CheckpointError(f"{where}: config.json sets {key} = {json.dumps(raw[key])[:60]}, which GPT-2 does "
                                  f"not have; it may change the arithmetic, so tracegpt refuses rather than guess")
    args["extra"] = {"model_type": "gpt2", "architectures": archs, "ignored_keys": unknown}
    try:
        return GPTConfig(**args)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None


def read_config(folder: Path) -> tuple[GPTConfig, dict]:
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no config.json; a checkpoint folder needs config.json "
                              f"(the model's shape) beside its weights") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    return config_from_hf(raw, str(path)), raw


# ---------------------------------------------------------------------------------------------
# Weights, tensor by tensor: renamed and cast as they are read, so the peak is about
# the finished model plus one tensor (gpt2-xl in float32 is 6.2 GB; twice that would not fit).

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _skipped(hf_name: str, tie: bool) -> bool:
    name = hf_name.removeprefix("transformer.")
    # The causal-mask buffers some files carry (we compute the mask), and a tied head's copy of wte.
    return name.endswith(IGNORED_SUFFIXES) or (tie and name == "lm_head.weight")


def iter_safetensors(path: Path, skip) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) from a safetensors file, read with plain reads rather than a memory map.

    A memory map would count the whole file in the process's resident memory while the tensors
    are copied out of it; reading each tensor into its own buffer keeps the peak at one tensor.
    """
    check_safetensors_header(path)  # a truncated or absurd file is refused before anything is read
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            if skip(name):
                continue
            dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
            if dtype is None:
                raise WeightsError(f"{path}: tensor {name!r} is stored as {info.get('dtype')}, "
                                   f"which tracegpt cannot read")
            start, end = info["data_offsets"]
            shape = info.get("shape", [])
            if end - start != math.prod(shape) * dtype.itemsize:
                raise WeightsError(f"{path}: tensor {name!r} has {end - start} bytes for shape {shape}; corrupted file")
            buf = bytearray(end - start)
            f.seek(8 + n + start)
            if f.readinto(buf) != len(buf):
                raise WeightsError(f"{path}: tensor {name!r} is cut short; truncated file")
            yield name, (torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)).reshape(shape)


def iter_pytorch_bin(path: Path, skip) -> Iterator[tuple[str, torch.Tensor]]:
    state = read_pytorch_bin(path)  # weights_only=True: tensors, never code
    for name in list(state):
        tensor = state.pop(name)  # let each original go as soon as it is converted
        if not skip(name):
            yield name, tensor


def read_weights(files: CheckpointFiles, tie: bool, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our names (prefix dropped), cast to dtype."""
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for path in files.weights:
        reader = iter_safetensors if path.suffix == ".safetensors" else iter_pytorch_bin
        for hf_name, tensor in reader(path, lambda n: _skipped(n, tie)):
            name = hf_name.removeprefix("transformer.")
            if name in state:
                raise WeightsError(f"{path}: tensor {name!r} appears twice (as {origin[name]!r} and {hf_name!r})")
            if not tensor.is_floating_point():
                raise WeightsError(f"{path}: tensor {hf_name!r} is {tensor.dtype}, not floating point")
            if tensor.dtype != dtype or not tensor.is_contiguous():
                tensor = torch.empty(tensor.shape, dtype=dtype).copy_(tensor)  # one copy: cast
            state[name], origin[name] = tensor, hf_name
    return state


# ---------------------------------------------------------------------------------------------
# vocab.json + merges.txt (or tokenizer.json) -> a tiktoken Encoding with the checkpoint's ids


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte, as vocab.json and merges.txt spell them."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = dict(zip(printable, printable))
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra  # the unprintable bytes borrow characters past Latin-1
            extra += 1
    return {b: chr(c) for b, c in chars.items()}


BYTE_OF_CHAR = {c: b for b, c in bytes_to_unicode().items()}


def _token_bytes(token: str) -> bytes | None:
    try:
        return bytes(BYTE_OF_CHAR[c] for c in token)
    except KeyError:
        return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TokenizerError(f"{path}: cannot read ({str(e).splitlines()[0]})") from None


def read_bpe_files(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]], str]:
    """The vocabulary and the merges, from vocab.json + merges.txt or else tokenizer.json."""
    vocab_path, merges_path, tok_path = folder / "vocab.json", folder / "merges.txt", folder / "tokenizer.json"
    if vocab_path.is_file() or merges_path.is_file():
        missing = merges_path if vocab_path.is_file() else vocab_path
        if not missing.is_file():
            raise TokenizerError(f"{folder}: {missing.name} is missing; the tokenizer needs vocab.json and merges.txt")
        vocab = _read_json(vocab_path)
        try:
            lines = merges_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{merges_path}: cannot read ({e})") from None
        merges = []
        for number, line in enumerate(lines, 1):
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise TokenizerError(f"{merges_path}: line {number} is not two tokens separated by a space")
            merges.append((parts[0], parts[1]))
        source = "vocab.json + merges.txt"
    elif tok_path.is_file():
        doc = _read_json(tok_path)
        doc = doc if isinstance(doc, dict) else {}
        model, pre = doc.get("model") or {}, doc.get("pre_tokenizer") or {}
        if model.get("type") != "BPE" or pre.get("type") != "ByteLevel" or doc.get("normalizer") \
                or not pre.get("use_regex", True) or pre.get("add_prefix_space") \
                or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("dropout"):
            raise TokenizerError(f"{tok_path}: not a GPT-2 style byte-level BPE tokenizer (model {model.get('type')}, "
                                 f"pre-tokenizer {pre.get('type')}); tracegpt reads GPT-2's byte-level BPE only")
        vocab = model.get("vocab")
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
        source = "tokenizer.json"
    else:
        raise TokenizerError(f"{folder}: no tokenizer files; copy the model's vocab.json and merges.txt "
                             f"(or tokenizer.json) beside its config.json")
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise TokenizerError(f"{folder}: the vocabulary in {source} is not a JSON object of token -> id")
    if any(len(m) != 2 for m in merges):
        raise TokenizerError(f"{folder}: a merge in {source} is not a pair of tokens")
    return vocab, merges, source


def read_added_tokens(folder: Path) -> dict[str, int]:
    """Added and special tokens (content -> id) from the files transformers saves beside the vocabulary."""
    added: dict[str, int] = {}
    tok = folder / "tokenizer.json"
    if tok.is_file():
        for t in (_read_json(tok) or {}).get("added_tokens") or []:
            if isinstance(t, dict) and isinstance(t.get("content"), str) and isinstance(t.get("id"), int):
                added[t["content"]] = t["id"]
    config = folder / "tokenizer_config.json"
    if config.is_file():
        doc = _read_json(config) or {}
        if doc.get("add_prefix_space"):
            raise TokenizerError(f"{config}: add_prefix_space is true; tracegpt's tokenizer never adds a space before "
                                 f"the text, so its ids would differ from the checkpoint's; set it to false")
        for i, t in (doc.get("added_tokens_decoder") or {}).items():
            if isinstance(t, dict) and isinstance(t.get("content"), str) and str(i).isdigit():
                added[t["content"]] = int(i)
    extra = folder / "added_tokens.json"
    if extra.is_file():
        for content, i in (_read_json(extra) or {}).items():
            if isinstance(i, int):
                added[content] = i
    return added


def bpe_tables(vocab: dict[str, int], merges: list[tuple[str, str]], added: dict[str, int],
               where: str) -> tuple[dict[bytes, int], dict[str, int]]:
    """GPT-2 BPE files as tiktoken's two tables, mergeable ranks and special tokens, with the files' ids.

    tiktoken merges the adjacent pair whose joined bytes have the lowest id, where GPT-2's BPE
    merges the pair listed first in merges.txt: the two agree when the tokens that merges make
    have ids in merges.txt order, which is checked here (GPT-2's own files and those trained by
    `tokenizers` have it). Tokens that no merge makes (<|endoftext|>, added tokens) cannot come
    out of BPE; they become special tokens, which decode but never come out of ordinary text.
    """
    ranks: dict[bytes, int] = {}
    specials: dict[str, int] = {}
    for token, i in vocab.items():
        raw = _token_bytes(token)
        if raw is None:
            if token not in added:
                raise TokenizerError(f"{where}: token {token!r} (id {i}) is not spelled in GPT-2's byte-level alphabet")
            specials[token] = i
        elif raw in ranks:
            raise TokenizerError(f"{where}: ids {ranks[raw]} and {i} are the same bytes {raw!r}")
        else:
            ranks[raw] = i
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(f"{where}: no token for the byte 0x{missing[0]:02x}; byte-level BPE needs all 256 bytes")
    made: set[bytes] = set()
    previous = -1
    for number, (a, b) in enumerate(merges, 1):
        pa, pb = _token_bytes(a), _token_bytes(b)
        if pa not in ranks or pb not in ranks:
            raise TokenizerError(f"{where}: merge {number} ({a} {b}) joins a token that is not in the vocabulary")
        joined = pa + pb
        if joined not in ranks:
            raise TokenizerError(f"{where}: merge {number} ({a} {b}) makes a token that is not in the vocabulary")
        if ranks[joined] <= previous:
            raise TokenizerError(
                f"{where}: merge {number} ({a} {b}) makes id {ranks[joined]}, not above the id {previous} of the merge "
                f"before it; tiktoken merges by id, so tracegpt needs the ids in merges.txt order")
        previous = ranks[joined]
        made.add(joined)
    for raw in [raw for raw in ranks if len(raw) > 1 and raw not in made]:
        try:
            specials[raw.decode("utf-8")] = ranks.pop(raw)
        except UnicodeDecodeError:
            raise TokenizerError(f"{where}: token id {ranks[raw]} is made by no merge and is not valid UTF-8") from None
    taken = set(ranks.values()) | set(specials.values())
    for content, i in added.items():
        if content not in specials and i not in taken:
            specials[content] = i  # an added token kept outside vocab.json
            taken.add(i)
    if len(taken) != len(ranks) + len(specials):
        ids = sorted([*ranks.values(), *specials.values()])
        clash = next(a for a, b in zip(ids, ids[1:]) if a == b)
        raise TokenizerError(f"{where}: token id {clash} is given to two different tokens")
    return ranks, specials


def read_tokenizer(folder: Path, name: str, vocab_size: int) -> tuple[tiktoken.Encoding, dict]:
    vocab, merges, source = read_bpe_files(folder)
    where = f"{folder} ({source})"
    ranks, specials = bpe_tables(vocab, merges, read_added_tokens(folder), where)
    top = max([*ranks.values(), *specials.values()])
    if top >= vocab_size:
        raise TokenizerError(f"{where}: token id {top} does not exist in the model, whose vocabulary has "
                             f"{vocab_size} ids; the tokenizer belongs to another model")
    named = {**specials}
    # A model whose vocabulary was padded past the tokenizer (to a round number) can still
    # predict the padding ids; name them so that every id decodes.
    known = set(ranks.values()) | set(specials.values())
    unused = [i for i in range(vocab_size) if i not in known]
    named.update({f"<|unused_{i}|>": i for i in unused})
    encoding = tiktoken.Encoding(name=name, pat_str=GPT2_SPLIT, mergeable_ranks=ranks, special_tokens=named)
    card = {"source": source, "n_tokens": len(ranks) + len(specials), "n_merges": len(merges),
            "special_tokens": specials, "unused_ids": len(unused)}
    return encoding, card


# ---------------------------------------------------------------------------------------------
# Putting it together


def load_checkpoint(source: str, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """A local GPT-2 checkpoint (path or cached name) as a LoadedModel on the CPU, in `dtype`."""
    files = resolve(source)
    config, raw = read_config(files.folder)
    encoding, tokenizer_card = read_tokenizer(files.folder, files.name, config.vocab_size)
    state = read_weights(files, tie=config.tie_embeddings, dtype=dtype)
    where = str(files.weights[0]) if len(files.weights) == 1 else f"{files.folder} ({len(files.weights)} shards)"
    model = build_model(config, state, source=where, dtype=dtype)
    card = {
        "source": str(files.folder), "origin": files.origin, "revision": files.revision,
        "weights": [p.name for p in files.weights], "format": files.format,
        "config": {k: v for k, v in asdict(config).items() if k != "extra"},
        "hf_config": raw, "tokenizer": tokenizer_card,
    }
    return LoadedModel(name=files.name, model=model, encoding=encoding, card=card)
