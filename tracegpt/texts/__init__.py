"""The explanations, one TOML file per language, kept apart from the code that fills in numbers."""

from __future__ import annotations

import os
import re
import tomllib
import unicodedata
from functools import cache
from importlib import resources

from ..errors import ParameterError

LANGUAGES = ("en", "zh")
_language = {"current": "en"}  # what say() speaks when not told: set once per command by the CLI (--lang)


@cache
def load(lang: str = "en") -> dict:
    if lang not in LANGUAGES:
        raise ParameterError("lang", f"{lang!r} is not available; languages: {', '.join(LANGUAGES)}")
    return tomllib.loads(resources.files(__package__).joinpath(f"{lang}.toml").read_text(encoding="utf-8"))


# "{n} {n|token|tokens}": the word for one, or for any other count, of the value named first.
PLURAL = re.compile(r"\{(\w+)\|([^|{}]*)\|([^|{}]*)\}")


# Chinese sets no space beside full-width punctuation nor between two characters; a filled-in value
# can bring one ("{corpus} 的" when the corpus ends in "）", "在 {when}" when it is 块 2).
NO_SPACE_IN_CHINESE = re.compile(r"(?<=[，。：；、（）《》「」『』！？]) +| +(?=[，。：；、（）《》「」『』！？])"
                               r"|(?<=[\u4e00-\u9fff]) +(?=[\u4e00-\u9fff])")


def say(section: str, key: str, lang: str | None = None, /, **values) -> str:
    text = load(lang or _language["current"])[section][key]
    text = PLURAL.sub(lambda m: m[2] if values.get(m[1]) == 1 else m[3], text)
    return NO_SPACE_IN_CHINESE.sub("", text.format(**values))


def use(lang: str) -> None:
    """Speak `lang` from now on (a ParameterError names the languages if it is not one of them)."""
    load(lang)
    _language["current"] = lang


def current() -> str:
    return _language["current"]


def default_language(environ=os.environ) -> str:
    """TRACEGPT_LANG, else the locale's language where it is one of ours (LANG=zh_CN.UTF-8 gives zh), else en."""
    if environ.get("TRACEGPT_LANG"):
        return environ["TRACEGPT_LANG"]
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(variable)
        if value:
            lang = re.match(r"[A-Za-z]*", value)[0].lower()  # zh_CN.UTF-8 -> zh
            return lang if lang in LANGUAGES else "en"
    return "en"


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


TITLE_CELLS = 48  # a prompt longer than this is shortened in titles: its start, "…", its end


def titled(prompt: str, n_tokens: int, cells: int = TITLE_CELLS) -> str:
    """A prompt as a title quotes it: whole when short; else its start and end on one line, and its length."""
    shown = visible(prompt)
    if len(shown) <= cells:
        return f"'{shown}'"
    head, tail = cells * 2 // 3, cells // 3
    return f"'{shown[:head]}…{shown[-tail:]}' " + say("common", "title_tokens", n=n_tokens, n_text=f"{n_tokens:,}")
