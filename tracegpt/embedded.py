"""The embedded model's files, and what its card and tokenizer say, read without torch.

Importing torch takes 1.5-3 s on a small machine. Knowing the embedded model's context from
its card lets the CLI refuse a prompt far too long for it before paying that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import tokenizer
from .errors import TraceGPTError

ASSETS = Path(__file__).resolve().parent / "assets"
EMBEDDED = "shakespeare"


def default_model_name() -> str:
    return os.environ.get("TRACEGPT_MODEL") or EMBEDDED


def read_card(assets: Path = ASSETS, name: str = EMBEDDED) -> dict:
    card_path = assets / f"{name}.json"
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise TraceGPTError(f"embedded model card missing: {card_path}; reinstall tracegpt") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceGPTError(f"{card_path}: broken model card ({e})") from None
    if not isinstance(card, dict):
        raise TraceGPTError(f"{card_path}: broken model card (not a JSON object)")
    return card


def ranks_path(card: dict, assets: Path = ASSETS, name: str = EMBEDDED) -> Path:
    return assets / card.get("tokenizer", {}).get("file", f"{name}.tiktoken")


def prompt_byte_limit() -> tuple[int, int] | None:
    """(the most bytes a prompt can have, n_ctx) for the embedded model: n_ctx tokens of its longest token's bytes."""
    card = read_card()
    try:
        n_ctx = int(card["config"]["n_ctx"])
    except (KeyError, TypeError, ValueError):
        return None  # a broken card is reported, with its reason, when the model loads
    longest = max(map(len, tokenizer.read_ranks(ranks_path(card))), default=0)
    return (n_ctx * longest, n_ctx) if longest else None


def check_prompt_fits(text: str) -> None:
    """The embedded model's byte bound on a prompt (see tokenizer.check_prompt_bytes), without torch."""
    card = read_card()
    try:
        n_ctx = int(card["config"]["n_ctx"])
    except (KeyError, TypeError, ValueError):
        return  # a broken card is reported, with its reason, when the model loads
    if len(text.encode("utf-8", errors="surrogatepass")) <= n_ctx:
        return  # every token holds at least one byte: the ranks file need not be read for this one
    longest = max(map(len, tokenizer.read_ranks(ranks_path(card))), default=0)
    if longest:
        tokenizer.check_prompt_bytes(text, n_ctx, longest, EMBEDDED)
