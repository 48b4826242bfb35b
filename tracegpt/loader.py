"""Finding a model and its tokenizer by name, and loading both ready to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import tiktoken
import torch

from . import tokenizer
from .embedded import ASSETS, EMBEDDED, default_model_name, ranks_path, read_card
from .errors import ParameterError
from .model import GPT, GPTConfig
from .weights import WeightsError, build_model, read_safetensors

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    name: str
    model: GPT
    encoding: tiktoken.Encoding
    card: dict = field(default_factory=dict)
    files: tuple[Path, ...] = ()  # every file the model was read from: never written over

    @property
    def config(self) -> GPTConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.wte.weight.device

    @cached_property
    def end_of_text(self) -> int | None:
        """The id of <|endoftext|>; None for a vocabulary without it, as some GPT-2-style checkpoints have."""
        if tokenizer.END_OF_TEXT not in self.encoding.special_tokens_set:
            return None
        return self.encoding.encode_single_token(tokenizer.END_OF_TEXT)

    @cached_property
    def longest_token_bytes(self) -> int:
        return max(len(b) for b in self.encoding.token_byte_values())

    def encode(self, text: str) -> list[int]:
        return tokenizer.encode(self.encoding, text)

    def token_text(self, token_id: int) -> str:
        return tokenizer.token_text(self.encoding, token_id)

    def describe(self) -> dict:
        c = self.config
        # How the model reads out and scales attention, which the explanations must say as it is:
        # a separate output head (untied) or the token embedding again; each block's factor on q·k.
        return {"name": self.name, "n_layer": c.n_layer, "n_head": c.n_head, "d_model": c.d_model,
                "n_ctx": c.n_ctx, "vocab_size": c.vocab_size, "n_params": self.model.n_params(),
                "tie_embeddings": c.tie_embeddings, "attn_scales": [float(b.attn.scale) for b in self.model.h]}


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ParameterError("device", f"{device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", f"{device}: no CUDA GPU is available here; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ParameterError("device", f"{device}: GPUs here are cuda:0..cuda:{torch.cuda.device_count() - 1}")
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError("device", f"{device}: supported devices are cpu and cuda")
    return dev


def load(source: str | None = None, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """Load a model by name: the embedded one, or (see checkpoints) a local GPT-2 checkpoint."""
    source = source or default_model_name()
    if dtype not in DTYPES:
        raise ParameterError("dtype", f"{dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    dev = resolve_device(device)
    if source == EMBEDDED:
        loaded = load_embedded()
    else:
        from .checkpoints import load_checkpoint  # a folder, a weights file, or a name in the local HF cache

        c = load_checkpoint(source, dtype=DTYPES[dtype])  # read straight into the dtype asked for
        loaded = LoadedModel(name=c.name, model=c.model, encoding=c.encoding, card=c.card,
                             files=checkpoint_files(Path(c.card["source"]), c.card["weights"]))
    loaded.model.to(dev, DTYPES[dtype])
    return loaded


def load_embedded(assets: Path = ASSETS, name: str = EMBEDDED) -> LoadedModel:
    card = read_card(assets, name)
    try:
        config = GPTConfig(**card["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{assets / name}.json: broken model card ({e})") from None
    state = read_safetensors(assets / card.get("weights", f"{name}.safetensors"))
    model = build_model(config, {k: v.float() for k, v in state.items()}, source=f"{name} weights")
    ranks = tokenizer.read_ranks(ranks_path(card, assets, name))
    encoding = tokenizer.encoding_from_ranks(name, ranks)
    if encoding.n_vocab != config.vocab_size:
        raise WeightsError(f"{name}: tokenizer has {encoding.n_vocab} tokens but the model {config.vocab_size}")
    files = (assets / f"{name}.json", assets / card.get("weights", f"{name}.safetensors"),
             ranks_path(card, assets, name))
    return LoadedModel(name=name, model=model, encoding=encoding, card=card, files=files)


# What a checkpoint folder holds that tracegpt reads (or that belongs to the model beside them).
CHECKPOINT_FILES = ("config.json", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                    "added_tokens.json", "special_tokens_map.json", "generation_config.json",
                    "model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_files(folder: Path, weights: list[str]) -> tuple[Path, ...]:
    return tuple(p for p in (folder / name for name in (*CHECKPOINT_FILES, *weights)) if p.exists())
