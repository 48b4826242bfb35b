"""The explanations, one TOML file per language, kept apart from the code that fills in numbers."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from ..errors import UsageError

LANGUAGES = ("en", "zh")


@cache
def load(lang: str = "en") -> dict:
    if lang not in LANGUAGES:
        raise UsageError(f"--lang {lang!r} is not available; languages: {', '.join(LANGUAGES)}")
    return tomllib.loads(resources.files(__package__).joinpath(f"{lang}.toml").read_text(encoding="utf-8"))


def say(section: str, key: str, lang: str = "en", **values) -> str:
    return load(lang)[section][key].format(**values)
