"""Group commit: many writers, one sync at a time covering all of them, and what a failed sync means.

Writers number their writes (the queue's ``_write_seq``, under the queue's
mutex) and then call :meth:`GroupCommit.wait` with that number, outside the
mutex. One thread at a time (the one that set ``_syncing``) calls ``flush``,
which syncs everything written so far and returns the last write number it
covered; threads arriving while it runs share the next one, and every thread
a finished sync covers is woken at once. The next syncer first waits a moment
(no longer than the last sync took) for the threads that sync released to
write again, so that one sync covers them all; a thread writing alone never
waits there.

A failed sync is final: after an ``fsync``/``fdatasync`` error the kernel may
have dropped the dirty pages and a retry can report success for data that is
gone (PostgreSQL's "fsyncgate"). So the first failure is kept, every later
wait raises it as :class:`~dque.SyncError`, and ``on_failure`` tells the queue,
which refuses every later call until it is reopened (a reopen reads what is
really on disk). Nothing is ever synced again through a failed handle.

Lock order: ``_state``'s lock is never held while the queue's mutex is taken
(``flush`` takes the mutex itself, without holding ``_state``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Protocol

from .errors import SyncError

_GATHER_S = 0.0002  # at most this long a syncer waits for the writers of the last sync to join


class Writer(Protocol):
    """What group commit needs of the queue whose writes it syncs."""

    def _newest_write(self) -> int:
        """The number of the last write made (read without the queue's mutex: a hint)."""

    def _flush(self) -> int | None:
        """Sync every write made so far; the last write number covered (None: closed). OSError if a sync fails."""

    def _sync_failed(self, error: SyncError) -> None:
        """A sync failed (called without any lock held): refuse every later call."""


class GroupCommit:
    """Shares syncs among the threads of one queue handle (see the module docstring).

    It keeps no reference to the queue (the queue is passed to each call), so
    a queue handle dropped without ``close`` is freed at once, not by the
    cycle collector at some later moment.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        lock = threading.Lock()
        # Guards everything below. Invariants while it is not held: at most one thread syncs
        # (``_syncing``); ``synced`` only grows; ``failed`` once set stays set.
        self._state = threading.Condition(lock)  # notified (all) when a sync ends
        self._joined = threading.Condition(lock)  # notified when a writer starts waiting (a syncer gathers)
        self._syncing = False
        self._waiting: list[int] = []  # the write number each waiting thread needs synced
        self._expected = 0  # threads the last sync released: writers likely to write again soon
        self._took = 0.0  # seconds the last sync took
        self.synced = 0  # the last write number on stable storage
        self.failed: SyncError | None = None

    def wait(self, writer: Writer, upto: int | None) -> None:
        """Return once ``writer``'s write ``upto`` (every write so far, if None) is on stable storage.

        Raises SyncError if this or any earlier sync of the handle failed.
        """
        with self._state:
            while upto is None or self.synced < upto:
                if self.failed is not None:
                    raise self.failed
                if not self._syncing:
                    self._syncing = True  # this thread syncs, for itself and the others
                    break
                mark = writer._newest_write() if upto is None else upto
                self._waiting.append(mark)
                self._joined.notify()
                try:
                    self._state.wait()
                finally:
                    self._waiting.remove(mark)
            else:
                return  # another thread's sync covered this write
        target = None
        started = monotonic()
        error: SyncError | None = None
        try:
            with self._state:
                self._gather_locked()
            target = writer._flush()
        except OSError as exc:
            error = SyncError(self._path, exc)
        finally:
            with self._state:
                self._took = monotonic() - started
                self._syncing = False
                if error is not None and self.failed is None:
                    self.failed = error
                if target is not None and target > self.synced:
                    self.synced = target
                    # Released now: this thread and the waiters covered. They will likely write again.
                    self._expected = 1 + sum(1 for w in self._waiting if w <= target)
                self._state.notify_all()
        if error is not None:
            writer._sync_failed(error)
            raise error from error.__cause__

    def _gather_locked(self) -> None:
        """(Holding ``_state``, about to sync.) Wait a moment for the writers the last sync released."""
        others = self._expected - 1
        if others <= 0:
            return
        deadline = monotonic() + min(self._took, _GATHER_S)  # the disk idles no longer than it worked
        while sum(1 for w in self._waiting if w > self.synced) < others:
            left = deadline - monotonic()
            if left <= 0:
                break
            self._joined.wait(left)

    def fail(self, exc: OSError) -> SyncError:
        """Record a sync that failed outside :meth:`wait` (the caller poisons the queue); returns the error kept."""
        with self._state:
            if self.failed is None:
                self.failed = SyncError(self._path, exc)
            self._state.notify_all()
            return self.failed

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait for a sync under way to finish and keep others from starting while the block runs."""
        with self._state:
            while self._syncing:
                self._state.wait()
            self._syncing = True
        try:
            yield
        finally:
            with self._state:
                self._syncing = False
                self._state.notify_all()
