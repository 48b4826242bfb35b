"""The explanations, one TOML file per language, kept apart from the code that fills in numbers."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from ..errors import ParameterError

LANGUAGES = ("en", "zh")


@cache
def load(lang: str = "en") -> dict:
    if lang not in LANGUAGES:
        raise ParameterError("lang", f"{lang!r} is not available; languages: {', '.join(LANGUAGES)}")
    return tomllib.loads(resources.files(__package__).joinpath(f"{lang}.toml").read_text(encoding="utf-8"))


def say(section: str, key: str, lang: str = "en", **values) -> str:
    return load(lang)[section][key].format(**values)


# --- how a token is written in every text: whitespace visible, controls escaped ---

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def visible(text: str) -> str:
    """Whitespace made visible, control characters escaped, so every token can be seen and counted."""
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def quoted(text: str) -> str:
    return f"'{visible(text)}'"
