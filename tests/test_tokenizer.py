import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from tracegpt import tokenizer


def test_common_words_are_single_tokens(lm):
    for word in (" love", " thee", " thou", " lord"):
        assert len(lm.encode(word)) == 1, word


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_round_trips(lm, text):
    assert lm.encoding.decode(lm.encode(text)) == text


def test_unicode_and_control_characters_round_trip(lm):
    for text in ("你好，世界", "I 😀 love\x00 thee\u202e", "e\u0301\u0327", "\t\r\n\x1b[31m"):
        assert lm.encoding.decode(lm.encode(text)) == text


def test_a_token_inside_a_character_is_shown_by_its_bytes(lm):
    ids = lm.encode("😀")
    assert len(ids) > 1  # the embedded vocabulary has no emoji, so the character is split
    texts = [lm.token_text(i) for i in ids]
    assert all(t.startswith("\\x") for t in texts)
    assert b"".join(lm.encoding.decode_single_token_bytes(i) for i in ids) == "😀".encode()


def test_end_of_text_in_a_prompt_is_plain_text(lm):
    ids = lm.encode("<|endoftext|>")
    assert lm.encoding.eot_token not in ids


def test_ranks_are_read_fresh_after_the_file_changes(tmp_path):
    path = tmp_path / "r.tiktoken"
    ranks = {bytes([b]): b for b in range(256)}
    path.write_text(tokenizer_format(ranks))
    first = tokenizer.encoding_from_ranks("a", tokenizer.read_ranks(path))
    ranks[b"ab"] = 256
    path.write_text(tokenizer_format(ranks))
    second = tokenizer.encoding_from_ranks("b", tokenizer.read_ranks(path))
    assert first.encode_ordinary("ab") == [97, 98]
    assert second.encode_ordinary("ab") == [256]


def tokenizer_format(ranks):
    return "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items())
