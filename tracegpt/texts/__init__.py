"""The explanations, one TOML file per language, kept apart from the code that fills in numbers."""

from __future__ import annotations

import tomllib
import unicodedata
from functools import cache
from importlib import resources

from ..errors import ParameterError

LANGUAGES = ("en", "zh")


@cache
def load(lang: str = "en") -> dict:
    if lang not in LANGUAGES:
        raise ParameterError("lang", f"{lang!r} is not available; languages: {', '.join(LANGUAGES)}")
    return tomllib.loads(resources.files(__package__).joinpath(f"{lang}.toml").read_text(encoding="utf-8"))


def say(section: str, key: str, lang: str = "en", /, **values) -> str:
    return load(lang)[section][key].format(**values)


# --- how a token is written in every text: whitespace visible, controls escaped ---

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


# Characters that change how the text around them is drawn (a right-to-left override, a zero-width
# joiner, a byte-order mark, line and paragraph separators) or have no glyph: shown by code point.
_INVISIBLE = {"Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def visible(text: str) -> str:
    """Whitespace made visible, control and format characters escaped, so every token can be seen and counted."""
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        elif unicodedata.category(ch) in _INVISIBLE:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def quoted(text: str) -> str:
    return f"'{visible(text)}'"
