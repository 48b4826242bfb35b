"""What every command shares: reading the prompt, parsing layer lists, writing JSON."""

from __future__ import annotations

import json
import sys

from ..errors import UsageError


def read_prompt(prompt: str) -> str:
    """The prompt argument; '-' reads standard input as UTF-8 (one trailing newline dropped)."""
    if prompt != "-":
        return prompt
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"standard input is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    return text[:-1] if text.endswith("\n") else text


def parse_layers(spec: str | None, n_layer: int) -> list[int] | None:
    """'all', '3', '0,2', '1-3' -> sorted block indices, each checked against the model."""
    if spec is None or spec.strip().lower() == "all":
        return None
    layers = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1])
                layers.update(range(int(lo), int(hi) + 1))
            else:
                layers.add(int(part))
    except ValueError:
        raise UsageError(f"--layers {spec!r} is not a list of layers; use e.g. 0,2 or 1-3 or all") from None
    bad = sorted(i for i in layers if not 0 <= i < n_layer)
    if bad or not layers:
        raise UsageError(f"--layers {spec!r}: layer {bad[0] if bad else spec} does not exist; "
                         f"valid layers are 0..{n_layer - 1}")
    return sorted(layers)


def emit_json(doc: dict) -> None:
    # json.dumps, never rich: rich wraps long lines when stdout is not a terminal.
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    sys.stdout.flush()


