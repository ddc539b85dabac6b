"""`thinkube serve` as a child process on 127.0.0.1: how the demo, tests and benchmarks run
a real server without a cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(
    url: str,
    timeout: float,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
    path: str = "/health",
) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            output = log_path.read_text() if log_path else (proc.stdout.read() if proc.stdout else "")
            raise RuntimeError(f"server exited with {proc.returncode}:\n{output[-4000:]}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url}{path} not 200 after {timeout}s")


class ServeProcess:
    """`thinkube serve ARGS` on a free port. Output goes to `log_path` when given (a long
    run must not block on a full pipe), else to a pipe the caller may read."""

    def __init__(self, *args: str, env: dict | None = None, log_path: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "thinkube.cli", "serve", "--port", str(self.port), *args]
        log_file = log_path.open("w") if log_path else None
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE if log_file is None else log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        if log_file is not None:
            log_file.close()  # the child holds its own descriptor

    def wait(self, timeout: float = 300) -> ServeProcess:
        wait_healthy(self.url, timeout, self.proc, self.log_path)
        return self

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.terminate()
