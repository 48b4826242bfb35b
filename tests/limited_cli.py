"""`tracegpt ARGS...` in a worker process whose address space is capped, for hostile files.

A file that makes tracegpt allocate gigabytes would, run in the test process, eat the
machine (or abort it, as tiktoken does when out of memory). In the worker it hits the cap,
and the case fails with what the worker said or how it died, and the next case gets a
fresh worker. Torch is imported once per worker, so a case costs what loading costs.

    with LimitedCli(memory=3 * 2**30) as cli:
        r = cli.run("trace", "hi", "--model", folder)   # r.exit_code, r.stderr, r.seconds

Run as a script, this file is the worker: one JSON list of arguments per line on stdin, one
JSON result per line on stdout.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tracegpt


@dataclass
class Outcome:
    exit_code: int | None  # None: the worker died or ran past the time limit
    stdout: str
    stderr: str
    seconds: float
    died: str = ""  # how the worker ended, when it did


class LimitedCli:
    def __init__(self, memory: int, timeout: float = 10.0):
        self.memory, self.timeout = memory, timeout
        self.worker: subprocess.Popen | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.worker is not None:
            self.worker.kill()
            self.worker_code = self.worker.wait()
            self.worker = None

    def _start(self):
        # The worker imports the tracegpt these tests import, wherever it is installed from.
        root = str(Path(tracegpt.__file__).resolve().parent.parent)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
               "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        env.pop("TRACEGPT_MODEL", None)
        self.errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty worker never blocks
        self.worker = subprocess.Popen(
            [sys.executable, __file__, str(self.memory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.errors, text=True, env=env)
        ready = self._reply(120.0)  # torch's import, once
        assert ready == {"ready": True}, ready

    def _reply(self, timeout: float):
        ready, _, _ = select.select([self.worker.stdout], [], [], timeout)
        line = self.worker.stdout.readline() if ready else ""
        return json.loads(line) if line else None

    def run(self, *args) -> Outcome:
        if self.worker is None:
            self._start()
        start = time.perf_counter()
        self.worker.stdin.write(json.dumps([str(a) for a in args]) + "\n")
        self.worker.stdin.flush()
        reply = self._reply(self.timeout)
        if reply is not None:
            return Outcome(**reply)
        seconds = time.perf_counter() - start
        timed_out = self.worker.poll() is None
        self.close()
        self.errors.seek(0)
        err = self.errors.read()[-3000:]
        died = f"ran past {self.timeout} s" if timed_out else f"the worker died ({self.worker_code})"
        return Outcome(None, "", err, seconds, died=died)


def _serve(memory: int):
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    import torch  # noqa: F401 - paid once, before any case
    from typer.testing import CliRunner

    from tracegpt.cli import app

    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        r = CliRunner().invoke(app, json.loads(line), env={"TRACEGPT_MODEL": None})
        reply = {"exit_code": r.exit_code, "stdout": r.stdout[-3000:], "stderr": r.stderr[-3000:],
                 "seconds": time.perf_counter() - start}
        print(json.dumps(reply), file=out, flush=True)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
