"""The backends the contract suite runs against, and how to plug in a new one.

The contract suite (``tests/contract/test_*.py``) states, once, the behaviour
every dque backend promises (the public protocol is :class:`dque.Queue`).
Each test takes the ``backend`` fixture (``conftest.py``), parametrized over
every backend available here:

============== ==============================================================
``file-safe``   ``dque.DQue`` in safe mode (segment size 3: segments roll)
``file-turbo``  ``dque.DQue`` in turbo mode
``procs-fork``  ``dque.ProcessSafeDQue`` with an owner started by ``fork``
``procs-spawn`` ``dque.ProcessSafeDQue`` with an owner started by ``spawn``
``redis``       ``dque.RedisQueue``, only if ``tests/contract/backend_redis.py``
                exists (see below)
============== ==============================================================

A backend is an object with this shape (:class:`Backend`):

``name``
    its test id, e.g. ``"file-safe"``.
``caps``
    its :class:`Capabilities`: where it differs from the others *by design*.
    A test that meets such a difference branches on the flag and asserts the
    backend's own behaviour; nothing is ever skipped silently.
``make(**options) -> dque.Queue``
    a new, empty queue (one per backend instance; the tests call it once).
    Options: ``maxsize``, ``max_deliveries``, ``serializer`` (a name:
    ``"pickle"``, ``"json"``, ``"bytes"``), and ``lease_ttl`` (seconds), which
    the suite passes only to a backend whose ``caps.per_lease_ttl`` is false.
    A backend raises TypeError for an option it does not know.
``reopen() -> dque.Queue``
    the same queue opened again (with the same options). It closes the
    current handle first if the test has not (``close()`` is idempotent).
``dead_letters() -> list``
    the items in the queue's dead-letter queue, in order, taking them out
    (``[]`` if it has none). Called while the queue is open.
``close_all()``
    teardown: close every handle made, stop every process started, remove
    temporary state. The fixture calls it after every test, pass or fail,
    then fails the test if a process started during it is still there
    (running or unreaped), other than those in ``helper_pids``.
``helper_pids`` (optional attribute, default empty)
    pids of long-lived helpers the backend started on purpose (a
    redis-server shared by a session, say): not strays.

Plugging in Redis: write ``tests/contract/backend_redis.py`` with a
function ``make_backend(tmp_path) -> Backend``. The registry imports it
lazily: if the module is absent there is no ``redis`` parameter at all; if
it is present, ``make_backend`` may raise ``pytest.skip("one-line reason")``
when redis-server or redis-py is missing. Give ``make`` a short default
``lease_ttl`` (the suite waits up to ``caps.death_release_within`` seconds
for a dead holder's leases) and a fresh stream name per backend instance.

A queue of a backend with ``caps.shared_between_processes`` must pickle to a
handle that works in a ``spawn`` child (``test_processes.py`` passes it to one
that leases and is SIGKILLed, and to one that puts). For the static check, add
a function to ``typing_check.py`` that assigns the new queue to a
``dque.Queue`` variable (e.g. ``q: dque.Queue = dque.RedisQueue("q")``);
``test_protocol.py`` picks it up by itself.

Known bugs of a backend are listed in ``conftest.KNOWN_BUGS``: each such test
is ``xfail(strict=True)`` for that backend with the bug as the reason, so the
run says so, and fixing the bug makes the test pass (and the xfail fail).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dque

if TYPE_CHECKING:
    from dque import Queue

NAME = "q"


@dataclass(frozen=True)
class Capabilities:
    """Where a backend differs from the others by design: each difference, once.

    death_releases_at_once
        The leases of a consumer process that dies (SIGKILL, exit) come back
        at once (file engine: its owner sees the connection drop), rather
        than after the lease ttl (Redis: the holder stops renewing them).
    death_release_within
        Seconds within which a dead holder's leases (or the leases left
        outstanding by ``close()``) are ready again; 0 when at once.
    released_items_in_original_order
        Several released items come back in the order they were first
        enqueued (file engine), rather than in the order they were released
        (Redis). Either way, released items come back ahead of newer ones.
    per_lease_ttl
        ``lease(ttl=s)``/``lease_many(n, ttl=s)`` releases that lease if it is
        not acked within ``s`` seconds, even while its holder lives (file
        engine). When false the backend has one ``lease_ttl`` per queue
        (``make(lease_ttl=s)``) and a live holder renews its leases, so a slow
        consumer keeps them (Redis).
    shared_between_processes
        Other processes can use the queue while this handle has it open
        (``ProcessSafeDQue``, Redis); a plain ``DQue`` is one process's.
    close_leaves_leases
        ``close()`` with leases outstanding does not return them at once: they
        come back within ``death_release_within`` (Redis). When false they are
        ready again as soon as the queue is reopened (file engine).
    """

    death_releases_at_once: bool
    death_release_within: float
    released_items_in_original_order: bool
    per_lease_ttl: bool
    shared_between_processes: bool
    close_leaves_leases: bool


class Backend(Protocol):
    """A way to make queues of one kind for the contract suite (see the module docstring)."""

    name: str
    caps: Capabilities

    def make(self, **options: Any) -> Queue: ...

    def reopen(self) -> Queue: ...

    def dead_letters(self) -> list[Any]: ...

    def close_all(self) -> None: ...


FILE_CAPS = Capabilities(
    death_releases_at_once=True,
    death_release_within=0.0,
    released_items_in_original_order=True,
    per_lease_ttl=True,
    shared_between_processes=False,
    close_leaves_leases=False,
)

PROCS_CAPS = Capabilities(
    death_releases_at_once=True,
    death_release_within=0.0,
    released_items_in_original_order=True,
    per_lease_ttl=True,
    shared_between_processes=True,
    close_leaves_leases=False,
)

SEGMENT_SIZE = 3  # small, so that a few items span segments


def close_handles(handles: list[Any]) -> list[Exception]:
    """Close every handle, the last made first, and empty the list: the errors raised (for ``close_all``)."""
    errors = []
    for handle in reversed(handles):
        try:
            handle.close()
        except Exception as exc:  # close them all; report the first failure
            errors.append(exc)
    handles.clear()
    return errors


class _Base:
    name: str
    caps: Capabilities

    def __init__(self, tmp_path: Path) -> None:
        self.dirpath = str(tmp_path)
        self.handles: list[Any] = []
        self.options: dict[str, Any] = {}
        self.current: Any = None

    def make(self, **options: Any) -> Any:
        unknown = set(options) - {"maxsize", "max_deliveries", "serializer"}
        if unknown:
            raise TypeError(f"{self.name} backend takes no option(s) {sorted(unknown)}")
        if self.current is not None:
            raise RuntimeError("make() once per backend instance; use reopen()")
        self.options = options
        self.current = self._create(**options)
        self.handles.append(self.current)
        return self.current

    def reopen(self) -> Any:
        if self.current is not None:
            self.current.close()
        self.current = self._open()
        self.handles.append(self.current)
        return self.current

    def dead_letters(self) -> list[Any]:
        if not os.path.isdir(os.path.join(self.dirpath, NAME + ".dead")):
            return []
        with dque.open(NAME + ".dead", self.dirpath, serializer=self.options.get("serializer")) as dead:
            return dead.dequeue_many(dead.size() + 1)

    def close_all(self) -> None:
        errors = close_handles(self.handles)
        shutil.rmtree(self.dirpath, ignore_errors=True)
        if errors:
            raise errors[0]

    def _create(self, **options: Any) -> Any:
        raise NotImplementedError

    def _open(self) -> Any:
        raise NotImplementedError


class FileBackend(_Base):
    """``dque.DQue`` (``dque.new`` then ``dque.open``), in safe or turbo mode."""

    caps = FILE_CAPS

    def __init__(self, tmp_path: Path, turbo: bool) -> None:
        super().__init__(tmp_path)
        self.turbo = turbo
        self.name = "file-turbo" if turbo else "file-safe"

    def _create(self, **options: Any) -> Any:
        return dque.new(NAME, self.dirpath, segment_size=SEGMENT_SIZE, turbo=self.turbo, **options)

    def _open(self) -> Any:
        return dque.open(NAME, self.dirpath, turbo=self.turbo, serializer=self.options.get("serializer"))


class ProcsBackend(_Base):
    """``dque.ProcessSafeDQue``: an owner process started with ``context`` serves the queue."""

    caps = PROCS_CAPS

    def __init__(self, tmp_path: Path, context: str) -> None:
        super().__init__(tmp_path)
        self.context = context
        self.name = f"procs-{context}"

    def _create(self, **options: Any) -> Any:
        return dque.ProcessSafeDQue(NAME, self.dirpath, segment_size=SEGMENT_SIZE, context=self.context, **options)

    def _open(self) -> Any:
        return dque.ProcessSafeDQue(NAME, self.dirpath, context=self.context, serializer=self.options.get("serializer"))


BUILTIN = {
    "file-safe": lambda tmp_path: FileBackend(tmp_path, turbo=False),
    "file-turbo": lambda tmp_path: FileBackend(tmp_path, turbo=True),
    "procs-fork": lambda tmp_path: ProcsBackend(tmp_path, "fork"),
    "procs-spawn": lambda tmp_path: ProcsBackend(tmp_path, "spawn"),
}

REDIS_MODULE = Path(__file__).with_name("backend_redis.py")


def names() -> list[str]:
    """The backend ids to run: the built-in ones, and ``redis`` if its module exists."""
    return [*BUILTIN, *(["redis"] if REDIS_MODULE.exists() else [])]


def make_backend(name: str, tmp_path: Path) -> Backend:
    """A new backend ``name`` working in ``tmp_path`` (``redis``: may raise pytest.skip)."""
    if name == "redis":
        from . import backend_redis  # lazily: only when the module is there and a test asks for it

        return backend_redis.make_backend(tmp_path)
    return BUILTIN[name](tmp_path)
