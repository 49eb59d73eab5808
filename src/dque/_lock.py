"""The directory lock: one open handle per queue, across processes and within one.

``filelock`` takes an exclusive ``flock`` on ``dque.lock`` in the queue's
directory. The OS drops it when the holder dies, whatever the way, and
filelock (>= 3.30) closes it in forked children so that a child cannot keep
a dead owner's queue locked. Two of its defaults are wrong for us and are
turned off: ``thread_local`` (a manager server releases from another thread)
and ``fallback_to_soft`` (a marker file the OS never releases). Each handle
has its own lock object, hence its own open file description, so a second
open in the same process is refused like one from another process.
"""

from __future__ import annotations

import os

import filelock

from .errors import LockedError

LOCK_NAME = "dque.lock"


class DirLock:
    def __init__(self, qdir: str) -> None:
        self.path = os.path.join(qdir, LOCK_NAME)
        self._lock = filelock.FileLock(
            self.path,
            thread_local=False,
            blocking=False,
            fallback_to_soft=False,
            is_singleton=False,
            preserve_lock_file=True,
        )

    def acquire(self) -> None:
        """Take the lock now or raise :class:`LockedError`."""
        try:
            self._lock.acquire(blocking=False)
        except filelock.Timeout:
            raise LockedError(f"queue {os.path.dirname(self.path)} is open elsewhere (lock {self.path} is held)") from None

    def release(self) -> None:
        self._lock.release(force=True)
