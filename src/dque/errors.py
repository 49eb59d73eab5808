"""The exceptions dque raises: one small hierarchy under :class:`DQueError`.

Every exception here survives a pickle round trip (its ``args`` are its
constructor's arguments), because ``ProcessSafeDQue`` ships them from the
owner process back to the caller.
"""

from __future__ import annotations

import queue

__all__ = [
    "DQueError",
    "Empty",
    "Full",
    "LockedError",
    "CorruptedError",
    "ClosedError",
    "SerializationError",
    "ConfigError",
    "OwnerGoneError",
    "LeaseError",
    "SyncError",
    "ShutDown",
    "ForkedError",
]


class DQueError(Exception):
    """Base class of every error dque raises on purpose."""


class Empty(DQueError, queue.Empty):
    """Raised by a non-blocking (or timed-out) take from an empty queue."""


class Full(DQueError, queue.Full):
    """Raised by a non-blocking (or timed-out) put to a queue at its ``maxsize``."""


class LockedError(DQueError):
    """The queue is open elsewhere: in another process or another handle of this one."""


class ClosedError(DQueError):
    """The queue handle was closed; also raised in callers blocked when it closed."""


class ForkedError(ClosedError):
    """A ``DQue`` handle opened before a fork was used in the forked child.

    The child's copy of a handle is a copy of the parent's state: using it
    would hand the same items to both processes. In the child, open the queue
    after the parent has closed it, or share one queue among processes with
    ``dque.ProcessSafeDQue`` (which works across fork, spawn and forkserver).
    """


class SerializationError(DQueError):
    """An item could not be serialized (on put) or deserialized (on take).

    The queue is unchanged: nothing was written, nothing was removed.
    """


class ConfigError(DQueError, ValueError):
    """The queue on disk does not match what the caller asked for.

    Raised when opening with another serializer than the queue was created
    with, or when the queue's config file is missing, unreadable or of an
    unknown format version.
    """


class CorruptedError(DQueError):
    """A segment file holds damage that is not a torn last write.

    ``path`` names the file and ``offset`` the byte where the damage starts.
    The damaged segment has been moved aside (renamed to ``*.corrupt``) and
    the rest of the queue stays readable.
    """

    def __init__(self, path: str, offset: int, reason: str = "") -> None:
        super().__init__(path, offset, reason)
        self.path = path
        self.offset = offset
        self.reason = reason

    def __str__(self) -> str:
        text = f"corrupted segment {self.path} at byte {self.offset}"
        return f"{text}: {self.reason}" if self.reason else text


class OwnerGoneError(DQueError, ConnectionError):
    """The owner process of a ``ProcessSafeDQue`` is not there (killed, stopped, never started)."""


class LeaseError(DQueError, KeyError):
    """The lease is not outstanding: unknown, already acked, released, or expired.

    Nothing was changed.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "lease not outstanding"


class SyncError(DQueError):
    """A sync of the queue's files to stable storage failed: the handle is poisoned.

    After a failed ``fsync`` the kernel may have dropped the data, and a retry
    can report success for data that is gone, so dque never retries: every
    later call on the handle (in every process, for a ``ProcessSafeDQue``)
    raises this error, naming the first failure, until the queue is closed
    and opened again. The reopen reads what really reached the disk: changes
    made by calls that returned before the failure are there; those of the
    call that raised and of any call after it may be there or not.
    ``errno`` and ``strerror`` are those of the failed sync.
    """

    def __init__(self, path: str, errno: int | OSError | None = None, strerror: str | None = None) -> None:
        if isinstance(errno, OSError):  # SyncError(path, the OSError)
            failed = errno
            errno, strerror = failed.errno, failed.strerror or str(failed)
        super().__init__(path, errno, strerror)
        self.path = path
        self.errno: int | None = errno
        self.strerror = strerror

    def __str__(self) -> str:
        return (
            f"a sync of queue {self.path} to stable storage failed ({self.strerror}, errno {self.errno}); "
            "changes may not be on disk and this handle is unusable: close it and open the queue again"
        )


# queue.ShutDown exists from Python 3.13: where it does, dque's is one too.
_QUEUE_SHUTDOWN: tuple[type[Exception], ...] = (queue.ShutDown,) if hasattr(queue, "ShutDown") else ()


class ShutDown(DQueError, *_QUEUE_SHUTDOWN):  # type: ignore[misc]
    """The queue was shut down (``shutdown()``): puts raise it, and takes once nothing is left.

    A ``queue.ShutDown`` on Python 3.13 and later.
    """
