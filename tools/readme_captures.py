"""The README's captured outputs: rerun each `<!-- capture: CMD -->` and compare, or write them back.

    python tools/readme_captures.py            # diff of every capture that no longer matches
    python tools/readme_captures.py --write    # put the fresh outputs into README.md

A capture is the HTML comment naming the command, then a fenced block with its output. A
command that starts with `tracegpt` is shown as `$ CMD` (without `--width 80`) above it.
Lines that time the run (`Speed: ...`) differ between runs and are left as they are.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
CAPTURE = re.compile(r"<!-- capture: (?P<cmd>.*?) -->\n```\n(?P<out>.*?)```\n", re.S)
TIMED = re.compile(r"^Speed: ")
NEW_SENTENCE = re.compile(r"^(\S[^:]*:|$)")  # "Positions computed: ...", or a blank line


def shown_command(cmd: str) -> str | None:
    return f"$ {cmd.replace(' --width 80', '')}" if cmd.startswith("tracegpt ") else None


def run(cmd: str) -> str:
    env = dict(os.environ, COLUMNS="80", NO_COLOR="1", OMP_WAIT_POLICY="PASSIVE")
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env)
    if done.returncode not in (0, 141):  # 141: `| head` closed the pipe
        sys.exit(f"{cmd}: exit {done.returncode}\n{done.stderr}")
    out = "\n".join(line.rstrip() for line in done.stdout.splitlines())
    shown = shown_command(cmd)
    return (f"{shown}\n" if shown else "") + out + "\n"


def timed_spans(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each timing sentence: its line, and the lines it wraps onto."""
    spans = []
    for i, line in enumerate(lines):
        if TIMED.match(line):
            end = i + 1
            while end < len(lines) and not NEW_SENTENCE.match(lines[end]):
                end += 1
            spans.append((i, end))
    return spans


def keep_timings(old: str, new: str) -> str:
    """The old capture's timing sentences in place of the new one's (they change every run)."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    old_spans, new_spans = timed_spans(old_lines), timed_spans(new_lines)
    for (o0, o1), (n0, n1) in reversed(list(zip(old_spans, new_spans))):
        new_lines[n0:n1] = old_lines[o0:o1]
    return "\n".join(new_lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the fresh outputs into README.md")
    args = parser.parse_args()
    text = README.read_text()
    changed = 0

    def refresh(m: re.Match) -> str:
        nonlocal changed
        fresh = keep_timings(m["out"], run(m["cmd"]))
        if fresh != m["out"]:
            changed += 1
            sys.stdout.writelines(difflib.unified_diff(m["out"].splitlines(True), fresh.splitlines(True),
                                                       f"README: {m['cmd']}", "now"))
        return f"<!-- capture: {m['cmd']} -->\n```\n{fresh}```\n"

    new = CAPTURE.sub(refresh, text)
    print(f"{len(CAPTURE.findall(text))} captures, {changed} changed", file=sys.stderr)
    if args.write and new != text:
        README.write_text(new)


if __name__ == "__main__":
    main()
