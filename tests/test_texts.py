"""Every language says everything English says, with the same placeholders, and in its own words."""

import re
import string

import pytest

from tracegpt.errors import UsageError
from tracegpt.texts import LANGUAGES, load

# What may stay in Latin letters in Chinese: command-line options, and the notation Chinese
# writing on transformers keeps as is. Single and double letters (Q, K, V, KV, ms) pass anyway.
OPTION = r"--[a-z]+(?:-[a-z]+)*"
ZH_KEEPS = ("<|endoftext|>", "attn.mix", "softmax", "logit", "top-k", "top-p", "GPT", "Python")


def fields(text: str) -> set[tuple[str, str]]:
    return {(name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name is not None}


# Stage names stay as they are in every language (they are the names of --json, --save and the API).
STAGE = r"(?:blocks\.(?:\d+|L|\*)\.)?(?:attn|mlp|embed)\.[a-z_]+|resid_(?:attn|out)|ln_f|ln[12]"


def latin_words(text: str) -> list[str]:
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(OPTION, " ", text)
    text = re.sub(STAGE, " ", text)
    for kept in ZH_KEEPS:
        text = text.replace(kept, " ")
    return re.findall(r"[A-Za-z]{3,}", text)


def test_chinese_is_offered():
    assert LANGUAGES == ("en", "zh")


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_same_sections_and_keys(lang):
    en, other = load("en"), load(lang)
    assert other.keys() == en.keys()
    for section in en:
        assert other[section].keys() == en[section].keys(), section


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_same_placeholders(lang):
    en, other = load("en"), load(lang)
    for section in en:
        for key, text in en[section].items():
            assert fields(other[section][key]) == fields(text), (section, key)


def test_no_english_in_chinese():
    leaks = {(section, key): words for section, texts in load("zh").items() for key, text in texts.items()
             if (words := latin_words(text))}
    assert not leaks


def test_the_leak_check_can_fail():
    assert latin_words("注意力 attention {token} --no-cache softmax") == ["attention"]


def test_unknown_language_names_the_languages():
    with pytest.raises(UsageError, match="languages: en, zh"):
        load("xx")
