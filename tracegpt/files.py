"""Reading the files a user points tracegpt at: every failure is one line that names the path.

Messages from other libraries are passed on cleaned: torch's can hold ANSI codes and whole
paragraphs of advice, which must not reach a one-line error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import TraceGPTError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(message: object, limit: int = 200) -> str:
    """Another library's message as one short line: no ANSI codes, the first line only."""
    lines = [line.strip() for line in ANSI.sub("", str(message)).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def short(value, limit: int = 60) -> str:
    """A value from a file, as repr shows it, cut to fit in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def why(e: BaseException) -> str:
    """What went wrong, in words: "permission denied" rather than "[Errno 13] Permission denied: '/x'"."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text: byte 0x{e.object[e.start]:02x} at offset {e.start}"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return plain(e) or type(e).__name__


def parse_json(data: bytes | str, where: object, error: type[TraceGPTError] = TraceGPTError):
    try:
        return json.loads(data)
    except RecursionError:
        # json's parser recurses once per level; 100,000 nested lists exhaust Python's stack.
        raise error(f"{where}: JSON nested too deeply to read") from None
    except ValueError as e:  # malformed JSON, text that is not UTF-8, an integer of 5,000 digits
        raise error(f"{where}: not valid JSON ({why(e)})") from None


def read_json(path: Path, error: type[TraceGPTError] = TraceGPTError):
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read ({why(e)})") from None
    return parse_json(data, path, error)
