"""The ``redis`` contract backend: ``dque.RedisQueue`` on a real redis-server (``tests/redis_server.py``).

One server per test process (started at the first Redis contract test,
``--appendonly yes --appendfsync always``, stopped by pid at exit; listed in
``helper_pids`` so the stray check knows it), a fresh stream name per backend
instance, and every key of that queue deleted at ``close_all()``. Skips with a
one-line reason when there is no ``redis-server`` binary or no redis-py.
"""

from __future__ import annotations

import atexit
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

import dque

from .backends import Capabilities, close_handles

LEASE_TTL = 1.0  # short, so that a dead holder's leases come back soon

REDIS_CAPS = Capabilities(
    death_releases_at_once=False,  # seen when the holder stops renewing: within lease_ttl
    death_release_within=LEASE_TTL,
    released_items_in_original_order=True,  # the returned set is ordered by entry id
    per_lease_ttl=True,  # lease(ttl=s): renewals never go past s
    shared_between_processes=True,
    close_leaves_leases=False,  # close() releases this handle's leases
)

_server: Any = None


def _shared_server() -> Any:
    """This process's redis-server, started on first use and stopped (by pid) when the process exits."""
    global _server
    if _server is None:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from redis_server import SKIP_REASON, RedisServer

        if SKIP_REASON is not None:
            pytest.skip(SKIP_REASON)
        server = RedisServer(tempfile.mkdtemp(prefix="dque-contract-redis-"))
        server.start()
        atexit.register(_stop, server)
        _server = server
    return _server


def _stop(server: Any) -> None:
    import shutil

    server.stop()
    shutil.rmtree(server.dirpath, ignore_errors=True)


class RedisBackend:
    """``dque.RedisQueue``: ``make`` opens a fresh stream, ``reopen`` a new handle on it."""

    name = "redis"
    caps = REDIS_CAPS

    def __init__(self, tmp_path: Path) -> None:
        self.server = _shared_server()
        self.helper_pids = [self.server.pid]
        self.stream = f"contract-{uuid.uuid4().hex[:12]}"
        self.options: dict[str, Any] = {}
        self.handles: list[dque.RedisQueue] = []
        self.current: dque.RedisQueue | None = None

    def _open(self, name: str | None = None, **options: Any) -> dque.RedisQueue:
        q = dque.RedisQueue(name or self.stream, self.server.url, **options)
        self.handles.append(q)
        return q

    def make(self, **options: Any) -> dque.RedisQueue:
        unknown = set(options) - {"maxsize", "max_deliveries", "serializer", "lease_ttl"}
        if unknown:
            raise TypeError(f"redis backend takes no option(s) {sorted(unknown)}")
        if self.current is not None:
            raise RuntimeError("make() once per backend instance; use reopen()")
        self.options = {"lease_ttl": LEASE_TTL, **options}
        self.current = self._open(**self.options)
        return self.current

    def reopen(self) -> dque.RedisQueue:
        if self.current is not None:
            self.current.close()
        self.current = self._open(**self.options)
        return self.current

    def dead_letters(self) -> list[Any]:
        dead = self._open(self.stream + ".dead", serializer=self.options.get("serializer"))
        try:
            return dead.dequeue_many(dead.size() + 1)
        finally:
            dead.close()

    def close_all(self) -> None:
        errors = close_handles(self.handles)
        import redis

        client = redis.Redis.from_url(self.server.url)
        try:
            for name in (self.stream, self.stream + ".dead"):
                keys = [name, *(f"{name}:dque:{what}" for what in ("leases", "returned", "tasks", "meta"))]
                client.delete(*keys)
        finally:
            client.close()
        if errors:
            raise errors[0]


def make_backend(tmp_path: Path) -> RedisBackend:
    """The backend the registry asks for (``backends.make_backend("redis", tmp_path)``)."""
    return RedisBackend(tmp_path)
