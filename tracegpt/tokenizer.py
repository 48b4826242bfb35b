"""Tokenizers as tiktoken encodings: the embedded model's ranks file, or a checkpoint's GPT-2 BPE files.

Ranks files are read here rather than by tiktoken's loader, which caches by path in a temp
folder and can hand back stale ranks after the file changes.
"""

from __future__ import annotations

import base64
from pathlib import Path

import tiktoken

from .errors import TraceGPTError, UsageError

GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"


class TokenizerError(TraceGPTError):
    pass


def read_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
        for line in lines:
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise TokenizerError(f"cannot read tokenizer ranks {path}: {e}") from None
    return ranks


def check_prompt_bytes(text: str, n_ctx: int, longest_token_bytes: int, model: str) -> None:
    """Refuse, without encoding it, a text too long for n_ctx tokens of at most this many bytes each.

    Saying so before encoding keeps a megabyte of input from costing a slow tokenization.
    """
    n_bytes = len(text.encode("utf-8", errors="surrogatepass"))
    if n_bytes > n_ctx * longest_token_bytes:
        raise UsageError(f"the prompt is {n_bytes:,} bytes, far more than {model}'s context of {n_ctx} tokens")


def encoding_from_ranks(name: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    """A GPT-2-style encoding whose only special token, <|endoftext|>, follows the last rank."""
    return tiktoken.Encoding(
        name=name,
        pat_str=GPT2_SPLIT,
        mergeable_ranks=ranks,
        special_tokens={END_OF_TEXT: len(ranks)},
    )


def encode(enc: tiktoken.Encoding, text: str) -> list[int]:
    """Ordinary text only: a literal "<|endoftext|>" in a prompt is just characters."""
    return enc.encode_ordinary(text)


def token_bytes(enc: tiktoken.Encoding, token_id: int) -> bytes:
    return enc.decode_single_token_bytes(token_id)


def token_text(enc: tiktoken.Encoding, token_id: int) -> str:
    """The token as text; a token that holds only part of a UTF-8 character shows its bytes."""
    raw = token_bytes(enc, token_id)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in raw)

