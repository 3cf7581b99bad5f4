"""A real ``redis-server`` for the gateway and remote tests (no mocks of Redis).

The session fixture starts one server on a free loopback port with no persistence
(``--save '' --appendonly no``) and stops it at the end; fault tests take a server of their own
(``own_redis``) that they can kill and restart on the same port. Tests that need Redis skip only
when ``redis-server`` is absent *and* ``HEAN_REQUIRE_REDIS`` is unset (``.ci/run`` sets it and
installs the package, so CI never skips them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HAVE_REDIS = os.access(REDIS_SERVER, os.X_OK)

needs_redis = pytest.mark.skipif(
    not HAVE_REDIS and not os.environ.get("HEAN_REQUIRE_REDIS"),
    reason="redis-server not installed (apt-get install -y redis-server); .ci/run installs it",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (start, kill, restart on the same port)."""

    def __init__(self, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="hean-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if not HAVE_REDIS:
            pytest.fail(f"{REDIS_SERVER} is missing and HEAN_REQUIRE_REDIS is set")
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--logfile", "",
            "--loglevel", "warning",
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL (a crash: nothing saved, connections reset)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            assert s.recv(16).startswith(b"+OK")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not HAVE_REDIS and not os.environ.get("HEAN_REQUIRE_REDIS"):
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, which it may kill and restart (fault tests)."""
    if not HAVE_REDIS and not os.environ.get("HEAN_REQUIRE_REDIS"):
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        server.stop()
