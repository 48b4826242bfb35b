"""What every command shares: reading the prompt, parsing layer lists, writing JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import TraceGPTError, UsageError


def read_prompt(prompt: str, model: str | None) -> str:
    """The prompt argument; '-' reads standard input as UTF-8 (one trailing newline dropped).

    A prompt far too long for the embedded model is refused here, before torch is imported
    (seconds on a small machine); other models check it once loaded.
    """
    text = _read_prompt(prompt)
    from ..embedded import EMBEDDED, check_prompt_fits, default_model_name

    if text and (model or default_model_name()) == EMBEDDED:
        check_prompt_fits(text)
    return text


def _read_prompt(prompt: str) -> str:
    if prompt != "-":
        return prompt
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = f"byte 0x{data[e.start]:02x} at offset {e.start}"
        raise UsageError(f"standard input is not valid UTF-8 ({bad})") from None
    return text[:-1] if text.endswith("\n") else text


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


def parse_layers(spec: str | None, n_layer: int) -> list[int] | None:
    """'all', '3', '0,2', '1-3' -> sorted block indices, each checked against the model."""
    if spec is None or spec.strip().lower() == "all":
        return None
    layers = set()
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        if dash and lo:  # a range such as 1-3; a leading '-' is a (negative, invalid) number
            first, last = _layer_number(lo, spec, n_layer), _layer_number(hi, spec, n_layer)
            layers.update(range(first, last + 1))
        else:
            layers.add(_layer_number(part, spec, n_layer))
    if not layers:
        raise UsageError(f"--layers {spec!r} selects no layer; valid layers are 0..{n_layer - 1}")
    return sorted(layers)


def _layer_number(text: str, spec: str, n_layer: int) -> int:
    try:
        layer = int(text)
    except ValueError:
        raise UsageError(f"--layers {spec!r} is not a list of layers; use e.g. 0,2 or 1-3 or all") from None
    if not 0 <= layer < n_layer:
        raise UsageError(f"--layers {spec!r}: layer {layer} does not exist; valid layers are 0..{n_layer - 1}")
    return layer


def emit_json(doc: dict) -> None:
    # json.dumps, never rich: rich wraps long lines when stdout is not a terminal.
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def check_outputs(as_json: bool, svg: Path | None, html: Path | None) -> None:
    """--svg and --html save the view: refuse them with --json, and check the paths before the work."""
    for path, option in ((svg, "--svg"), (html, "--html")):
        if path is None:
            continue
        if as_json:
            raise UsageError(f"{option} saves the view, and --json prints no view; use one or the other")
        check_writable(path, option)


def save_exports(console, svg: Path | None, html: Path | None, title: str) -> None:
    # clear=False: the same recording feeds both files when both are asked for.
    exports = []
    if svg is not None:
        # Rich writes spaces as &#160;; without xml:space="preserve" librsvg drops the leading ones
        # and right-aligned numbers drift left. Browsers draw it the same either way.
        image = console.export_svg(title=title, clear=False)
        exports.append((svg, image.replace("<svg ", '<svg xml:space="preserve" ', 1)))
    if html is not None:
        exports.append((html, console.export_html(clear=False)))
    for path, text in exports:
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as e:
            raise TraceGPTError(f"cannot write {path}: {e.strerror or e}") from None
