"""What every command shares: reading the prompt, parsing layer lists, writing JSON."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .. import files
from ..errors import UsageError

# More text than any GPT-2 context can hold (1,024 tokens of GPT-2's longest token, 128 bytes, is
# 128 KiB), read before a checkpoint says its own bound: standard input is never read past this.
MAX_STDIN_BYTES = 16 * 2**20


def read_prompt(prompt: str, model: str | None) -> str:
    """The prompt argument; '-' reads standard input as UTF-8 (one trailing newline dropped).

    A prompt far too long for the embedded model is refused here, before torch is imported
    (seconds on a small machine); other models check it once loaded. Standard input is read
    only as far as the model's context could hold, so `yes | tracegpt trace -` ends at once.
    """
    from ..embedded import EMBEDDED, check_prompt_fits, default_model_name, prompt_byte_limit

    embedded = (model or default_model_name()) == EMBEDDED
    if prompt != "-":
        text = checked_utf8(prompt)
    else:
        bound = prompt_byte_limit() if embedded else None
        text = read_stdin(bound[0] if bound else MAX_STDIN_BYTES, f"{EMBEDDED}'s context of {bound[1]} tokens"
                          if bound else "any model's context")
    if text and embedded:
        check_prompt_fits(text)
    return text


def checked_utf8(prompt: str) -> str:
    """An argument as the shell passed it; bytes that are not UTF-8 are refused, not turned into U+FFFD."""
    try:
        prompt.encode("utf-8")
        return prompt
    except UnicodeEncodeError:
        raw = prompt.encode("utf-8", errors="surrogateescape")
        bad = _first_bad_byte(raw)
        raise UsageError(f"the prompt is not valid UTF-8 ({bad}); pass UTF-8 text") from None


def read_stdin(limit: int, holds: str) -> str:
    if sys.stdin is None:
        raise UsageError("standard input is closed; give the prompt as an argument instead of '-'")
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise UsageError(f"standard input holds more than {limit:,} bytes, more than {holds} can hold; "
                         f"give a shorter prompt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"standard input is not valid UTF-8 ({_first_bad_byte(data)})") from None
    return text[:-1] if text.endswith("\n") else text


def _first_bad_byte(data: bytes) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"byte 0x{data[e.start]:02x} at offset {e.start}"
    return "no bad byte"


def check_writable(path: str | Path, option: str) -> Path:
    """Fail before the work, not after it, when an output file cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")
    return path


def note(text: str) -> None:
    """One line on standard error that the run goes on after: a setting that does nothing, a file written."""
    if sys.stderr is not None:
        print(f"note: {text}", file=sys.stderr, flush=True)


def said_saved(saved) -> None:
    from ..texts import say

    note(say("common", "saved", path=saved.path, n=saved.arrays, bytes=f"{saved.bytes:,}"))


@contextmanager
def loading(model: str | None):
    """A transient "loading MODEL…" on standard error while a model loads, when that is a terminal."""
    if sys.stderr is None or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    from ..embedded import default_model_name
    from ..texts import say

    with Console(stderr=True).status(say("common", "loading", model=model or default_model_name()), spinner="dots"):
        yield


def check_not_the_model(lm, **outputs) -> None:
    """Refuse, whatever else is allowed, to write over a file the model was just read from."""
    own = {os.path.realpath(p): p for p in lm.files}
    for option, path in outputs.items():
        if path is not None and os.path.realpath(path) in own:
            raise UsageError(f"--{option} {path}: that is {own[os.path.realpath(path)].name} of {lm.name}, the model "
                             f"just loaded; tracegpt never writes over the model it reads, so give another file name")


def parse_indices(spec: str | None, option: str, noun: str, count: int, model: str,
                  default: int | None = None) -> list[int] | None:
    """'all', '2', '0,2' or '1-3' -> sorted indices in 0..count-1; None means all (`default` when spec is None).

    Both ends of a range are checked before it is expanded, so '0-99999999999999' is refused at once.
    """
    if spec is None:
        return None if default is None else [default]
    spec = spec.strip()
    if spec.lower() == "all":
        return None
    valid = f"{model} has {noun} 0..{count - 1} (counting from 0)"
    chosen = set()
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            ends = (int(lo), int(hi)) if dash and lo else (int(part),)  # a leading '-' is a negative number
        except ValueError:
            raise UsageError(f"{option} {spec!r} is not a number; use e.g. 2, 0,2, 1-3 or all ({valid})") from None
        bad = next((i for i in ends if not 0 <= i < count), None)
        if bad is not None:
            raise UsageError(f"{option} {bad} is out of range; {valid}")
        chosen.update(range(ends[0], ends[-1] + 1))
    if not chosen:
        raise UsageError(f"{option} {spec!r} selects nothing; {valid}")
    return sorted(chosen)


def emit_json(doc: dict) -> None:
    from ..views.common import writes_unicode

    # json.dumps, never rich: rich wraps long lines when stdout is not a terminal. Output that
    # cannot hold Unicode gets \uXXXX escapes: the same JSON, in ASCII.
    sys.stdout.write(json.dumps(doc, ensure_ascii=not writes_unicode(sys.stdout)) + "\n")
    sys.stdout.flush()


def check_outputs(as_json: bool, svg: Path | None, html: Path | None) -> None:
    """--svg and --html save the view: refuse them with --json, and check the paths before the work."""
    for path, option in ((svg, "--svg"), (html, "--html")):
        if path is None:
            continue
        if as_json:
            raise UsageError(f"{option} saves the view, and --json prints no view; use one or the other")
        check_writable(path, option)


def show(draw, width: int | None, color: bool, svg: Path | None, html: Path | None, title: str) -> None:
    """A view on standard output, and in --svg/--html when asked: draw(console) gives what to print."""
    from ..views.common import make_console

    console = make_console(width=width, color=color, record=bool(svg or html))
    console.print(draw(console))
    save_exports(console, svg, html, title)


def save_exports(console, svg: Path | None, html: Path | None, title: str) -> None:
    # clear=False: the same recording feeds both files when both are asked for.
    from ..views.common import export_html, export_svg

    exports = []
    if svg is not None:
        exports.append((svg, export_svg(console, title)))
    if html is not None:
        exports.append((html, export_html(console)))
    for path, text in exports:
        files.write_text(path, text)


# --- texts that may be longer than the context (score) ---

# A text to score is read whole, at most this much: some 20 million tokens, hours of CPU already.
MAX_TEXT_BYTES = 64 * 2**20


def read_text(text: str | None, path: Path | None) -> str:
    """The text argument ('-' reads standard input, one trailing newline dropped) or the file at `path`, whole.

    UTF-8 only. No context check: score reads a long text in sliding windows.
    """
    if (text is None) == (path is None):
        raise UsageError("give the text to score as an argument ('-' reads standard input) or with --file PATH, "
                         "one of the two")
    if path is None and text != "-":
        return checked_utf8(text)
    if path is None:
        if sys.stdin is None:
            raise UsageError("standard input is closed; give the text as an argument or with --file PATH")
        where, data = "standard input", sys.stdin.buffer.read(MAX_TEXT_BYTES + 1)
    else:
        where = f"--file {path}"
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_TEXT_BYTES + 1)
        except OSError as e:
            raise UsageError(f"{where}: cannot read ({files.why(e)})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise UsageError(f"{where} holds more than {MAX_TEXT_BYTES:,} bytes, more than tracegpt score reads at "
                         "once; score a part of it")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{where} is not valid UTF-8 ({_first_bad_byte(data)})") from None
    return decoded[:-1] if path is None and decoded.endswith("\n") else decoded
