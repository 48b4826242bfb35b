"""Every example in examples/ runs and says what it promises."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_attention_heatmap():
    out = run(sys.executable, EXAMPLES / "attention_heatmap.py", "To be, or not to be", "3", "2")
    assert "layer 3, head 2" in out and len(out.splitlines()) == 1 + 7


def test_residual_norms():
    out = run(sys.executable, EXAMPLES / "residual_norms.py", "My lord,")
    assert "block 3" in out and "embedding" in out


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("tracegpt") is None, reason="needs jq and tracegpt")
def test_jq_one_liner():
    out = run("bash", EXAMPLES / "top_next_token.sh", "I love").splitlines()
    token, prob = out[0].rsplit(" ", 1)
    assert 0 < float(prob) <= 1
    assert out[1].startswith("embed.token\t")
