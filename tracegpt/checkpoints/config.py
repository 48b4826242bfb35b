"""A GPT-2 config.json as a GPTConfig; whatever the model cannot compute exactly is refused."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..files import read_json, short
from ..model import ACTIVATIONS, GPTConfig
from ..weights import StoredTensor
from .cache import CheckpointError

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
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise CheckpointError(f"{where}: architectures must be a list of names, not {short(archs)}")
    if model_type not in (None, "gpt2") or (model_type is None and not archs):
        raise CheckpointError(f"{where}: model_type {short(model_type)} is not GPT-2; tracegpt computes the GPT-2 "
                              f"architecture only (config.json with model_type 'gpt2')")
    other = [a for a in archs if a not in GPT2_ARCHITECTURES]
    if other:
        raise CheckpointError(f"{where}: architecture {other[0]} is not one tracegpt computes; it runs GPT-2 "
                              f"language models ({' or '.join(GPT2_ARCHITECTURES)})")
    if _flag(raw, "add_cross_attention", False, where):
        raise CheckpointError(f"{where}: add_cross_attention is set; tracegpt does not compute cross-attention")
    if raw.get("pruned_heads"):
        raise CheckpointError(f"{where}: pruned_heads is set; tracegpt needs every block to keep all its heads")
    if raw.get("quantization_config"):
        raise CheckpointError(f"{where}: quantized checkpoints are not supported; use the unquantized weights")

    args = {}
    for ours in SHAPE_KEYS:
        spelled, value = spelling(raw, ours)
        if not _is_positive_int(value):
            raise CheckpointError(f"{where}: {spelled} must be a positive integer, not {short(value)}")
        args[ours] = value
    n_inner = raw.get("n_inner")
    if n_inner is not None and not _is_positive_int(n_inner):
        raise CheckpointError(f"{where}: n_inner must be null or a positive integer, not {short(n_inner)}")
    args["d_mlp"] = n_inner or 0
    eps = raw.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise CheckpointError(f"{where}: layer_norm_epsilon must be a positive finite number, not {short(eps)}")
    args["layer_norm_eps"] = float(eps)
    activation = raw.get("activation_function", "gelu_new")
    if not isinstance(activation, str):
        raise CheckpointError(f"{where}: activation_function must be a string, not {short(activation)}")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{where}: activation_function {short(activation)} is not one tracegpt computes; "
                              f"supported: {', '.join(sorted(ACTIVATIONS))}")
    args["activation"] = activation
    for ours, key in FLAG_KEYS.items():
        args[ours] = _flag(raw, key, ours == "scale_attn_weights", where)
    args["tie_embeddings"] = _flag(raw, "tie_word_embeddings", True, where)

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


def spelling(raw: dict, ours: str) -> tuple[str, object]:
    """A size as config.json gives it: the key it uses (or transformers' alias) and its value."""
    key, alias = SHAPE_KEYS[ours]
    if key not in raw and alias in raw:
        return alias, raw[alias]
    return key, raw.get(key, GPT2_DEFAULTS[ours])


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _flag(raw: dict, key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise CheckpointError(f"{where}: {key} must be true or false, not {short(value)}")
    return value


def read_config(folder: Path) -> tuple[GPTConfig, dict]:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json; a checkpoint folder needs config.json "
                              f"(the model's shape) beside its weights")
    raw = read_json(path, CheckpointError)
    return config_from_hf(raw, str(path)), raw


# ---------------------------------------------------------------------------------------------
# The config against the weights, before a model is built: a config.json that names sizes its
# weights do not have (n_layer 100000 beside three blocks) is refused from the files' headers,
# not after building a model of that size.

BLOCK = re.compile(r"h\.(\d{1,9})\.")


def check_sizes(config: GPTConfig, raw: dict, stored: dict[str, StoredTensor], weights: str,
                config_path: Path) -> None:
    """Every size in config.json against the shapes of the tensors that hold it (by our names);
    `weights` names the files, for the one message that is not about a single tensor."""
    shapes = {name: t.shape for name, t in stored.items()}
    path_of = {name: t.path for name, t in stored.items()}
    fields = {ours: spelling(raw, ours) for ours in ("vocab_size", "d_model", "n_ctx")}
    fields["d_mlp"] = ("n_inner", raw.get("n_inner") or None)
    holders = [  # a tensor, the shape the config gives it, and the config's field for each dimension
        ("wte.weight", [config.vocab_size, config.d_model], ("vocab_size", "d_model")),
        ("wpe.weight", [config.n_ctx, config.d_model], ("n_ctx", "d_model")),
    ]
    for name, needs, dims in holders:
        _check_tensor(name, needs, dims, shapes, path_of, fields, config_path)

    numbers = sorted({int(m.group(1)) for name in shapes if (m := BLOCK.match(name))})
    held = len(numbers)
    if numbers != list(range(held)):
        gap = next(i for i in range(held) if i not in set(numbers))
        raise CheckpointError(f"{weights}: has blocks up to h.{numbers[-1]} but no h.{gap}; the blocks must be "
                              f"numbered from h.0 without gaps")
    if held != config.n_layer:
        key, value = spelling(raw, "n_layer")
        blocks = f"{held} blocks (h.0 to h.{held - 1})" if held else "no blocks"
        raise CheckpointError(f"{weights}: holds {blocks} but {config_path} has {key} {value}")
    _check_tensor("h.0.mlp.c_fc.weight", [config.d_model, config.d_mlp], ("d_model", "d_mlp"),
                  shapes, path_of, fields, config_path)


def _check_tensor(name, needs, dims, shapes, path_of, fields, config_path):
    got = shapes.get(name)
    if got is None or list(got) == needs:
        return  # a missing tensor is named when the model's full list is checked
    field = next((f for f, g, n in zip(dims, got, needs) if g != n), dims[0])
    key, value = fields[field]
    said = f"has {key} {value}" if value is not None else f"has no {key}, which means 4 * n_embd = {needs[1]}"
    raise CheckpointError(f"{path_of[name]}: tensor {name!r} has shape {list(got)} but the config needs {needs} "
                          f"({config_path} {said})")
