"""Where a checkpoint's files are: a path, or a snapshot in the local Hugging Face cache.

Nothing here reads what the files hold; it finds them, or says why they are not there.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..embedded import EMBEDDED
from ..errors import ParameterError, TraceGPTError, UsageError
from ..weights import WeightsError


class CheckpointError(TraceGPTError):
    """A checkpoint folder that is incomplete, or describes a model tracegpt cannot compute."""


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
        f"or give the path of a checkpoint folder instead")


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
    """The model's source as a path (folder or weights file) if it exists, else a name in the local cache."""
    # absolute(), not resolve(): in the HF cache the files are links to blobs/<hash>, named for nothing.
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        folder = path
        return CheckpointFiles(name=folder.name, folder=folder, weights=find_weights(folder), origin="path")
    if path.is_file():
        if path.suffix not in (".safetensors", ".bin"):
            raise ParameterError("model", f"{source}: give a checkpoint folder, or a .safetensors or .bin weights file")
        file = path
        if not (file.parent / "config.json").is_file():
            raise CheckpointError(f"{file.parent}: no config.json beside {file.name}; a weights file needs its "
                                  f"config.json (the model's shape) in the same folder")
        return CheckpointFiles(name=file.parent.name, folder=file.parent, weights=[file], origin="path")
    looks_like_path = source.startswith(("/", "./", "../", "~", ".\\")) or "\\" in source or source.count("/") > 1 \
        or source.endswith((".safetensors", ".bin", ".json"))
    if looks_like_path or not HUB_NAME.match(source):
        raise ParameterError("model", f"{source}: no such file or folder")
    return find_in_cache(source)
