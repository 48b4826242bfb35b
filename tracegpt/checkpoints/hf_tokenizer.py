"""A checkpoint's GPT-2 BPE files (vocab.json + merges.txt, or tokenizer.json) as a tiktoken Encoding."""

from __future__ import annotations

from pathlib import Path

import tiktoken

from ..files import read_json, short, why
from ..tokenizer import GPT2_SPLIT, TokenizerError


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte, as vocab.json and merges.txt spell them."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = dict(zip(printable, printable))
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra  # the unprintable bytes borrow characters past Latin-1
            extra += 1
    return {b: chr(c) for b, c in chars.items()}


BYTE_OF_CHAR = {c: b for b, c in bytes_to_unicode().items()}


def _token_bytes(token: str) -> bytes | None:
    try:
        return bytes(BYTE_OF_CHAR[c] for c in token)
    except KeyError:
        return None


def _read_json(path: Path):
    return read_json(path, TokenizerError)


def _object(doc, path: Path) -> dict:
    if not isinstance(doc, dict):
        raise TokenizerError(f"{path}: is not a JSON object")
    return doc


def _token_id(value, path: Path, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TokenizerError(f"{path}: {what} has id {value!r}, not a token id (a whole number from 0)")


def _merges(items, path: Path) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise TokenizerError(f"{path}: merges must be a list, not {type(items).__name__}")
    merges = []
    for number, m in enumerate(items, 1):
        pair = m.split(" ") if isinstance(m, str) else m
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise TokenizerError(f"{path}: merge {number} is not a pair of tokens")
        merges.append((pair[0], pair[1]))
    return merges


def read_bpe_files(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]], str]:
    """The vocabulary and the merges, from vocab.json + merges.txt or else tokenizer.json."""
    vocab_path, merges_path, tok_path = folder / "vocab.json", folder / "merges.txt", folder / "tokenizer.json"
    if vocab_path.is_file() or merges_path.is_file():
        missing = merges_path if vocab_path.is_file() else vocab_path
        if not missing.is_file():
            raise TokenizerError(f"{folder}: {missing.name} is missing; the tokenizer needs vocab.json and merges.txt")
        vocab = _read_json(vocab_path)
        try:
            lines = merges_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{merges_path}: cannot read ({why(e)})") from None
        merges = []
        for number, line in enumerate(lines, 1):
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise TokenizerError(f"{merges_path}: line {number} is not two tokens separated by a space")
            merges.append((parts[0], parts[1]))
        source, vocab_file = "vocab.json + merges.txt", vocab_path
    elif tok_path.is_file():
        doc = _read_json(tok_path)
        doc = doc if isinstance(doc, dict) else {}
        model, pre = doc.get("model"), doc.get("pre_tokenizer")
        model, pre = (x if isinstance(x, dict) else {} for x in (model, pre))
        if model.get("type") != "BPE" or pre.get("type") != "ByteLevel" or doc.get("normalizer") \
                or not pre.get("use_regex", True) or pre.get("add_prefix_space") \
                or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("dropout"):
            raise TokenizerError(f"{tok_path}: not a GPT-2 style byte-level BPE tokenizer (model "
                                 f"{short(model.get('type'))}, pre-tokenizer {short(pre.get('type'))}); "
                                 f"tracegpt reads GPT-2's byte-level BPE only")
        vocab = model.get("vocab")
        merges = _merges(model.get("merges", []), tok_path)
        source, vocab_file = "tokenizer.json", tok_path
    else:
        raise TokenizerError(f"{folder}: no tokenizer files; copy the model's vocab.json and merges.txt "
                             f"(or tokenizer.json) beside its config.json")
    if not isinstance(vocab, dict):
        raise TokenizerError(f"{vocab_file}: the vocabulary is not a JSON object of token -> id")
    for token, i in vocab.items():
        _token_id(i, vocab_file, f"token {token!r}")
    return vocab, merges, source


def read_added_tokens(folder: Path) -> dict[str, int]:
    """Added and special tokens (content -> id) from the files transformers saves beside the vocabulary."""
    added: dict[str, int] = {}
    tok = folder / "tokenizer.json"
    if tok.is_file():
        entries = _object(_read_json(tok), tok).get("added_tokens", [])
        if not isinstance(entries, list):
            raise TokenizerError(f"{tok}: added_tokens must be a list, not {type(entries).__name__}")
        for number, t in enumerate(entries, 1):
            if not isinstance(t, dict) or not isinstance(t.get("content"), str):
                raise TokenizerError(f"{tok}: added token {number} is not an object with a content string")
            added[t["content"]] = _token_id(t.get("id"), tok, f"added token {t['content']!r}")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        doc = _object(_read_json(config), config)
        if doc.get("add_prefix_space"):
            raise TokenizerError(f"{config}: add_prefix_space is true; tracegpt's tokenizer never adds a space before "
                                 f"the text, so its ids would differ from the checkpoint's; set it to false")
        decoder = doc.get("added_tokens_decoder") or {}
        if not isinstance(decoder, dict):
            raise TokenizerError(f"{config}: added_tokens_decoder must be a JSON object of id -> token, "
                                 f"not {type(decoder).__name__}")
        for i, t in decoder.items():
            if not i.isdecimal() or not i.isascii():
                raise TokenizerError(f"{config}: added_tokens_decoder key {short(i)} is not a token id")
            if not isinstance(t, dict) or not isinstance(t.get("content"), str):
                raise TokenizerError(f"{config}: added_tokens_decoder {i} is not an object with a content string")
            added[t["content"]] = int(i)
    extra = folder / "added_tokens.json"
    if extra.is_file():
        for content, i in _object(_read_json(extra), extra).items():
            added[content] = _token_id(i, extra, f"added token {content!r}")
    return added


def bpe_tables(vocab: dict[str, int], merges: list[tuple[str, str]], added: dict[str, int],
               where: str) -> tuple[dict[bytes, int], dict[str, int]]:
    """GPT-2 BPE files as tiktoken's two tables, mergeable ranks and special tokens, with the files' ids.

    tiktoken merges the adjacent pair whose joined bytes have the lowest id, where GPT-2's BPE
    merges the pair listed first in merges.txt: the two agree when the tokens that merges make
    have ids in merges.txt order, which is checked here (GPT-2's own files and those trained by
    `tokenizers` have it). Tokens that no merge makes (<|endoftext|>, added tokens) cannot come
    out of BPE; they become special tokens, which decode but never come out of ordinary text.
    """
    ranks: dict[bytes, int] = {}
    specials: dict[str, int] = {}
    for token, i in vocab.items():
        raw = _token_bytes(token)
        if raw == b"":
            raise TokenizerError(f"{where}: token id {i} is the empty string")
        if raw is None:
            if token not in added:
                raise TokenizerError(f"{where}: token {token!r} (id {i}) is not spelled in GPT-2's byte-level alphabet")
            specials[token] = i
        elif raw in ranks:
            raise TokenizerError(f"{where}: ids {ranks[raw]} and {i} are the same bytes {raw!r}")
        else:
            ranks[raw] = i
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(f"{where}: no token for the byte 0x{missing[0]:02x}; byte-level BPE needs all 256 bytes")
    made: set[bytes] = set()
    previous = -1
    for number, (a, b) in enumerate(merges, 1):
        pa, pb = _token_bytes(a), _token_bytes(b)
        if pa not in ranks or pb not in ranks:
            raise TokenizerError(f"{where}: merge {number} ({a} {b}) joins a token that is not in the vocabulary")
        joined = pa + pb
        if joined not in ranks:
            raise TokenizerError(f"{where}: merge {number} ({a} {b}) makes a token that is not in the vocabulary")
        if ranks[joined] <= previous:
            raise TokenizerError(
                f"{where}: merge {number} ({a} {b}) makes id {ranks[joined]}, not above the id {previous} of the merge "
                f"before it; tiktoken merges by id, so tracegpt needs the ids in merges.txt order")
        previous = ranks[joined]
        made.add(joined)
    for raw in [raw for raw in ranks if len(raw) > 1 and raw not in made]:
        try:
            specials[raw.decode("utf-8")] = ranks.pop(raw)
        except UnicodeDecodeError:
            raise TokenizerError(f"{where}: token id {ranks[raw]} is made by no merge and is not valid UTF-8") from None
    taken = set(ranks.values()) | set(specials.values())
    for content, i in added.items():
        if content not in specials and i not in taken:
            specials[content] = i  # an added token kept outside vocab.json
            taken.add(i)
    if len(taken) != len(ranks) + len(specials):
        ids = sorted([*ranks.values(), *specials.values()])
        clash = next(a for a, b in zip(ids, ids[1:]) if a == b)
        raise TokenizerError(f"{where}: token id {clash} is given to two different tokens")
    return ranks, specials


# How many ids a model's vocabulary may have past its tokenizer's. GPT-2 checkpoints are
# sometimes padded to a round number for faster matmuls: nanoGPT's 50257 -> 50304 (a multiple
# of 64), 128 in many training setups, Megatron's 128 x tensor-parallel ranks. 1024 covers all of
# these; each padding id gets an <|unused_i|> entry, and a config far past the tokenizer (a
# vocab_size of 10^7 once built 7 GB of entries and crashed tiktoken) belongs to another tokenizer.
MAX_PADDING = 1024


def read_tokenizer(folder: Path, name: str, vocab_size: int) -> tuple[tiktoken.Encoding, dict]:
    """The checkpoint's tokenizer for a model of vocab_size ids (config.json's vocab_size)."""
    vocab, merges, source = read_bpe_files(folder)
    where = f"{folder} ({source})"
    ranks, specials = bpe_tables(vocab, merges, read_added_tokens(folder), where)
    top = max([*ranks.values(), *specials.values()])
    if top >= vocab_size:
        raise TokenizerError(f"{where}: token id {top} does not exist in the model, whose vocabulary has "
                             f"{vocab_size} ids; the tokenizer belongs to another model")
    known = set(ranks.values()) | set(specials.values())
    if vocab_size - len(known) > MAX_PADDING:
        raise TokenizerError(f"{folder / 'config.json'}: has vocab_size {vocab_size} but the tokenizer ({source}) has "
                             f"{len(known)} tokens; padding is at most {MAX_PADDING} ids, so the tokenizer belongs to "
                             f"another model")
    # A model whose vocabulary was padded past the tokenizer (to a round number) can still
    # predict the padding ids; name them so that every id decodes.
    unused = [i for i in range(vocab_size) if i not in known]
    named = {**specials, **{f"<|unused_{i}|>": i for i in unused}}
    try:
        encoding = tiktoken.Encoding(name=name, pat_str=GPT2_SPLIT, mergeable_ranks=ranks, special_tokens=named)
    except ValueError as e:
        raise TokenizerError(f"{where}: tiktoken cannot build this tokenizer ({why(e)})") from None
    card = {"source": source, "n_tokens": len(ranks) + len(specials), "n_merges": len(merges),
            "special_tokens": specials, "unused_ids": len(unused)}
    return encoding, card
