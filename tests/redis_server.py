"""A real ``redis-server`` for the tests: started from PATH, on a free port, in its own directory.

``RedisServer(dirpath)`` runs ``redis-server --port P --dir dirpath --appendonly yes
--appendfsync always --save '' --daemonize no`` and waits (bounded) until it
answers PING; ``stop()`` ends it by pid (SIGTERM, then SIGKILL after a bound),
``kill()`` SIGKILLs it, ``start()`` starts it again on the same directory and
port (for crash tests). ``SKIP_REASON`` is a one-line reason to skip when
there is no ``redis-server`` binary or no ``redis`` module; None otherwise.
The pytest fixture ``redis_server`` (in ``conftest``-free form: import it from
here) gives one server per test.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

try:
    import redis
except ImportError:  # pragma: no cover - depends on the environment
    redis = None  # type: ignore[assignment]

BINARY = shutil.which("redis-server")
SKIP_REASON: str | None = (
    "no redis-server binary on PATH (apt-get install redis-server)"
    if BINARY is None
    else "no redis module (pip install 'dque[redis]')"
    if redis is None
    else None
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

needs_redis = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def _die_with_parent() -> None:
    """Linux: the server gets SIGKILL if the test process dies first, so none is ever left behind."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process with durable settings (AOF, fsync at every write)."""

    def __init__(
        self, dirpath: str, port: int | None = None, appendfsync: str = "always", appendonly: bool = True
    ) -> None:
        self.dirpath = dirpath
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> RedisServer:
        """Start (or start again, on the same directory and port); wait until it answers PING."""
        assert BINARY is not None
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        args = [
            BINARY,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dirpath,
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync, "--save", "",
            "--daemonize", "no", "--logfile", os.path.join(self.dirpath, "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)
                try:
                    if client.ping():
                        # loading the AOF answers PING with LOADING: wait until it is done
                        if client.info("persistence").get("loading", 0) == 0:
                            return self
                finally:
                    client.close()
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT} s: {self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dirpath, "redis.log"), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL it (a crash: nothing flushed that was not yet)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM it, then SIGKILL if it has not exited within STOP_TIMEOUT seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def redis_server(tmp_path: object) -> Iterator[RedisServer]:
    """A fresh server for one test, stopped (by pid) at its end."""
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(str(tmp_path))
    try:
        yield server.start()
    finally:
        server.stop()
