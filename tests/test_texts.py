"""Every language says everything English says, with the same placeholders, and in its own words."""

import re
import string

import pytest

from tracegpt.errors import UsageError
from tracegpt.texts import LANGUAGES, PLURAL, load

# What may stay in Latin letters in Chinese: command-line options, and the notation Chinese
# writing on transformers keeps as is. Single and double letters (Q, K, V, KV, ms) pass anyway.
OPTION = r"--[a-z]+(?:-[a-z]+)*"
ZH_KEEPS = ("<|endoftext|>", "attn.mix", "softmax", "logit", "top-k", "top-p", "GPT", "Python", "log₂")


def fields(text: str) -> set[tuple[str, str]]:
    text = PLURAL.sub("", text)  # a plural choice is a choice of words, which another language may not need
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


# --- the views as printed, in Chinese: no English sentence, no ordinal of a 0-based index ---

# Every stage name (the views print them in grey), and the expressions explain cites its numbers by.
ANY_STAGE = (r"(?:blocks\.(?:\d+|\*)\.)?(?:(?:attn|mlp|embed)\.[a-z_]+|resid_(?:attn|out)|ln[12])"
             r"|ln_f|logits|probs|tokens")
SOURCE_WORDS = ("std ", "numel", ".sum()", "max |", "[~mask]", "mix₂", "mix₃", "mix₁", "mix₀")

ZH_VIEWS = {
    "trace": ["trace", "I love"],
    "trace-bytes": ["trace", "你好，世界"],
    "attn-head": ["attn", "I love you", "--layer", "3", "--head", "2", "--query", "2", "--key", "1"],
    "attn-scores": ["attn", "I love you", "--layer", "1", "--head", "0", "--scores"],
    "attn-all": ["attn", "To be, or not to be", "--layer", "all"],
    "attn-default": ["attn", "--layer", "0", "--head", "0"],
    "attn-one": ["attn", "I", "--layer", "0"],
    "generate": ["generate", "I love", "-n", "3", "--seed", "1", "-t", "0.8", "--top-k", "20", "--top-p", "0.9",
                 "--show-sampling", "2"],
    "generate-greedy": ["generate", "I love", "-n", "3", "--greedy", "--no-cache", "--show-sampling", "1"],
    "generate-edited": ["generate", "I love", "-n", "3", "--seed", "1", "--ablate", "0.1", "--compare", "--stop",
                        "xyzzy", "--head", "1"],
    "generate-wide": ["generate", "I love", "-n", "2", "--seed", "1", "--width", "140"],
    "lens": ["lens", "To be, or not to be"],
    "explain": ["explain", "I love"],
    "explain-one": ["explain", "I"],
    "intervene-ablate": ["intervene", "To be, or not to be, that is the", "--ablate", "0.3", "--ablate", "2.mlp=mean",
                         "--ablate", "1"],
    "intervene-cut": ["intervene", "O Romeo, Romeo! wherefore art thou", "--cut", "2.2:7>5", "--cut", "1:3>1"],
    "intervene-patch": ["intervene", "My lord, I love", "--patch", "blocks.1.resid_out", "--from", "My lady, I love"],
    "intervene-steer": ["intervene", "I love", "--steer", "2", "--toward", " hate", "--away", " love", "--alpha", "4"],
    "patch": ["patch", "lord is my", "lady is my", "--stage", "resid_out", "--stage", "heads", "--stage", "mlp.out"],
    "score": ["score", "But soft, what light through yonder window breaks?", "--position", "5"],
    "attribute": ["attribute", "I love"],
    "heads": ["heads", "--probes", "2"],
    "neuron": ["neuron", "3.443"],
}


def _texts_of_run(doc) -> list[str]:
    """The prompt and token texts a command's JSON holds: what its view may print unquoted."""
    if isinstance(doc, dict):
        return [v for k, v in doc.items() if k in ("text", "prompt") and isinstance(v, str)] + \
            [t for v in doc.values() for t in _texts_of_run(v)]
    if isinstance(doc, list):
        joined = [] if not all(isinstance(v, dict) and isinstance(v.get("text"), str) for v in doc) else \
            ["".join(v["text"] for v in doc)]  # tokens in a row, as a view prints a context: whole words
        return joined + [t for v in doc for t in _texts_of_run(v)]
    return []


def english_in_view(view: str, allowed: set[str], models: tuple[str, ...]) -> list[str]:
    text = re.sub(r"'[^'\n]*'", " ", view)  # tokens and prompts are quoted in every view
    # A command to type is code, not words: its name, options and metavars (TEXT, L.H).
    text = re.sub(r"tracegpt [a-z]+(?: (?:--[a-z-]+|[A-Z][A-Z.]*))*", " ", text)
    for name in models + SOURCE_WORDS:
        text = text.replace(name, " ")
    text = re.sub(ANY_STAGE, " ", text)
    return [word for word in latin_words(text) if word not in allowed]


def check_chinese_view(run_cli, args: list[str], models: tuple[str, ...] = ("shakespeare",)) -> str:
    width = [] if "--width" in args else ["--width", "80"]
    r = run_cli(*args, "--lang", "zh", *width)
    assert r.exit_code == 0, r.stderr
    import json

    as_json = run_cli(*args, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    docs = [json.loads(line) for line in as_json.stdout.splitlines()]
    said = " ".join(a for a in args if not a.startswith("-")) + " " + " ".join(_texts_of_run(docs))
    allowed = set(re.findall(r"[A-Za-z]+", said))
    assert not english_in_view(r.stdout, allowed, models), (args, english_in_view(r.stdout, allowed, models))
    assert "第 0" not in r.stdout and "第0" not in r.stdout, args
    return r.stdout


@pytest.mark.parametrize("name", ZH_VIEWS)
def test_chinese_views_have_no_english_and_no_0th(run_cli, name):
    check_chinese_view(run_cli, ZH_VIEWS[name])


def test_the_view_scan_can_fail():
    view = "块 0 的头 2：64% 给了 '␣love'@1  attn.mix\nstep  token  prob\n"
    assert english_in_view(view, set(), ("shakespeare",)) == ["step", "token", "prob"]


def test_no_chinese_text_puts_an_ordinal_on_a_0_based_index():
    # 第 N is an ordinal: only numbers counted from 1 (steps, ranks) may follow it.
    counted_from_1 = {"step", "rank"}
    for section, texts in load("zh").items():
        for key, text in texts.items():
            for name in re.findall(r"第\s*\{(\w+)", text):
                assert name in counted_from_1 or name.endswith("_rank"), (section, key, name)


def test_one_word_for_block_in_chinese():
    # 块 for block everywhere; 层 only inside 层归一化 (LayerNorm), and where 块 is said to be 「层」.
    said = []
    for section, texts in load("zh").items():
        for key, text in texts.items():
            if "「块」就是常说的「层」" in text:
                said.append((section, key))
                text = text.replace("「层」", "")
            assert "层" not in text.replace("层归一化", ""), (section, key)
    assert said == [("trace", "focus"), ("explain", "intro")]


# --- what the texts say must be what the model does: an untied output head, a scale by block ---

UNTIED = "2L5H-untied-flags"  # tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True


def _view(run_cli, *args):
    r = run_cli(*args, "--width", "200")
    assert r.exit_code == 0, r.stderr
    return " ".join(r.stdout.split())


@pytest.mark.parametrize("lang, untied, tied", [("en", "times the output head", "scored against all"),
                                                 ("zh", "乘以输出头", "词元嵌入逐一打分")])
def test_trace_says_which_matrix_gives_the_logits(run_cli, made, lang, untied, tied):
    own = _view(run_cli, "trace", "I love you", "--model", made[UNTIED][0], "--lang", lang)
    assert untied in own and tied not in own
    reused = _view(run_cli, "trace", "I love you", "--model", made["3L3H-tied"][0], "--lang", lang)
    assert tied in reused and untied not in reused


@pytest.mark.parametrize("lang, untied, tied", [("en", "an output head of its own", "same embedding table"),
                                                 ("zh", "输出头是一个独立的矩阵", "同一张嵌入表")])
def test_lens_says_whether_the_unembedding_is_the_embedding(run_cli, made, lang, untied, tied):
    own = _view(run_cli, "lens", "I love you", "--model", made[UNTIED][0], "--lang", lang)
    assert untied in own and tied not in own and "GPT-2" not in own
    assert tied in _view(run_cli, "lens", "I love you", "--lang", lang)  # the embedded model ties them


@pytest.mark.parametrize("lang, untied, tied", [("en", "multiplied by the output head", "scored against the embedding"),
                                                 ("zh", "再乘以输出头", "每个词元的嵌入打分")])
def test_explain_says_which_matrix_gives_the_logits(run_cli, made, lang, untied, tied):
    def next_token_text(*model):
        r = run_cli("explain", "I love you", *model, "--lang", lang, "--json")
        return next(s["text"] for s in r.json()["steps"] if s["id"] == "next_token")

    assert untied in next_token_text("--model", made[UNTIED][0])
    assert tied not in next_token_text("--model", made[UNTIED][0])
    assert tied in next_token_text()


def test_trace_writes_the_scale_of_the_block_it_explains(run_cli, made):
    assert "Q·Kᵀ/√64 scores" in _view(run_cli, "trace", "I love")
    assert "divides each block's scores" not in _view(run_cli, "trace", "I love")
    for layer, formula in (("0", "Q·Kᵀ/√7 "), ("1", "Q·Kᵀ/(√7·2) ")):
        own = _view(run_cli, "trace", "I love you", "--model", made[UNTIED][0], "--layers", layer)
        assert formula + "scores every question" in own
        assert "also divides each block's scores by the block's number counted from 1" in own
        zh = _view(run_cli, "trace", "I love you", "--model", made[UNTIED][0], "--layers", layer, "--lang", "zh")
        assert formula + "拿每个问题" in zh and "再除以块的序号" in zh


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_explain_writes_the_real_scale(made, lang):
    from tracegpt import loader
    from tracegpt.analysis import walk
    from tracegpt.tracer import run_trace

    lm = loader.load(str(made[UNTIED][0]))
    trace = run_trace(lm, "I love you")
    focus = trace.n_tokens - 1
    for layer in range(lm.config.n_layer):
        step = walk.attention_step(trace, focus, layer, 1)
        scale = lm.model.h[layer].attn.scale
        assert step.numbers["scale"] == pytest.approx(1 / (7 ** 0.5 * (layer + 1)))
        assert scale == pytest.approx(step.numbers["scale"])
        q = trace[f"blocks.{layer}.attn.q"][1, focus]
        k = trace[f"blocks.{layer}.attn.k"][1, step.numbers["source"]]
        assert step.numbers["score"] == pytest.approx((q @ k).item() * scale, abs=1e-5)  # the score cited is q·k × it
        _, text = walk.fill(step, lang)
        formula = "Q·K/√7" if layer == 0 else f"Q·K/(√7·{layer + 1})"
        assert f"= {formula}" in text and f"{scale:.6g}" in text and "√7" in text
        assert "/√{d_head}" not in text
    shakespeare = loader.load()
    embedded = walk.build(run_trace(shakespeare, "I love"), shakespeare.token_text)
    attention = next(s for s in embedded.steps if s.id == "attention")
    assert "= Q·K/√64" in walk.fill(attention, lang)[1] and attention.extra == ()


@pytest.mark.parametrize("command", [["trace", "I love you"], ["explain", "I love you"], ["lens", "I love you"],
                                     ["attn", "I love you", "--layer", "1", "--head", "0", "--query", "2",
                                      "--key", "1"]])
def test_chinese_views_of_an_untied_checkpoint_have_no_english(run_cli, made, command):
    check_chinese_view(run_cli, [*command, "--model", str(made[UNTIED][0])], models=(UNTIED,))


def test_chinese_sets_no_space_that_a_filled_in_value_brings():
    from tracegpt.texts import say

    # "{token} 在 {row} 之后": a Latin value keeps its spaces, a Chinese one joins the sentence.
    assert say("lens", "first_top", "zh", token="'␣a'", row="块 2", rank=39).startswith("'␣a' 在块 2 之后")
    assert say("lens", "first_top", "zh", token="'␣a'", row="embedding", rank=39).startswith("'␣a' 在 embedding 之后")
    assert say("lens", "first_top", "en", token="'␣a'", row="block 2", rank=39).count("  ") == 0
