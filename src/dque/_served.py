"""What the owner process serves: its open DQue, the calls clients may make on it, its start and end.

``OWNER`` is the one :class:`Owner` of the process (the manager's ``queue``
type is ``served()``); :func:`owner_init` opens the queue before the loop
(``_owner.py``) serves it and starts the one other thread, which closes the
queue and exits when the creating process dies.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import shutil
import threading
from typing import Any, cast

from ._args import check_int
from ._queue import DQue
from ._serializers import Serializer
from .errors import OwnerGoneError


class Owner:
    """What the owner serves: the open DQue, spoken to in payload bytes (the non-blocking calls)."""

    def __init__(self) -> None:
        self.queue: DQue | None = None
        self.error: BaseException | None = None
        self.serializer: Serializer | str | None = None
        self.sockdir: str | None = None  # the private directory of the owner's socket file, if it has one

    def q(self) -> DQue:
        if self.queue is None:
            raise OwnerGoneError("the owner has no open queue")
        return self.queue

    def check(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        q = self.q()
        return {"serializer": self.serializer, "name": q.name, "path": q.path, "segment_size": q.segment_size}

    def get_maxsize(self) -> int:
        return self.q().maxsize

    def set_maxsize(self, value: int) -> None:
        self.q().maxsize = check_int(value, "maxsize", 0)

    def get_turbo(self) -> bool:
        return self.q().turbo

    def get_attr(self, name: str) -> Any:
        if name not in _ATTRIBUTES:
            raise AttributeError(name)
        return getattr(self.q(), name)

    def call(self, name: str, *args: Any) -> Any:
        if name not in _PLAIN_CALLS:
            raise AttributeError(name)
        return getattr(self.q(), name)(*args)

    def close(self) -> None:
        if self.queue is not None:
            self.queue.close()


_PLAIN_CALLS = frozenset(
    {
        "size", "full", "empty", "segment_numbers", "turbo_on", "turbo_off", "turbo_sync", "task_done",
        "ack_many", "release_many", "in_flight", "shutdown",
    }
)  # fmt: skip
_ATTRIBUTES = frozenset({"is_shutdown", "unfinished_tasks"})  # read through get_attr
EXPOSED = ("hello", "check", "put", "take", "peek", "lease", "join") + (
    "get_maxsize", "set_maxsize", "get_turbo", "get_attr", "call", "close",
)  # fmt: skip
OWNER = Owner()


def served() -> Owner:
    """The manager's callable for the ``queue`` type: the one Owner."""
    return OWNER


def undeliverable(method: str, args: tuple[Any, ...], msg: tuple[str, Any]) -> None:
    """A reply carrying items could not be sent (its client hung up or gave up): the items must not vanish.

    Leases are released (back at the head, in order). Items of a blocking take
    (a waiting client gives up at its deadline) are put back, at the tail: the
    engine has no way back to the head. (A plain non-blocking dequeue stays
    at-most-once, as documented.)
    """
    q = OWNER.queue
    if q is None or msg[0] != "#RETURN" or not msg[1]:
        return
    try:
        if method == "lease":
            q.release_many([lease_id for lease_id, _, _ in msg[1]])
        elif method == "take" and args[1]:
            q.put_payloads(msg[1])
            for _ in msg[1]:
                q.task_done()  # the take counted none: the put back must not count twice
    except Exception:
        pass  # the queue closed meanwhile (or is full again): nothing more to do


# ------------------------------------------------------------------ the owner process's start and end


def owner_init(name: str, dirpath: str, options: dict[str, Any], sockdir: str | None = None) -> None:
    """Runs in the owner process before it serves: open the queue, watch the parent."""
    OWNER.sockdir = sockdir
    try:
        OWNER.queue = DQue.new_or_open(name, dirpath, **options)
        given = options.get("serializer")
        OWNER.serializer = given if given is not None and not isinstance(given, str) else OWNER.queue.serializer_name
    except BaseException as exc:  # reported to the creator by check()
        OWNER.error = exc
    threading.Thread(target=_exit_with_parent, name="dque-owner-watchdog", daemon=True).start()


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        # The sentinel pipe reaches EOF only once every copy of the creator's end is closed, and
        # every process the creator forks later holds one: watch the creator's pid as well.
        waitables: list[Any] = [parent.sentinel]
        try:
            waitables.append(os.pidfd_open(cast(int, parent.pid)))
        except ProcessLookupError:
            waitables = []  # the creator is already gone
        except (AttributeError, OSError):
            pass  # no pidfd_open (not Linux >= 5.3): the sentinel alone
        if waitables:
            multiprocessing.connection.wait(waitables)
    try:
        OWNER.close()  # sync and release the lock
    finally:
        if OWNER.sockdir is not None:
            shutil.rmtree(OWNER.sockdir, ignore_errors=True)
        os._exit(0)
