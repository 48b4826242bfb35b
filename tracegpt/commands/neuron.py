"""`tracegpt neuron`: one FFN neuron as a view, JSON, SVG or HTML; or building a neuron index from a corpus."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ParameterError, UsageError
from .common import check_not_the_model, check_outputs, check_writable, emit_json, read_prompt, show


def run(neuron: str | None, model: str | None, device: str, dtype: str, prompt: str | None, index: Path | None,
        top_k: int, text: Path | None, out: Path | None, as_json: bool, svg: Path | None, html: Path | None,
        width: int | None, color: bool) -> None:
    if neuron is None:
        raise UsageError("give the neuron as LAYER.NEURON, counting from 0 (e.g. tracegpt neuron 2.403), "
                         "or --build-index to build an index")
    for option, value in (("--text", text), ("--out", out)):
        if value is not None:
            raise UsageError(f"{option} is for --build-index; to show neuron {neuron}, leave it out")
    if top_k < 1:
        raise UsageError(f"--top-k {top_k} is out of range; it must be at least 1")
    check_outputs(as_json, svg, html)
    if index is not None:
        check_readable(index, "--index")
    if prompt is not None:
        prompt = read_prompt(prompt, model)  # before torch is imported

    from .. import export, loader
    from ..analysis import neurons
    from ..views import neuron as neuron_view

    lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, svg=svg, html=html)
    chosen = parse(neuron, lm)
    path = index if index is not None else neurons.default_index_path(lm)
    found = None if path is None else neurons.read_index(path, lm)
    report = neurons.neuron_report(lm, chosen, found, prompt, k=min(top_k, lm.config.vocab_size))
    if as_json:
        emit_json(export.neuron_to_dict(report))
        return
    show(lambda console: neuron_view.render(report, console.width, console.color_system),
         width, color, svg, html, "tracegpt neuron")


def parse(neuron: str, lm):
    from ..analysis.neurons import parse_neuron

    try:
        return parse_neuron(neuron, lm)
    except ParameterError as e:  # a positional argument: worded as "neuron '9.1': ...", not as an option
        raise UsageError(str(e)) from None


def check_readable(path: Path, option: str) -> None:
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file")
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such file")


def read_text(path: Path) -> str:
    """The text to scan, as UTF-8; every failure is a usage error naming the file."""
    check_readable(path, "--text")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"--text {path}: cannot read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"--text {path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None


def build(neuron: str | None, model: str | None, device: str, dtype: str, prompt: str | None, index: Path | None,
          text: Path | None, out: Path | None, svg: Path | None, html: Path | None, as_json: bool,
          training_corpus) -> None:
    """Scan a corpus (the --text file, or the embedded model's training text) and write the index to --out."""
    for given, option in ((neuron, "a neuron"), (prompt, "--prompt"), (index, "--index"), (svg, "--svg"),
                          (html, "--html")):
        if given is not None:
            raise UsageError(f"--build-index builds an index and shows no neuron; leave out {option}")
    if out is None:
        raise UsageError("--build-index needs --out FILE, the index to write (e.g. --out my.neurons.npz)")
    check_writable(out, "--out")
    corpus_text = read_text(text) if text is not None else None
    if corpus_text is not None and not corpus_text:
        raise UsageError(f"--text {text}: the file is empty")

    from .. import loader
    from ..analysis import neurons
    from ..embedded import EMBEDDED
    from ..views import neuron as neuron_view

    lm = loader.load(model, device=device, dtype=dtype)
    check_not_the_model(lm, out=out)
    if corpus_text is None:
        if lm.name != EMBEDDED:
            raise UsageError(f"--build-index for {lm.name} needs --text FILE: only the embedded model's corpus is "
                             f"known to tracegpt")
        ids, corpus = training_corpus(lm.encoding)
    else:
        ids, corpus = lm.encode(corpus_text), neurons.text_corpus(text, corpus_text)
    started = time.perf_counter()
    show = not as_json and sys.stderr is not None and sys.stderr.isatty()
    label = neuron_view.corpus_label(corpus, lm.name)
    with neuron_view.build_progress(len(ids), label, show) as progress:
        built = neurons.build_index(lm, ids, corpus, progress=progress)
    neurons.write_index(built, out)
    summary = neurons.build_summary(built, out, time.perf_counter() - started)
    if as_json:
        emit_json(summary)
        return
    from ..views import common

    common.make_console().print(neuron_view.built_line(summary))
