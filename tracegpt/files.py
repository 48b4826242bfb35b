"""Writing a user's files so that nothing they had is lost: the old file stays whole until the new one is.

Every output (`--save`, `--svg`, `--html`) is written to a temporary file beside its target and
moved onto it with os.replace, which is atomic on POSIX and Windows: a write that fails midway
(disk full, a size limit, Ctrl-C, a kill) leaves the old file as it was, and concurrent writers
each leave a complete file, the last one winning.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import TraceGPTError


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
