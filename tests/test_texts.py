"""Every language says everything English says, with the same placeholders, and in its own words."""

import re
import string

import pytest

from tracegpt.errors import UsageError
from tracegpt.texts import LANGUAGES, load

# What may stay in Latin letters in Chinese: command-line options, and the notation Chinese
# writing on transformers keeps as is. Single and double letters (Q, K, V, KV, ms) pass anyway.
OPTION = r"--[a-z]+(?:-[a-z]+)*"
ZH_KEEPS = ("<|endoftext|>", "attn.mix", "softmax", "logit", "top-k", "top-p", "GPT", "Python", "log₂")


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


@pytest.mark.parametrize("environ, lang", [({}, "en"), ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "fr_FR.UTF-8"}, "en"),
                                           ({"LANG": "zh_CN.UTF-8", "TRACEGPT_LANG": "en"}, "en"),
                                           ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}, "zh")])
def test_the_language_comes_from_tracegpt_lang_then_the_locale(environ, lang):
    from tracegpt.texts import default_language

    assert default_language(environ) == lang


@pytest.mark.parametrize("command", [["trace", "I love"], ["attn", "I love", "--head", "0"], ["lens", "I love"],
                                     ["generate", "I love", "-n", "2", "--seed", "1"], ["explain", "I love"],
                                     ["intervene", "I love", "--ablate", "0.1"], ["patch", "lord is my", "lady is my"]])
def test_every_command_speaks_the_language_asked_for(run_cli, command):
    zh = run_cli(*command, "--lang", "zh").stdout
    assert re.search(r"[\u4e00-\u9fff]", zh), command
    # Timings change from run to run: the first lines say the same.
    assert run_cli(*command, env={"TRACEGPT_LANG": "zh"}).stdout.splitlines()[:4] == zh.splitlines()[:4]
    assert not re.search(r"[\u4e00-\u9fff]", run_cli(*command, "--lang", "en").stdout.replace("你好", ""))
