"""A GPT-2 config.json as a GPTConfig; whatever the model cannot compute exactly is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..model import ACTIVATIONS, GPTConfig
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
