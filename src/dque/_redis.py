"""``RedisQueue``: the dque API on a Redis stream (Redis 7+), for queues shared across machines.

One stream per queue (key ``name``) with one consumer group; every step that
must be atomic is one Lua script (``_redis_lua``), run with EVALSHA in one
round trip on a connection the handle keeps (``_redis_wire``: loaded again when
the server has forgotten it). A handle inherited by a forked child becomes
the child's own (its own consumer, renewer and connections). Leases are
renewed in the background by the handle that holds them (``_redis_renew``), so
a dead holder's items come back within ``lease_ttl`` and a slow live one
keeps them. The README's "Redis backend" section has the semantics table and
the durability contract.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from time import monotonic, sleep
from typing import Any, NoReturn, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ._args import check_int, check_seconds, check_timeout
from ._lease import Lease
from ._redis_errors import BackendError
from ._redis_lua import GROUP, SCRIPTS, aux, keys_of
from ._redis_renew import Renewer
from ._redis_wire import ScriptRunner
from ._serializers import resolve
from .errors import ClosedError, ConfigError, Empty, Full, LeaseError, SerializationError, ShutDown

__all__ = ["RedisQueue", "BackendError"]

_log = logging.getLogger("dque")

DEFAULT_URL = "redis://localhost:6379/0"

SLICE = 0.1  # a blocked call wakes at least this often to see close(), shutdown() and released items
CLOSE_WAIT = 2.0  # close() waits this long at most for calls under way in other threads to end
PUT_SLICE = 0.05  # a put waiting for room, and join(), poll this often
IDLE_CONSUMER_MS = 3_600_000  # an empty consumer (a handle gone) idle this long is deleted at the next open

_NOT_SHUT, _SHUT, _SHUT_NOW = 0, 1, 2


class RedisQueue:
    """A durable FIFO queue in a Redis stream, with the API of :class:`dque.DQue`.

    ``name`` is the stream's key (its helper keys are ``<name>:dque:*``; the
    dead letters go to the queue ``<name>.dead``). ``url`` is redis-py's
    (``redis://host:port/db``, ``rediss://`` for TLS, ``unix://``), or pass a
    ready ``client`` (a ``redis.Redis`` made with ``decode_responses=False``).
    ``maxsize`` bounds ready plus leased items (0: unbounded); ``max_deliveries``
    moves an item handed out that many times without an ack to ``<name>.dead``;
    ``lease_ttl`` is how long a lease outlives the handle that holds it
    (renewed every ``lease_ttl / 3`` while it lives). These three are this
    handle's settings (give every handle of a queue the same ones); the
    serializer's name is stored with the queue and another one is a ConfigError.
    Many handles, in many processes on many machines, may use one queue at once.
    """

    # Why one class of ~590 lines: it is the whole of dque's API over Redis (~55 public
    # methods and properties), each a contract docstring over one script call or two. What
    # has a life of its own is elsewhere: the scripts (_redis_lua.py), the lease renewer
    # (_redis_renew.py), the wire and its errors (_redis_wire.py, _redis_errors.py).

    def __init__(
        self,
        name: str,
        url: str = DEFAULT_URL,
        serializer: Any = None,
        maxsize: int = 0,
        max_deliveries: int = 0,
        lease_ttl: float = 30.0,
        *,
        client: redis.Redis | None = None,
        socket_timeout: float = 10.0,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty")
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        self.name = name
        self.url = url
        self.maxsize = check_int(maxsize, "maxsize", 0)
        self.max_deliveries = check_int(max_deliveries, "max_deliveries", 0)
        self.lease_ttl = check_seconds(lease_ttl, "lease_ttl")
        self._serializer_name, self._serializer = resolve(serializer)
        self._keys = keys_of(name)
        self._lease_ms = max(1, int(self.lease_ttl * 1000)) if self.lease_ttl != float("inf") else 2**50
        self.consumer = _consumer_name()
        self._closed = False
        self._shutdown = _NOT_SHUT
        self._discounted = 0  # tasks counted as done by this handle's immediate shutdown (see unfinished_tasks)
        self._mutex = threading.Lock()
        self._running: list[None] = []  # one entry per call to the server under way (list ops are atomic)
        self._leases: dict[str, tuple[str, int, int]] = {}  # lease id -> (entry id, deliveries, hard deadline ms)
        self._own_client = client is None
        self._socket_timeout = socket_timeout
        if client is None:
            client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 0)
            )
        else:
            kwargs = client.get_connection_kwargs()
            if kwargs.get("decode_responses"):
                raise ValueError("RedisQueue needs a client made with decode_responses=False (items are bytes)")
            if url == DEFAULT_URL and "host" in kwargs:  # (for repr and pickling: where the client goes)
                self.url = f"redis://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
        self._redis = client
        self._runner = ScriptRunner(client, SCRIPTS, self._keys)
        self._renewer = Renewer(self)
        _handles.add(self)
        try:
            self._open()
        except BaseException:
            self._closed = True
            if self._own_client:
                self._redis.close()
            raise

    # ------------------------------------------------------------ plumbing

    def _forked(self) -> None:
        """In a forked child (e.g. a ``multiprocessing`` worker given the handle by fork): a handle of its own.

        A consumer name of its own (its leases are its own), no leases (the
        parent's stay the parent's: it renews, acks or releases them), a
        renewer of its own (the parent's thread is not in the child), fresh
        locks and connections.
        """
        self._mutex = threading.Lock()
        self._running = []
        self._leases = {}
        self.consumer = _consumer_name()
        self._renewer = Renewer(self)
        self._runner.forget_connections()

    def _open(self) -> None:
        def create() -> None:
            try:
                self._redis.xgroup_create(self.name, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            name = self._serializer_name.encode()
            for queue in (self.name, self._keys[4]):
                self._redis.hsetnx(aux(queue, "meta"), "serializer", name)
            stored = self._redis.hget(aux(self.name, "meta"), "serializer")
            if stored != name:
                was = stored.decode(errors="replace") if isinstance(stored, bytes) else stored
                raise ConfigError(
                    f"queue {self.name!r} was created with serializer {was!r}, not {self._serializer_name!r}"
                )
            self._script("cleanup", self.consumer, IDLE_CONSUMER_MS)

        self._call(create)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a redis-py call; its connection errors become BackendError (ClosedError once closed)."""
        self._running.append(None)
        try:
            return fn(*args)
        except Exception as exc:
            self._failed(exc)
        finally:
            self._running.pop()

    def _script(self, name: str, *args: Any) -> Any:
        """Run one of the ``_redis_lua`` scripts (EVALSHA, one round trip); errors as ``_call``'s."""
        self._running.append(None)
        try:
            return self._runner.run(name, args)
        except Exception as exc:
            self._failed(exc)
        finally:
            self._running.pop()

    def _failed(self, exc: Exception) -> NoReturn:
        """Raise what a failed call raises: BackendError, or ClosedError once closed (from an except block)."""
        if isinstance(exc, BackendError):
            raise exc  # (from a nested call)
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            if self._closed:
                raise ClosedError(f"queue {self.name!r} is closed") from None
            try:  # the idle connections are likely dead too (a server restart): drop them
                self._runner.drop_spares()
                self._redis.connection_pool.disconnect(inuse_connections=False)
            except Exception:
                pass
            raise BackendError(f"redis at {self.url}: {exc}") from exc
        if isinstance(exc, redis.ResponseError):
            raise BackendError(f"redis at {self.url} answered: {exc}") from exc
        if isinstance(exc, RedisError):
            if self._closed:
                raise ClosedError(f"queue {self.name!r} is closed") from None
            raise BackendError(f"redis at {self.url}: {exc!r}") from exc
        if self._closed:  # redis-py's own errors when close() cut the connection under a call
            raise ClosedError(f"queue {self.name!r} is closed") from None
        raise exc

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"queue {self.name!r} is closed")

    def _check_shutdown(self, take: bool) -> None:
        if self._shutdown and (not take or self._shutdown == _SHUT_NOW):
            raise ShutDown

    def _dumps(self, item: Any) -> bytes:
        try:
            payload = self._serializer.dumps(item)
        except Exception as exc:
            raise SerializationError(f"cannot serialize {type(item).__name__} item: {exc!r}") from exc
        if type(payload) is not bytes:
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                raise SerializationError(f"serializer returned {type(payload).__name__}, not bytes")
            payload = bytes(payload)
        return payload

    def _loads(self, payload: bytes) -> Any:
        try:
            return self._serializer.loads(payload)
        except Exception as exc:
            raise SerializationError(f"cannot deserialize an item of {self.name!r}: {exc!r}") from exc

    def _wait_new(self, last_id: bytes | str, seconds: float) -> None:
        """Wait up to ``seconds`` (at most SLICE) for an entry after ``last_id`` to be added."""
        ms = max(1, int(min(seconds, SLICE) * 1000))
        self._call(self._redis.xread, {self.name: last_id}, 1, ms)

    # ------------------------------------------------------------ puts

    def _put_payloads(self, payloads: list[bytes], block: bool, timeout: float | None) -> None:
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            self._check_open()
            self._check_shutdown(take=False)
            if self._script("put", self.maxsize, *payloads):
                return
            if not block:
                raise Full
            left = None if deadline is None else deadline - monotonic()
            if left is not None and left <= 0:
                raise Full
            sleep(PUT_SLICE if left is None else min(PUT_SLICE, left))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``queue.Queue.put``: add ``item`` at the tail.

        At ``maxsize`` (ready plus leased items), wait up to ``timeout``
        seconds (None: forever) for room if ``block``, then raise Full; raise
        Full at once if not ``block``. Stored on the server on return (durable
        as its persistence setting says: see the README).
        """
        if block:
            check_timeout(timeout)
        self._check_open()
        self._put_payloads([self._dumps(item)], block, timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def enqueue(self, item: Any) -> None:
        """Add ``item`` at the tail without blocking; Full at ``maxsize``, SerializationError (nothing added)."""
        self.put(item, block=False)

    def enqueue_many(self, items: Iterable[Any]) -> None:
        """Add every item, in order, all or nothing, in one script: Full (nothing added) if they do not all fit."""
        self._check_open()
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError("enqueue_many takes an iterable of items")
        payloads = [self._dumps(item) for item in items]
        if payloads:
            self._put_payloads(payloads, False, None)

    # ------------------------------------------------------------ takes

    def _take(self, mode: str, n: int, block: bool, timeout: float | None, ttl_ms: int = 0) -> list[Any]:
        """Run the take script until it yields (or not ``block``, or the deadline): its flat item list."""
        if block:
            check_timeout(timeout)
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            self._check_open()
            self._check_shutdown(take=True)
            out: list[Any] = self._script("take", self.consumer, mode, n, self._lease_ms, ttl_ms, self.max_deliveries)
            if len(out) > 2:
                return out
            if self._shutdown:
                raise ShutDown
            if not block:
                return []
            left = None if deadline is None else deadline - monotonic()
            if left is not None and left <= 0:
                return []
            self._wait_new(out[1], SLICE if left is None else left)

    def _get_many(self, n: int, block: bool, timeout: float | None) -> list[Any]:
        out = self._take("get", n, block, timeout)
        payloads = out[2:]
        items, bad = [], []
        for payload in payloads:
            try:
                items.append(self._loads(payload))
            except SerializationError as exc:
                bad.append((payload, exc))
        if bad:
            self._script("dead_raw", *[payload for payload, _ in bad])
            _log.error(
                "dque: %d item(s) of %s cannot be deserialized: moved to %s: %s",
                len(bad),
                self.name,
                self._keys[4],
                bad[0][1],
            )
            if not items:
                raise SerializationError(f"{bad[0][1]} (the item was moved to {self._keys[4]!r})") from bad[0][1]
        return items

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: remove and return the head item.

        With ``block``, wait up to ``timeout`` seconds (None: forever), then
        raise Empty; without, raise Empty at once. ClosedError if the handle is
        closed, before or while waiting. An item that cannot be deserialized is
        moved to the dead-letter queue (raw) and SerializationError raised.
        """
        items = self._get_many(1, block, timeout)
        if not items:
            raise Empty
        return items[0]

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def dequeue(self) -> Any:
        """Remove and return the head item without blocking; Empty if there is none."""
        return self.get(block=False)

    def dequeue_block(self, timeout: float | None = None) -> Any:
        """Remove and return the head item, waiting up to ``timeout`` seconds (None: forever); Empty on timeout."""
        return self.get(True, timeout)

    def dequeue_many(self, max_items: int) -> list[Any]:
        """Remove and return up to ``max_items`` items from the head, in one script (maybe ``[]``)."""
        check_int(max_items, "max_items", 0)
        self._check_open()
        if max_items == 0:
            return []
        return self._get_many(max_items, False, None)

    def peek(self) -> Any:
        """Return the head item without removing it; Empty if there is none."""
        return self.peek_block(timeout=0)

    def peek_block(self, timeout: float | None = None) -> Any:
        """Return the head item without removing it, waiting up to ``timeout`` seconds; Empty on timeout."""
        out = self._take("peek", 1, timeout != 0, timeout)
        if len(out) <= 2:
            raise Empty
        return self._loads(out[2])

    # ------------------------------------------------------------ leases

    def _lease(self, n: int, block: bool, timeout: float | None, ttl: float | None) -> list[Lease]:
        ttl_ms = 0
        if ttl is not None:
            ttl = check_seconds(ttl, "ttl")
            ttl_ms = max(1, int(ttl * 1000)) if ttl != float("inf") else 0
        out = self._take("lease", n, block, timeout, ttl_ms)
        if len(out) <= 2:
            return []
        now = int(out[0])
        deadline = now + ttl_ms if ttl_ms else 0
        leases, bad = [], []
        for i in range(2, len(out), 3):
            entry, count, payload = out[i].decode(), int(out[i + 1]), out[i + 2]
            lease_id = f"{entry}/{count}"
            with self._mutex:
                self._leases[lease_id] = (entry, count, deadline)
            try:
                leases.append(
                    Lease(cast(Any, self), cast(Any, lease_id), self._loads(payload), count)
                )  # (typed for int ids)
            except SerializationError as exc:
                bad.append((lease_id, exc))
        self._renewer.start()
        if bad:
            self.release_many([lease_id for lease_id, _ in bad])
            if not leases:
                raise bad[0][1]
        return leases

    def lease(self, block: bool = True, timeout: float | None = None, ttl: float | None = None) -> Lease:
        """Take the head item under a lease: invisible to other consumers until acked or released.

        Waits like ``get`` (Empty on timeout, or at once if not ``block``).
        The lease lasts until ``ack``/``release``, or ``ttl`` seconds if given,
        while this handle lives: it is renewed in the background; if the
        process dies it ends ``lease_ttl`` seconds after the last renewal and
        the item is handed out again, ahead of newer items. ``deliveries`` is
        the server's delivery count. An item that cannot be deserialized is
        released again and SerializationError raised.
        """
        leases = self._lease(1, block, timeout, ttl)
        if not leases:
            raise Empty
        return leases[0]

    def lease_many(self, max_items: int, ttl: float | None = None) -> list[Lease]:
        """Lease up to ``max_items`` ready items without blocking (maybe none), in one script."""
        check_int(max_items, "max_items", 0)
        self._check_open()
        if max_items == 0:
            return []
        return self._lease(max_items, False, None, ttl)

    def _settle(self, mode: str, lease_ids: list[Any]) -> None:
        self._check_open()
        for lease_id in lease_ids:
            if not isinstance(lease_id, str):
                raise TypeError(f"a RedisQueue lease id is a str, not {type(lease_id).__name__}")
        if not lease_ids:
            return
        with self._mutex:
            held = [self._leases.get(lease_id) for lease_id in lease_ids]
        unknown = [i for i, h in zip(lease_ids, held, strict=True) if h is None]
        if unknown or len(set(lease_ids)) != len(lease_ids):
            raise LeaseError(f"lease(s) {unknown or lease_ids!r} not outstanding (unknown, acked, released or expired)")
        args: list[Any] = []
        for entry, count, _ in held:  # type: ignore[misc]
            args += [entry, count]
        bad = self._script("settle", self.consumer, mode, self.max_deliveries, *args)
        with self._mutex:
            if bad:
                for number in bad:
                    self._leases.pop(lease_ids[int(number) - 1], None)
            else:
                for lease_id in lease_ids:
                    self._leases.pop(lease_id, None)
        if bad:
            gone = [lease_ids[int(number) - 1] for number in bad]
            raise LeaseError(f"lease(s) {gone!r} not outstanding (expired, or taken over after expiry)")

    def ack(self, lease_id: str) -> None:
        """Delete a leased item for good; counts as ``task_done``. LeaseError (nothing changed) if not outstanding."""
        self._settle("ack", [lease_id])

    def ack_many(self, lease_ids: Iterable[str]) -> None:
        """Ack several leases, all or nothing, in one script."""
        self._settle("ack", list(lease_ids))

    def release(self, lease_id: str) -> None:
        """Put a leased item back ahead of newer items, in its original order (entry id order).

        LeaseError if not outstanding. An item handed out ``max_deliveries``
        times goes to ``<name>.dead`` instead, in the same script.
        """
        self._settle("release", [lease_id])

    def release_many(self, lease_ids: Iterable[str]) -> None:
        """Release several leases, all or nothing; LeaseError (nothing changed) if one is not outstanding."""
        self._settle("release", list(lease_ids))

    def _held(self) -> list[tuple[str, tuple[str, int, int]]]:
        """This handle's leases (for the renewer)."""
        with self._mutex:
            return list(self._leases.items())

    def _renew(self, held: list[tuple[str, tuple[str, int, int]]]) -> None:
        """Extend this handle's leases by ``lease_ttl``; forget those it no longer holds."""
        args: list[Any] = []
        for _, (entry, count, deadline) in held:
            args += [entry, count, deadline]
        lost = self._script("renew", self.consumer, self._lease_ms, *args)
        if lost:
            with self._mutex:
                for number in lost:
                    self._leases.pop(held[int(number) - 1][0], None)

    # ------------------------------------------------------------ counts

    def _stats(self) -> tuple[int, int]:
        self._check_open()
        ready, leased = self._script("stats", self.max_deliveries)
        return int(ready), int(leased)

    def size(self) -> int:
        """The number of ready items (not leased), at the moment of the call; 0 after ``shutdown(immediate=True)``."""
        ready = self._stats()[0]
        return 0 if self._shutdown == _SHUT_NOW else ready

    qsize = size

    def __len__(self) -> int:
        return self.size()

    def empty(self) -> bool:
        """True if no item is ready."""
        return self.size() == 0

    def full(self) -> bool:
        """True if ready plus leased items reach ``maxsize`` (never, when unbounded)."""
        ready, leased = self._stats()
        return 0 < self.maxsize <= ready + leased

    def in_flight(self) -> int:
        """The number of items leased (by any handle) and not yet acked, released or expired."""
        return self._stats()[1]

    # ------------------------------------------------------------ tasks

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done (task_done, ack, dead-lettered): one counter in Redis.

        After ``shutdown(immediate=True)`` this handle counts the items it
        discarded (those ready then) as done, as ``queue.Queue`` does; the
        counter in Redis keeps them, for the other handles.
        """
        self._check_open()
        return max(0, int(self._call(self._redis.get, self._keys[3]) or 0) - self._discounted)

    def task_done(self) -> None:
        """Mark one item taken earlier as processed; ValueError if none is left unfinished (see unfinished_tasks)."""
        self._check_open()
        if self._script("task_done", self._discounted) < 0:
            raise ValueError("task_done() called too many times")

    def join(self) -> None:
        """Block until every item put (by any handle, anywhere) was taken and marked done.

        Polls the counter every 50 ms; ClosedError if this handle is closed
        while waiting; returns at once after ``shutdown(immediate=True)``.
        """
        while not self._join_for(3600.0):
            pass

    def _join_for(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for join(); True when all tasks are done."""
        deadline = monotonic() + timeout
        while True:
            if self._shutdown == _SHUT_NOW:
                return True
            if self.unfinished_tasks == 0:
                return True
            left = deadline - monotonic()
            if left <= 0:
                return False
            sleep(min(PUT_SLICE, left))

    def shutdown(self, immediate: bool = False) -> None:
        """``queue.Queue.shutdown`` for this handle: puts raise ShutDown; takes too once nothing is ready.

        With ``immediate``, takes raise at once, ``size()`` says 0 and ``join``
        returns. Nothing changes in Redis (the items stay, for other handles
        and later ones). Blocked callers see it within 0.1 s.
        """
        self._check_open()
        if immediate:
            if self._shutdown != _SHUT_NOW:
                self._discounted = self.size()  # (before the flag: size() says 0 after it)
            self._shutdown = _SHUT_NOW
        elif not self._shutdown:
            self._shutdown = _SHUT

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` was called on this handle."""
        return bool(self._shutdown)

    # ------------------------------------------------------------ life

    def close(self) -> None:
        """Release this handle's leases (their items are ready at once), stop the renewer, disconnect.

        Blocked callers in other threads raise ClosedError within 0.1 s.
        Idempotent; any other call afterwards raises ClosedError. If the
        server cannot be reached the leases are left to expire (``lease_ttl``).
        """
        if self._closed:
            return
        self._renewer.stop()
        held = [lease_id for lease_id, _ in self._held()]
        try:
            if held:
                try:
                    self._settle("release", held)
                except LeaseError:
                    pass  # some expired meanwhile; the rest stay leased until lease_ttl
            self._script("cleanup", self.consumer, IDLE_CONSUMER_MS)
        except (BackendError, ClosedError):
            pass
        finally:
            self._closed = True
            with self._mutex:
                self._leases.clear()
            deadline = monotonic() + CLOSE_WAIT
            while self._running and monotonic() < deadline:
                sleep(0.005)  # blocked callers leave within SLICE, with ClosedError
            self._runner.close(release=not self._own_client)
            if self._own_client:
                self._redis.close()

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def __enter__(self) -> RedisQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled (e.g. to a ``multiprocessing`` child), a handle opens a new one on the same queue and url.

        The new handle has its own consumer (its own leases) and this one's
        settings; a handle made with ``client=`` is re-made from its ``url``.
        """
        from ._serializers import BUILTIN

        serializer = (
            self._serializer_name if BUILTIN.get(self._serializer_name) is self._serializer else self._serializer
        )
        return (
            _reopen,
            (self.name, self.url, serializer, self.maxsize, self.max_deliveries, self.lease_ttl, self._socket_timeout),
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisQueue {self.name!r} at {self.url} ({state})>"


def _consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


_handles: weakref.WeakSet[RedisQueue] = weakref.WeakSet()  # the open handles of this process


def _after_fork_in_child() -> None:
    for handle in list(_handles):
        if not handle.closed:
            handle._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reopen(
    name: str, url: str, serializer: Any, maxsize: int, max_deliveries: int, lease_ttl: float, socket_timeout: float
) -> RedisQueue:
    return RedisQueue(name, url, serializer, maxsize, max_deliveries, lease_ttl, socket_timeout=socket_timeout)
