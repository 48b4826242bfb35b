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
from ..files import read_json
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


CACHE_SETTINGS = (  # the order huggingface_hub reads them in, and where each puts the hub cache
    ("HF_HUB_CACHE", ()), ("HUGGINGFACE_HUB_CACHE", ()), ("HF_HOME", ("hub",)),
    ("XDG_CACHE_HOME", ("huggingface", "hub")),
)


def hub_cache_dir() -> tuple[Path, str]:
    """The Hugging Face hub cache, and which setting chose it."""
    for variable, below in CACHE_SETTINGS:
        value = os.environ.get(variable)
        if value:
            try:
                return Path(value).expanduser().joinpath(*below), variable
            except RuntimeError:  # ~user for a user this machine does not have
                raise UsageError(f"{variable}={value}: {_no_user(value)}") from None
    return Path.home() / ".cache" / "huggingface" / "hub", "the default"


def _no_user(path: str) -> str:
    user = path.split("/")[0].removeprefix("~")
    return f"no user {user!r} here, so ~{user} names no folder"


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
        commit = read_ref(ref)
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


COMMIT = re.compile(r"[0-9a-f]{40}")


def read_ref(ref: Path) -> str:
    """The commit a refs/ file names: huggingface_hub writes the 40 hex digits and nothing else."""
    try:
        commit = ref.read_bytes().decode("ascii").strip()
    except UnicodeDecodeError:
        commit = None
    if commit is None or not COMMIT.fullmatch(commit):
        raise CheckpointError(f"{ref}: not a commit hash (a ref holds 40 hex digits); the cache looks damaged, "
                              f"download the model again")
    return commit


def find_in_cache(name: str) -> CheckpointFiles:
    """A hub-style name in the local cache, or a usage error that says how to get it there."""
    repo, _, revision = name.partition("@")
    if ".." in revision.split("/"):
        raise ParameterError("model", f"{name}: revision {revision!r} is not a branch, tag or commit")
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
    """The shards an index names, each once, in order: files beside it, of the index's own format."""
    doc = read_json(index, WeightsError)
    if not isinstance(doc, dict) or "weight_map" not in doc:
        raise WeightsError(f"{index}: not a shard index (no weight_map)")
    weight_map = doc["weight_map"]
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{index}: weight_map must be a JSON object of tensor -> file")
    suffix = Path(index.name.removesuffix(".index.json")).suffix  # .safetensors or .bin
    shards: dict[str, None] = {}
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise WeightsError(f"{index}: weight_map gives {tensor!r} {json.dumps(shard)[:60]}, "
                               f"which is not a file name")
        if Path(shard).name != shard or shard in (".", ".."):
            raise WeightsError(f"{index}: shard {shard!r} is not a file beside the index")
        if not shard.endswith(suffix):
            raise WeightsError(f"{index}: shard {shard!r} is not a {suffix} file")
        shards[shard] = None
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
    try:
        path = Path(source).expanduser().absolute()
    except RuntimeError:  # ~user for a user this machine does not have
        raise ParameterError("model", f"{source}: {_no_user(source)}") from None
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
