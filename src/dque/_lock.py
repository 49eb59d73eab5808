"""The directory lock: one open handle per queue, across processes and within one.

``filelock`` takes an exclusive ``flock`` on ``dque.lock`` in the queue's
directory. The OS drops it when the holder dies, whatever the way, and
filelock (>= 3.30) closes it in forked children so that a child cannot keep
a dead owner's queue locked. Two of its defaults are wrong for us and are
turned off: ``thread_local`` (a manager server releases from another thread)
and ``fallback_to_soft`` (a marker file the OS never releases). Each handle
has its own lock object, hence its own open file description, so a second
open in the same process is refused like one from another process.

The lock file is created with the queue's permissions (0600, or 0660 with
group access; see ``_fs``), exactly, whatever the umask.
"""

from __future__ import annotations

import json
import os

import filelock

from . import _fs
from .errors import LockedError

LOCK_NAME = "dque.lock"


class DirLock:
    """The lock of the queue directory ``qdir``.

    ``mode``: the permissions of the lock file if it has to be created;
    None: those that go with the directory (``_fs.mode_of_dir``).
    """

    def __init__(self, qdir: str, mode: int | None = None) -> None:
        self.path = os.path.join(qdir, LOCK_NAME)
        if mode is None:
            try:
                mode = _fs.mode_of_dir(qdir)
            except OSError:
                mode = _fs.FILE_MODE  # (acquire reports the missing directory)
        self._lock = filelock.FileLock(
            self.path,
            mode=mode,
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
            raise LockedError(locked_message(os.path.dirname(self.path), self.path)) from None

    def release(self) -> None:
        self._lock.release(force=True)


OWNER_NAME = "dque.owner"  # written by a ProcessSafeDQue owner while it runs (see _process.py)


def _owner_pid(qdir: str) -> int | None:
    """The pid in the queue's owner file, if one is there and that process lives."""
    try:
        with open(os.path.join(qdir, OWNER_NAME), "rb") as f:
            pid = json.loads(f.read(1 << 16)).get("pid")
        if isinstance(pid, int) and pid > 0:
            os.kill(pid, 0)
            return pid
    except (OSError, ValueError, AttributeError):
        pass
    return None


def locked_message(qdir: str, lock_path: str) -> str:
    """What a LockedError says: who may hold the queue, and how to share it instead."""
    dirpath, name = os.path.split(qdir)
    pid = _owner_pid(qdir)
    if pid is not None:
        return (
            f"queue {qdir} is held by the ProcessSafeDQue owner process {pid}: attach to it with "
            f"dque.attach({name!r}, {dirpath!r}) or ProcessSafeDQue(..., if_locked='attach')"
        )
    return (
        f"queue {qdir} is open elsewhere: another handle or another process holds its lock {lock_path}. "
        "A queue has one open handle at a time. To share it: if the holder is a ProcessSafeDQue owner, "
        f"use dque.attach({name!r}, {dirpath!r}) or ProcessSafeDQue(..., if_locked='attach'); "
        "otherwise close the other handle first (or open the queue as a ProcessSafeDQue in the first place)"
    )
