"""Byte-level BPE training, written for tiktoken's ranks format.

Text is first split with GPT-2's pattern (so merges never cross word boundaries), then the
most frequent adjacent pair is merged, again and again. Pair counts are updated only for the
words a merge touches, which keeps ~4k merges over the complete works to a minute or so.
"""

from __future__ import annotations

import base64
import heapq
from collections import Counter, defaultdict

import regex

GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_ranks(texts, n_merges: int) -> dict[bytes, int]:
    """Ranks for tiktoken: the 256 single bytes first, then each merged token in merge order."""
    word_counts = Counter()
    split = regex.compile(GPT2_SPLIT)
    for text in texts:
        word_counts.update(split.findall(text))
    words = [[bytes([b]) for b in w.encode("utf-8")] for w in word_counts]
    freqs = list(word_counts.values())

    pair_counts: Counter = Counter()
    where = defaultdict(set)  # pair -> indices of the words containing it
    for i, parts in enumerate(words):
        for pair in zip(parts, parts[1:]):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)

    ranks = {bytes([b]): b for b in range(256)}
    # A lazy max-heap: stale entries are skipped when their count no longer matches.
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    while len(ranks) < 256 + n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg or -neg <= 0:
            continue
        merged = pair[0] + pair[1]
        if merged in ranks:
            pair_counts[pair] = 0
            continue
        ranks[merged] = len(ranks)
        touched = Counter()
        for i in list(where[pair]):
            old = words[i]
            new = _merge(old, pair, merged)
            if len(new) == len(old):
                continue
            for p in zip(old, old[1:]):
                touched[p] -= freqs[i]
            for p in zip(new, new[1:]):
                touched[p] += freqs[i]
                where[p].add(i)
            words[i] = new
        for p, delta in touched.items():
            if delta:
                pair_counts[p] += delta
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
    return ranks


def _merge(parts: list[bytes], pair: tuple[bytes, bytes], merged: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and parts[i] == pair[0] and parts[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def format_ranks(ranks: dict[bytes, int]) -> str:
    """tiktoken's .tiktoken format: base64 of the token's bytes, a space, its rank."""
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    return "".join(f"{base64.b64encode(tok).decode()} {rank}\n" for tok, rank in by_rank)
