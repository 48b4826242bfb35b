"""Outputs replace the user's file whole or not at all: killed, interrupted, out of room, or raced."""

import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from tracegpt import files
from tracegpt.errors import TraceGPTError


def valid_npz(path) -> bool:
    with zipfile.ZipFile(path) as z:
        return z.testzip() is None


def test_the_old_file_stays_whole_when_the_write_fails(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old contents")

    class Broken(Exception):
        pass

    with pytest.raises(Broken):
        with files.replacing(target) as f:
            f.write(b"half of the new")
            raise Broken
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["t.bin"]  # the partial file is gone too


def test_an_interrupted_write_says_the_file_was_not_saved(tmp_path):
    target = tmp_path / "t.bin"
    with pytest.raises(KeyboardInterrupt, match=f"{target} not saved"):
        with files.replacing(target) as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert not target.exists()


def test_a_size_limit_leaves_the_old_npz_intact(tmp_path):
    # RLIMIT_FSIZE makes write() fail with EFBIG (Python ignores SIGXFSZ), as a full disk would.
    target = tmp_path / "t.npz"
    np.savez(target, **{"x": np.arange(10)})
    before = target.read_bytes()
    code = ("import resource, numpy as np; from tracegpt import files; "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)); "
            f"f = files.replacing({str(target)!r}); h = f.__enter__(); np.savez(h, a=np.zeros(10**6)); "
            "f.__exit__(None, None, None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and "cannot write" in r.stderr and "File too large" in r.stderr
    assert target.read_bytes() == before


def test_a_kill_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "t.npz"
    np.savez(target, x=np.arange(10))
    before = target.read_bytes()
    code = ("import numpy as np; from tracegpt import files\n"
            f"with files.replacing({str(target)!r}) as f: np.savez(f, **{{f'a{{i}}': "
            "np.random.default_rng(i).random(250_000) for i in range(40)})")  # 80 MB: killed in the middle
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
        time.sleep(0.01)
    time.sleep(0.05)  # into writing
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == before


def test_concurrent_writers_each_leave_a_complete_file(tmp_path):
    target = tmp_path / "t.npz"
    code = ("import numpy as np, sys; from tracegpt import files; i = int(sys.argv[1])\n"
            f"with files.replacing({str(target)!r}) as f: np.savez(f, **{{f'a{{j}}': np.full(200_000, i) "
            "for j in range(20)})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)]) for i in range(4)]
    assert all(p.wait() == 0 for p in procs)
    assert valid_npz(target)
    with np.load(target) as npz:
        assert len(npz.files) == 20 and len({int(npz[k][0]) for k in npz.files}) == 1


def test_a_new_file_gets_the_usual_permissions_and_an_old_one_keeps_its_own(tmp_path):
    fresh, kept = tmp_path / "fresh.svg", tmp_path / "kept.svg"
    kept.write_text("old")
    os.chmod(kept, 0o640)
    umask = os.umask(0o022)
    try:
        files.write_text(fresh, "new")
        files.write_text(kept, "new")
    finally:
        os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o644 and kept.stat().st_mode & 0o777 == 0o640
    assert kept.read_text() == "new"


def test_a_folder_that_cannot_be_written_is_a_named_error(tmp_path):
    with pytest.raises(TraceGPTError, match="cannot write"):
        files.write_text(tmp_path / "missing" / "x.svg", "x")


def test_an_interrupted_save_through_the_cli_says_so(tmp_path):
    # Ctrl-C while trace --save writes: exit 130, "interrupted; FILE not saved", the old file intact.
    target = tmp_path / "t.npz"
    np.savez(target, x=np.arange(3))
    before = target.read_bytes()
    code = ("import numpy as np, sys, signal, threading, os; from tracegpt import export; "
            "from tracegpt.cli import main; real = np.savez; "
            "export.np.savez = lambda f, **a: (real(f, **a), os.kill(os.getpid(), signal.SIGINT), "
            "threading.Event().wait(5)); sys.argv = ['tracegpt', 'trace', 'I love', '--save', sys.argv[1]]; main()")
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip() == f"error: interrupted; {target} not saved"
    assert target.read_bytes() == before

