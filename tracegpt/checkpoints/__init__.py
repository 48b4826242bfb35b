"""Local GPT-2 checkpoints: find one, read its config, weights and tokenizer, build the compact GPT.

    --model ./my-run                        a folder: config.json + model.safetensors (or shards,
                                            or pytorch_model.bin) + vocab.json and merges.txt
    --model ./my-run/model.safetensors      one weights file, config.json beside it
    --model gpt2 | openai-community/gpt2    a snapshot in the local Hugging Face cache

Nothing here touches the network, and transformers is not needed: the files are read directly.
Whatever the model cannot represent (another architecture, an activation or a flag that changes
the arithmetic) is refused with a message, rather than traced with wrong numbers.

cache finds the files, config reads config.json (and checks its sizes against the weights),
hf_tokenizer turns the BPE files into a tiktoken encoding; tracegpt.weights reads the tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tiktoken
import torch

from ..files import why
from ..model import GPT
from ..weights import checkpoint_tensors, load_model
from .cache import CheckpointError, CheckpointFiles, resolve
from .config import check_sizes, read_config
from .hf_tokenizer import read_tokenizer

__all__ = ["Checkpoint", "CheckpointError", "CheckpointFiles", "load_checkpoint", "resolve"]


@dataclass
class Checkpoint:
    """What a checkpoint folder holds, ready to run; the loader wraps it in a LoadedModel."""

    name: str
    model: GPT
    encoding: tiktoken.Encoding
    card: dict


def load_checkpoint(source: str, dtype: torch.dtype = torch.float32) -> Checkpoint:
    """A local GPT-2 checkpoint (path or cached name), its model on the CPU in `dtype`.

    Everything a file says about sizes is checked against the others before anything is
    built or read: the config against the weights' headers, the tokenizer against the config,
    every tensor's shape against the model; only then are the tensors read.
    """
    try:
        return _load(source, dtype)
    except OSError as e:  # a folder or file that cannot be listed or read, wherever it turns up
        raise CheckpointError(f"{e.filename or source}: cannot read ({why(e)})") from None


def _load(source: str, dtype: torch.dtype) -> Checkpoint:
    files = resolve(source)
    config, raw = read_config(files.folder)
    stored = checkpoint_tensors(files.weights, tie=config.tie_embeddings)  # headers only
    where = str(files.weights[0]) if len(files.weights) == 1 else f"{files.folder} ({len(files.weights)} shards)"
    check_sizes(config, raw, stored, weights=where, config_path=files.folder / "config.json")
    encoding, tokenizer_card = read_tokenizer(files.folder, files.name, config.vocab_size)
    model = load_model(config, stored, source=where, dtype=dtype)
    card = {
        "source": str(files.folder), "origin": files.origin, "revision": files.revision,
        "weights": [p.name for p in files.weights], "format": files.format,
        "config": {k: v for k, v in asdict(config).items() if k != "extra"},
        "hf_config": raw, "tokenizer": tokenizer_card,
    }
    return Checkpoint(name=files.name, model=model, encoding=encoding, card=card)
