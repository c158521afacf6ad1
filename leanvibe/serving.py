"""A server process on a free loopback port, for tests and benchmarks: started, waited for until
its health path answers 200, stopped afterwards (terminate, then kill); the end of its log goes
into the error when it does not start."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int, path: str, host: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path, headers={"Host": host})
        ok = conn.getresponse().status == 200
        conn.close()
    except OSError:
        return False
    return ok


def _tail(path: str) -> str:
    return Path(path).read_text(errors="replace")[-2000:]


@contextmanager
def server_process(
    command: Sequence[str],
    *,
    name: str,
    env: dict[str, str] | None = None,
    health: str = "/health",
    host: str = "localhost",
    timeout: float = 60,
) -> Iterator[int]:
    """Run ``command`` (``{port}`` in any part is replaced by a free port) from the project's
    folder with ``env`` added to this process's environment; yields the port once ``GET
    health`` answers 200."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - the caller's own command
        [part.replace("{port}", str(port)) for part in command],
        env={**os.environ, **(env or {})},
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(port, health, host):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {_tail(log.name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer within {timeout:.0f} s: {_tail(log.name)}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        os.unlink(log.name)
