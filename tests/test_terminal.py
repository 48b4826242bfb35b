"""Seen in a real terminal: tmux at 80 columns, the pane captured as a person would see it."""

import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WIDTH = 80


def run_in_tmux(tmp_path, *args: str) -> list[str]:
    """Run `tracegpt ARGS` in a fresh 80-column tmux pane; return its lines, wrapped lines joined."""
    socket = f"tracegpt-test-{os.getpid()}"
    done = tmp_path / "done"
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "tracegpt", *args])
    tmux = ["tmux", "-L", socket, "-f", os.devnull]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    subprocess.run([*tmux, "new-session", "-d", "-x", str(WIDTH), "-y", "50",
                    f"{command}; echo $? > {done}; sleep 600"], check=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.exists(), "tracegpt did not finish within 120 s"
        assert done.read_text().strip() == "0"
        # -J joins lines the terminal wrapped, so a line that overflowed comes back longer than the pane.
        pane = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"],
                              capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    return pane.rstrip("\n").splitlines()


def test_trace_fits_80_columns(tmp_path):
    lines = run_in_tmux(tmp_path, "trace", "I love")
    assert max(len(line.rstrip()) for line in lines) <= WIDTH, max(lines, key=len)
    text = "\n".join(lines)
    for heading in ("pos  token", "Embedding", "Block 0", "Block 3", "Final LayerNorm", "Logits", "Next token"):
        assert heading in text, heading


def test_attn_fits_80_columns(tmp_path):
    lines = run_in_tmux(tmp_path, "attn", "I love you", "--layer", "0", "--head", "0")
    assert max(len(line.rstrip()) for line in lines) <= WIDTH, max(lines, key=len)
    text = "\n".join(lines)
    for heading in ("Attention in", "Layer 0, head 0", "queries", "keys", "masked"):
        assert heading in text, heading
