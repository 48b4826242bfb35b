"""The files a user points tracegpt at, read and written so that every failure is one line naming the path.

Reading: messages from other libraries are passed on cleaned (torch's can hold ANSI codes and
whole paragraphs of advice, which must not reach a one-line error).

Writing: every output (`--save`, `--svg`, `--html`) goes to a temporary file beside its target
and is moved onto it with os.replace, which is atomic on POSIX and Windows: a write that fails
midway (disk full, a size limit, Ctrl-C, a kill) leaves the old file as it was, and concurrent
writers each leave a complete file, the last one winning.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import TraceGPTError

# --- reading ---

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


# --- writing ---


class NotSaved(KeyboardInterrupt):
    """Ctrl-C while a file was being written: it was not saved (the old one, if any, is intact)."""


@contextmanager
def replacing(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write in place of `path`; it becomes `path` only once written completely."""
    path = Path(path)
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as e:
        raise TraceGPTError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, _mode_for(path))
        os.replace(temp, path)
    except BaseException as e:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(e, KeyboardInterrupt):
            raise NotSaved(f"{path} not saved") from None
        if isinstance(e, OSError):
            raise TraceGPTError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as f:
        f.write(text.encode("utf-8"))


def _mode_for(path: Path) -> int:
    """The mode the file had, or what a plain open() would give it under the current umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
