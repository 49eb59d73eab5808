"""``DQue``: the durable FIFO queue engine.

Concurrency follows CPython's ``queue.Queue``: one mutex guards all state and
every file write; a Condition per waited-on predicate shares it. Public
methods take the mutex; ``*_locked`` helpers assume it is held. Syncs are
shared among threads by group commit (``_commit.py``).

One rule for every change (the error paths): everything that can fail is
done first, while nothing the caller can see has changed: serializing,
reserving room in each segment a record goes to, creating or opening the
next segment file, opening the dead-letter queue. Then the change is made
visible by stores into memory maps, which cannot fail. After that point
nothing can fail but the sync; work that may fail and is not needed for the
change (deleting a used segment file, moving the head on to the next
segment) is retried later and never turns a call that changed the queue
into one that raises. A failed sync poisons the handle (``SyncError`` on
every later call until a reopen). So a call that raises has changed nothing
its caller can see, and a batch is all or nothing.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import weakref
from collections.abc import Iterable
from time import monotonic
from typing import Any

from . import _config, _fs, _opening
from ._args import check_int, check_seconds, check_timeout
from ._commit import GroupCommit
from ._format import (
    ACK,
    MAX_PAYLOAD,
    encode_index_record,
    encode_item,
    item_record,
)
from ._lease import Lease
from ._lease_table import LeaseState, LeaseTable
from ._lock import DirLock
from ._opening import DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_SIZE
from ._segment import Segment
from ._serializers import PickleSerializer, Serializer
from ._store import CLEAN_NAME, Decode, FailedSync, SegmentStore, finish_background_files
from .errors import (
    ClosedError,
    Empty,
    ForkedError,
    Full,
    SerializationError,
    ShutDown,
    SyncError,
)

__all__ = ["CLEAN_NAME", "DEAD_LETTER_SUFFIX", "DEFAULT_SEGMENT_BYTES", "DEFAULT_SEGMENT_SIZE", "DQue"]

_log = logging.getLogger("dque")

_pickle_dumps = pickle.dumps
_PROTOCOL = pickle.HIGHEST_PROTOCOL
DEFAULT_MAX_DELAY = 1.0
_SHUT, _SHUT_NOW = 1, 2  # DQue._shutdown: shut down (takes drain what is left), immediately (takes raise)
DEAD_LETTER_SUFFIX = ".dead"


class DQue:
    """A durable FIFO queue of picklable items, kept in segment files in one directory.

    Create one with :func:`dque.new`, :func:`dque.open` or :func:`dque.new_or_open`.
    Only one handle may have a queue open at a time (any process, this one
    included): the others get :class:`~dque.LockedError`. Every method is safe
    to call from many threads at once.

    Durability, per mode:

    * safe (the default): when a call that changes the queue returns, the
      change is on stable storage.
    * turbo: when a call returns, its bytes are in the operating system, so
      killing the process loses nothing; a power cut or OS crash may lose
      changes made in the last ``max_delay`` seconds (see :meth:`turbo_on`).
    """

    # Why one class of ~1,100 lines: it is the queue's public face, ~60 public methods and
    # properties (queue.Queue's API, dque's own, the lease API, the payload API), each a
    # contract docstring over a few lines that take the one mutex, wait on its Conditions
    # and call the components. The mutex and its Conditions are shared by every method (as
    # in queue.Queue): split across classes, that one invariant would have no single home.
    # What has state of its own is a component: the items and their files (SegmentStore,
    # _store.py), the leases (LeaseTable, _lease_table.py), group commit (GroupCommit,
    # _commit.py), opening a directory (_opening.py). About a fifth of it is docstrings.

    # ----------------------------------------------------------------- opening

    @classmethod
    def new(
        cls,
        name: str,
        dirpath: str | os.PathLike[str],
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        turbo: bool = False,
        serializer: str | Serializer | None = None,
        maxsize: int = 0,
        max_deliveries: int = 0,
        group_access: bool = False,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> DQue:
        """Create the queue ``dirpath/name`` (parents too) and open it.

        A segment file holds at most ``segment_size`` items, and rolls over
        once its records take ``segment_bytes`` bytes (0: no byte bound): what
        a process keeps in memory of a queue is bounded by that, whatever the
        size of the items, plus the small items (under 4 KiB) of the segments
        this handle wrote, up to 8 MiB (at most ``segment_bytes``), kept so
        that it does not read them back.

        ``max_deliveries`` (0: no limit) moves an item handed out that many
        times under a lease without an ack to the dead-letter queue
        ``dirpath/name.dead`` instead of handing it out again.

        The queue is private: its directory is 0700 and its files 0600,
        whatever the umask (missing parents get the usual permissions; an
        existing empty directory is made 0700 too, if this user may change it).
        ``group_access=True`` makes them 0770/0660, for processes of other
        users in the directory's group; it is stored with the queue.

        Raises FileExistsError if a queue is already there, NotADirectoryError
        if the path is a file, LockedError if another handle holds it.
        """
        return _opening.create(
            cls, name, dirpath, segment_size, turbo, serializer, maxsize, max_deliveries, group_access, segment_bytes
        )

    @classmethod
    def open(
        cls,
        name: str,
        dirpath: str | os.PathLike[str],
        turbo: bool = False,
        serializer: str | Serializer | None = None,
    ) -> DQue:
        """Open the existing queue ``dirpath/name``; its segment size and bound come from its config.

        Raises FileNotFoundError if there is no queue there, ConfigError if
        ``serializer`` is not the one the queue was created with, LockedError
        if another handle holds it.
        """
        return _opening.open_existing(cls, name, dirpath, turbo, serializer)

    @classmethod
    def new_or_open(
        cls,
        name: str,
        dirpath: str | os.PathLike[str],
        segment_size: int | None = None,
        turbo: bool = False,
        serializer: str | Serializer | None = None,
        maxsize: int | None = None,
        max_deliveries: int | None = None,
        group_access: bool = False,
        segment_bytes: int | None = None,
    ) -> DQue:
        """Open the queue if it exists, else create it.

        ``group_access`` applies when creating (see :meth:`new`); an existing
        queue keeps the permissions it was created with.

        ``segment_size`` (default 1000), ``maxsize`` and ``max_deliveries``
        (default 0) apply when creating; an existing queue keeps its own, and
        passing different ones warns (``UserWarning``) and is otherwise ignored.
        """
        return _opening.create_or_open(
            cls, name, dirpath, segment_size, turbo, serializer, maxsize, max_deliveries, group_access, segment_bytes
        )

    def __init__(self, qdir: str, config: _config.Config, serializer: Serializer, lock: DirLock, turbo: bool) -> None:
        # Not for users: call dque.new / dque.open / dque.new_or_open.
        self.path = qdir
        self.dirpath, self.name = os.path.split(qdir)
        self.segment_size = config.segment_size
        self.serializer_name = config.serializer
        self.maxsize = config.maxsize
        self.max_deliveries = config.max_deliveries
        self.group_access = config.group_access
        self.segment_bytes = config.segment_bytes
        self._serializer = serializer
        self._dumps = None if isinstance(serializer, PickleSerializer) else serializer.dumps
        self._loads = serializer.loads
        self._lock = lock
        self._pid = os.getpid()  # a forked child's copy of the handle must leave the queue alone
        self._forked = False  # this is a forked child's copy: every call raises ForkedError

        # One mutex guards everything below, the store and the lease table, and every write to the
        # files. Invariants while it is not held: the store's (_store.py), and
        #   _unfinished_tasks == items put (or found at open) and not yet marked done, taken or not;
        #   the _waiting_* counters == threads waiting on the matching Condition.
        self._mutex = threading.Lock()
        # Notified (once per item) when an item is added; dequeue/get wait here.
        self._not_empty = threading.Condition(self._mutex)
        # Notified (all) when an item is added; peek waits here, takes nothing.
        self._peekable = threading.Condition(self._mutex)
        # Notified when an item is taken; put waits here while the queue is full.
        self._not_full = threading.Condition(self._mutex)
        # Notified (all) when unfinished tasks reach zero; join waits here.
        self._all_tasks_done = threading.Condition(self._mutex)
        self._waiting_takers = 0
        self._waiting_peekers = 0
        self._waiting_putters = 0
        self._closed = False

        self._released = False  # the files and the lock are let go (close() ran to its end)
        self._shutdown = 0  # _SHUT or _SHUT_NOW once shutdown() was called (see there)
        self._poisoned: SyncError | None = None  # a sync failed: every call raises it until a reopen

        # Group commit: the store counts writes (under the mutex); _commit syncs them.
        self._commit = GroupCommit(qdir)

        self._turbo = turbo
        self._max_delay = DEFAULT_MAX_DELAY
        self._syncer: threading.Thread | None = None
        self._syncer_stop = threading.Event()
        self._syncer_wake = threading.Event()

        # (The store holds its host weakly: a handle dropped without close() is freed, and closed by
        # __del__, as soon as its last reference goes, as before the store existed.)
        self._store = SegmentStore(qdir, config, weakref.proxy(self), turbo)
        self._leases = LeaseTable(self._mutex)
        self._dead_letter_error: Exception | None = None  # the last failed move to the dead-letter queue
        self._unfinished_tasks = 0
        try:
            with self._mutex:  # nobody else has the handle yet, but the store's helpers expect the mutex
                self._store.load()
                self._unfinished_tasks = self._store.size
        except BaseException:
            # Opening failed (the caller releases the lock): let go of what the store opened, now,
            # so that nothing is left for a finalizer to close later.
            self._closed = self._released = True
            self._store.drop_all()
            raise
        _HANDLES.add(self)
        if turbo:
            self._start_syncer()

    def _wake_takers_locked(self, count: int) -> None:
        """``count`` items became ready: wake as many takers, and every peeker."""
        if self._waiting_takers:
            self._not_empty.notify(count)
        if self._waiting_peekers:
            self._peekable.notify_all()

    def _append_locked(self, records: list[bytes], payloads: list[bytes]) -> None:
        """Add item records at the tail, all or nothing (OSError: nothing changed), and wake their takers."""
        self._store.append(records, payloads)
        self._unfinished_tasks += len(records)
        self._wake_takers_locked(len(records))

    def _taken_locked(self, count: int) -> None:
        """``count`` items were taken: wake as many putters waiting for room."""
        if self._waiting_putters:
            self._not_full.notify(count)

    # The StoreHost interface (_store.py), called holding the mutex; not for users.

    def recounted(self, delta: int) -> None:
        self._unfinished_tasks = max(0, self._unfinished_tasks + delta)
        if not self._unfinished_tasks:
            self._all_tasks_done.notify_all()

    def sync_failed(self, exc: OSError) -> SyncError:
        return self._sync_failed_locked(exc)

    def dead_letter(self, seg: Segment, index: int, payload: bytes) -> bool:
        """Move an item that is out to the dead-letter queue. Never raises.

        False, and nothing changed here, if it cannot be moved now (that queue
        is open elsewhere, unreadable, or the disk is full): the item stays in
        this queue, to be handed out again; the failure is logged once (until
        a move succeeds again). The move is made durable in the dead-letter
        queue (safe mode) before the ACK that removes the item here is
        written: a crash between the two leaves the item in both queues,
        never in neither.
        """
        ack = encode_index_record(ACK, index)
        try:
            seg.reserve(len(ack))  # first: once the item is in the dead-letter queue, the ACK cannot fail
            dead = type(self).new_or_open(
                self.name + DEAD_LETTER_SUFFIX,
                self.dirpath,
                segment_size=self.segment_size,
                serializer=self._serializer,
                group_access=self.group_access,
            )
            try:
                dead.put_payloads([payload])  # durable on return: the dead-letter queue is in safe mode
            finally:
                try:
                    dead.close()
                except Exception:
                    pass  # the item is on disk there; a failed close changes nothing here
        except Exception as exc:
            if self._dead_letter_error is None:
                _log.error(
                    "dque: cannot move an item of %s to its dead-letter queue, it stays in the queue: %r",
                    self.path,
                    exc,
                )
            self._dead_letter_error = exc
            return False
        if self._dead_letter_error is not None:
            _log.warning("dque: moving items of %s to its dead-letter queue works again", self.path)
            self._dead_letter_error = None
        self._store.remove_out(seg, ack)
        self._tasks_done_locked(1)
        self._taken_locked(1)
        return True

    def _tasks_done_locked(self, count: int) -> None:
        self._unfinished_tasks = max(0, self._unfinished_tasks - count)
        if not self._unfinished_tasks:
            self._all_tasks_done.notify_all()

    def _wait_locked(
        self, cond: threading.Condition, ready: Any, timeout: float | None, counter: str, error: type
    ) -> None:
        """Wait on ``cond`` until ``ready()``; raise ``error`` on timeout, ClosedError on close.

        ``timeout``: None or ``inf`` waits forever, a huge one as long as asked
        (in steps of at most ``threading.TIMEOUT_MAX``, the most a wait takes).
        """
        if ready():
            return
        endtime = None if timeout is None else monotonic() + timeout
        setattr(self, counter, getattr(self, counter) + 1)
        try:
            while not ready():
                if self._closed:
                    self._check_open()
                if self._shutdown:  # (a put waits for room, a take for an item: neither comes now)
                    raise ShutDown(f"queue {self.path} is shut down")
                if endtime is None:
                    cond.wait()
                else:
                    remaining = endtime - monotonic()
                    if remaining <= 0.0:
                        raise error
                    cond.wait(min(remaining, threading.TIMEOUT_MAX))
        finally:
            setattr(self, counter, getattr(self, counter) - 1)
        if self._closed:
            self._check_open()

    def _has_item(self) -> bool:
        """An item is ready, or damage to report, at the head (moving the head on first if it is used up).

        Never after ``shutdown(immediate=True)``: takes then raise ShutDown.
        """
        if self._shutdown == _SHUT_NOW:
            return False
        store = self._store
        return store.first() is not None or store.head.damage is not None

    def _check_shutdown_locked(self, take: bool) -> None:
        """Raise ShutDown after shutdown(): for a put always, for a take once nothing is left to take."""
        if self._shutdown and (not take or not self._has_item()):
            raise ShutDown(f"queue {self.path} is shut down")

    def _check_open(self) -> None:
        if self._closed:
            if self._poisoned is not None:
                raise self._poisoned
            if self._forked:
                raise ForkedError(
                    f"queue {self.path} was opened in process {self._pid}, before this process was forked from it: "
                    "a forked child cannot use that handle (the same items would go to both processes). "
                    "Open the queue in the child once the parent has closed it, or share it with dque.ProcessSafeDQue"
                )
            raise ClosedError(f"queue {self.path} is closed")

    def _serialize(self, item: Any) -> bytes:
        """The payload of ``item``; SerializationError if it cannot be stored."""
        try:
            payload = _pickle_dumps(item, _PROTOCOL) if self._dumps is None else self._dumps(item)
        except Exception as exc:
            raise SerializationError(f"cannot serialize {type(item).__name__} item: {exc!r}") from exc
        if type(payload) is not bytes:
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                raise SerializationError(f"serializer returned {type(payload).__name__}, not bytes")
            payload = bytes(payload)
        if len(payload) > MAX_PAYLOAD:
            raise SerializationError(f"item of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
        return payload

    # ------------------------------------------------------------ syncing

    def _sync(self, upto: int | None) -> None:
        """Return once every write numbered ``upto`` or earlier (all, if None) is on stable storage.

        Raises SyncError if a sync failed (this one or an earlier one).
        """
        self._commit.wait(self, upto)

    # The group-commit Writer protocol (_commit.py); not for users.

    def _newest_write(self) -> int:
        return self._store.write_seq

    def _flush(self) -> int | None:
        """Sync all writes made so far; returns the last write number covered (None if closed).

        OSError if a sync failed (GroupCommit then poisons the handle).
        """
        in_place = []
        with self._mutex:
            if self._closed:
                return None
            store = self._store
            target = store.write_seq
            rolled, doomed = store.take_background()
            fds = []
            for seg in store.open_segments():
                if seg.dirty and seg.fd >= 0:
                    try:
                        fds.append(_fs.dup(seg.fd))  # synced without the mutex: writers go on meanwhile
                    except OSError:
                        in_place.append(seg.fd)  # no descriptor free: synced here, holding the mutex
                    seg.dirty = False
            dir_dirty, store.dir_dirty = store.dir_dirty or bool(doomed), False
            for fd in in_place:
                _fs.datasync(fd)
        try:
            try:
                left = finish_background_files(rolled, doomed)  # needs no mutex
            except FailedSync as failed:
                raise failed.error from None
            for fd in fds:
                _fs.datasync(fd)
            if dir_dirty:
                _fs.sync_dir(self.path)
        finally:
            for fd in fds:
                try:
                    _fs.close(fd)
                except OSError:
                    pass
        if left[0] or left[1] or left[2]:
            with self._mutex:
                store.requeue_background(*left)
        return target

    def _sync_failed(self, error: SyncError) -> None:
        """GroupCommit's report of a failed sync (the mutex is not held)."""
        with self._mutex:
            self._poison_locked(error)

    def _sync_failed_locked(self, exc: OSError) -> SyncError:
        """A sync made holding the mutex failed: poison the handle; returns the error to raise."""
        error = self._commit.fail(exc)
        self._poison_locked(error)
        return error

    def _poison_locked(self, error: SyncError) -> None:
        if self._poisoned is None:
            self._poisoned = error
        self._closed = True  # every later call raises _poisoned (see _check_open)
        for cond in (self._not_empty, self._peekable, self._not_full, self._all_tasks_done, self._leases.timer):
            cond.notify_all()

    # -------------------------------------------------------------- the API

    def enqueue(self, item: Any) -> None:
        """Add ``item`` at the tail without blocking.

        Raises Full if the queue is at its ``maxsize``, SerializationError if
        the item cannot be serialized (the queue is unchanged), ClosedError
        after close(). Durable on return in safe mode; in the OS in turbo mode.
        """
        payload = self._serialize(item)
        record, body = item_record(payload)
        self._mutex.acquire()  # (not ``with``, which costs twice as much, as in lease())
        try:
            if self._closed:
                self._check_open()
            if self._shutdown:
                self._check_shutdown_locked(take=False)
            store = self._store
            if self.maxsize > 0 and store.size + len(self._leases) >= self.maxsize:
                raise Full
            store.append_one(record, payload, body)
            self._unfinished_tasks += 1
            if self._waiting_takers or self._waiting_peekers:
                self._wake_takers_locked(1)
            if self._turbo:
                return
            seq = store.write_seq
        finally:
            self._mutex.release()
        self._sync(seq)

    def enqueue_many(self, items: Iterable[Any]) -> None:
        """Add every item of ``items`` at the tail, in order, all or nothing, with one sync.

        Raises Full (nothing added) if they do not all fit under ``maxsize``,
        SerializationError (nothing added) if one cannot be serialized.
        After a crash during the call, or an OSError (a full disk) in a batch
        that spans segments, a prefix of the batch may be present.
        """
        self._check_open()
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError("enqueue_many takes an iterable of items")
        payloads = [self._serialize(item) for item in items]
        records = [encode_item(payload) for payload in payloads]
        if not records:
            return
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=False)
            if self.maxsize > 0 and self._store.size + len(self._leases) + len(records) > self.maxsize:
                raise Full
            self._append_locked(records, payloads)
            seq, turbo = self._store.write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def dequeue(self) -> Any:
        """Remove and return the item at the head without blocking.

        Raises Empty if there is none, CorruptedError when the head segment is
        damaged (it is moved aside; the next call goes on with the next one),
        SerializationError if the item cannot be deserialized (it stays at the
        head), ClosedError after close(). Durable on return in safe mode.
        """
        with self._mutex:
            if self._closed:
                self._check_open()
            if self._shutdown:
                self._check_shutdown_locked(take=True)
            store = self._store
            item = store.take_one(self._loads)
            if self._waiting_putters:
                self._taken_locked(1)
            if self._turbo:
                return item
            seq = store.write_seq
        self._sync(seq)
        return item

    def dequeue_many(self, max_items: int) -> list[Any]:
        """Remove and return up to ``max_items`` items from the head, without blocking, with one sync.

        Returns an empty list when the queue is empty. Raises as :meth:`dequeue`
        does when the very first item cannot be taken for a reason other than
        emptiness.
        """
        check_int(max_items, "max_items", 0)
        if max_items == 0:
            self._check_open()
            return []
        return self._take(max_items, False, None, self._loads)

    def peek(self) -> Any:
        """Return the item at the head without removing it; Empty if there is none."""
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            return self._store.peek(self._loads)

    def dequeue_block(self, timeout: float | None = None) -> Any:
        """Remove and return the head item, waiting for one up to ``timeout`` seconds (None: forever).

        Raises Empty on timeout, ClosedError if the queue is closed while waiting.
        """
        return self.get(True, timeout)

    def peek_block(self, timeout: float | None = None) -> Any:
        """Return the head item without removing it, waiting for one up to ``timeout`` seconds.

        Raises Empty on timeout, ClosedError if the queue is closed while waiting.
        """
        check_timeout(timeout)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            self._wait_locked(self._peekable, self._has_item, timeout, "_waiting_peekers", Empty)
            return self._store.peek(self._loads)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: remove and return the head item.

        With ``block`` true, wait up to ``timeout`` seconds (None: forever) and
        raise Empty on timeout; with ``block`` false, raise Empty at once
        (``timeout`` is ignored). ClosedError if closed, before or while waiting.
        """
        items = self._take(1, block, timeout, self._loads)
        if not items:
            raise Empty
        return items[0]

    def _take(self, max_items: int, block: bool, timeout: float | None, decode: Decode) -> list[Any]:
        """Remove up to ``max_items`` items (their payloads if ``decode`` is None), with one sync.

        Waits for one first if ``block`` (Empty on timeout); otherwise returns
        [] when there is none.
        """
        if block:
            check_timeout(timeout)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            if block:
                self._wait_locked(self._not_empty, self._has_item, timeout, "_waiting_takers", Empty)
            elif not self._has_item():
                return []
            store = self._store
            items = [store.take_one(decode)] if max_items == 1 else store.take(max_items, decode)
            if self._waiting_putters:
                self._taken_locked(len(items))
            if self._turbo:
                return items
            seq = store.write_seq
        self._sync(seq)
        return items

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``queue.Queue.put``: add ``item`` at the tail.

        If the queue is at ``maxsize`` and ``block`` is true, wait up to
        ``timeout`` seconds (None: forever) for room, raising Full on timeout;
        with ``block`` false raise Full at once. Durable on return in safe mode.
        """
        if block:
            check_timeout(timeout)
        self._check_open()
        payload = self._serialize(item)
        record = encode_item(payload)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=False)
            if not self._has_room():
                if not block:
                    raise Full
                self._wait_locked(self._not_full, self._has_room, timeout, "_waiting_putters", Full)
            self._append_locked([record], [payload])
            seq, turbo = self._store.write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def _has_room(self) -> bool:
        return not 0 < self.maxsize <= self._store.size + len(self._leases)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def size(self) -> int:
        """The number of items in the queue (exact at the moment of the call).

        0 after ``shutdown(immediate=True)``, as for ``queue.Queue``: this
        handle hands none of them out any more (they stay on disk).
        """
        with self._mutex:
            self._check_open()
            return 0 if self._shutdown == _SHUT_NOW else self._store.size

    qsize = size

    def __len__(self) -> int:
        return self.size()

    def empty(self) -> bool:
        """True if the queue holds no item (may change as soon as it returns)."""
        return self.size() == 0

    def full(self) -> bool:
        """True if the queue is at its ``maxsize`` (never, when unbounded)."""
        with self._mutex:
            self._check_open()
            return not self._has_room()

    def task_done(self) -> None:
        """Mark one item taken earlier as processed (``queue.Queue.task_done``).

        Raises ValueError if called more times than there were items put.
        """
        with self._mutex:
            self._check_open()
            if self._unfinished_tasks <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished_tasks -= 1
            if self._unfinished_tasks == 0:
                self._all_tasks_done.notify_all()

    def join(self) -> None:
        """Block until every item put (or present at open) has been taken and marked done."""
        with self._mutex:
            self._check_open()
            while self._unfinished_tasks:
                self._all_tasks_done.wait()
                self._check_open()

    def shutdown(self, immediate: bool = False) -> None:
        """``queue.Queue.shutdown`` (Python 3.13), on every Python: stop the queue taking new work.

        Afterwards every put (``put``, ``enqueue``, ``enqueue_many``) raises
        ShutDown; takes (``get``, ``dequeue*``, ``peek*``, ``lease*``) go on
        until nothing is left, then raise ShutDown; with ``immediate`` they
        raise at once, and the items left count as done for ``join`` (which
        returns once the items taken are done) and ``size()`` says 0, as in
        ``queue.Queue``. Every blocked caller is woken.
        Acks and releases still work, and a released item can be taken again
        (unless ``immediate``).

        On disk nothing changes: the items left stay in the queue, durable as
        before, and are there when it is opened again; shutdown is a state of
        this open queue (of its owner, for a ProcessSafeDQue), not of its files.
        Calling it again is allowed (``immediate`` can only be turned on).
        """
        with self._mutex:
            self._check_open()
            if immediate:
                self._shutdown = _SHUT_NOW
                self._tasks_done_locked(self._store.size)
                self._all_tasks_done.notify_all()
            elif not self._shutdown:
                self._shutdown = _SHUT
            for cond in (self._not_empty, self._peekable, self._not_full):
                cond.notify_all()

    @property
    def unfinished_tasks(self) -> int:
        """Items put (or present at open) and not yet marked done (``queue.Queue.unfinished_tasks``)."""
        return self._unfinished_tasks

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` was called (``queue.Queue.is_shutdown``)."""
        return bool(self._shutdown)

    def segment_numbers(self) -> tuple[int, int]:
        """``(first, last)``: the numbers of the head and tail segment files."""
        with self._mutex:
            self._check_open()
            return self._store.head.number, self._store.tail.number

    # ------------------------------------------------------------------ leases

    def lease(self, block: bool = True, timeout: float | None = None, ttl: float | None = None) -> Lease:
        """Take the head item under a lease: invisible to others until acked or released.

        Waits like ``get`` (Empty on timeout, or at once if not ``block``).
        ``ttl`` (seconds) releases the lease if it is not acked in time. After a
        crash, every item leased and not acked is back in the queue, in order.
        Durable on return in safe mode (the hand-out is counted in
        ``Lease.deliveries`` across restarts).
        """
        if block:
            check_timeout(timeout)
        if ttl is None:
            # The common case kept short (no ttl, an item ready at the head): one call into the store.
            # (The mutex is taken without ``with``, which costs twice as much.)
            lease = None
            self._mutex.acquire()
            try:
                if not self._closed and not self._shutdown:
                    store = self._store
                    got = store.lease_one(self._loads)
                    if got is not None:
                        item, seg, index, payload, deliveries = got
                        lease = self._leases.add(self, item, deliveries, seg, index, payload)
                        if self._turbo:
                            return lease
                        seq = store.write_seq
            finally:
                self._mutex.release()
            if lease is not None:
                self._sync(seq)
                return lease
        return self._lease_items(1, block, timeout, ttl, self._loads, raise_empty=True)[0]

    def lease_many(self, max_items: int, ttl: float | None = None) -> list[Lease]:
        """Lease up to ``max_items`` ready items without blocking (maybe none), with one sync."""
        check_int(max_items, "max_items", 0)
        if max_items == 0:
            self._check_open()
            return []
        return list(self._lease_items(max_items, False, None, ttl, self._loads))

    def _lease_items(
        self,
        max_items: int,
        block: bool,
        timeout: float | None,
        ttl: float | None,
        decode: Decode,
        owner: Any = None,
        raise_empty: bool = False,
    ) -> list[LeaseState]:
        """Leases of up to ``max_items`` items (their payloads if ``decode`` is None); [] if none and not block."""
        check_int(max_items, "max_items", 1)
        if block:
            check_timeout(timeout)
        if ttl is not None:
            ttl = check_seconds(ttl, "ttl")
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            if block:
                self._wait_locked(self._not_empty, self._has_item, timeout, "_waiting_takers", Empty)
            elif not self._has_item():
                if raise_empty:
                    raise Empty
                return []
            store = self._store
            entries = store.pop(max_items, decode)
            counts = store.lease(entries)  # all or nothing (OSError: the entries are back, nothing changed)
            deadline = None if ttl is None else monotonic() + ttl
            leased = [
                self._leases.add(self, item, deliveries, seg, index, payload, owner, deadline)
                for (seg, index, payload, item, _), deliveries in zip(entries, counts, strict=True)
            ]
            if deadline is not None:
                self._leases.start_expirer(self, self.name)
            seq, turbo = store.write_seq, self._turbo
        if not turbo:
            self._sync(seq)
        return leased

    def ack(self, lease_id: int) -> None:
        """Delete a leased item for good; counts as ``task_done``.

        Raises LeaseError (and changes nothing) if the lease is not
        outstanding. Durable on return in safe mode.
        """
        lease = self._leases.get(lease_id) if type(lease_id) is int else None
        if lease is None or lease.owner is not None:
            self.ack_many([lease_id])  # errors, and leases of ProcessSafeDQue clients
        else:
            self._ack_lease(lease)

    def _ack_lease(self, lease: LeaseState) -> None:
        """``ack_many([lease.id])`` (LeaseState.ack's), the common case kept short."""
        seq = None
        self._mutex.acquire()  # (not ``with``, which costs twice as much)
        try:
            if not self._closed and self._leases.outstanding.get(lease.id) is lease:
                store = self._store
                store.ack_one(lease.seg, lease.index)  # (OSError if there is no room: nothing changed)
                self._leases.end_acked(lease)
                if self._unfinished_tasks > 1:
                    self._unfinished_tasks -= 1
                else:
                    self._tasks_done_locked(1)
                if self._waiting_putters:
                    self._taken_locked(1)
                if self._turbo:
                    return
                seq = store.write_seq
        finally:
            self._mutex.release()
        if seq is None:
            self.ack_many([lease.id])  # (raises the error)
        else:
            self._sync(seq)

    def ack_many(self, lease_ids: Iterable[int]) -> None:
        """Ack several leases, all or nothing, with one sync."""
        ids = list(lease_ids)
        with self._mutex:
            self._check_open()
            if not ids:
                return
            table = self._leases
            table.check(ids)
            leases = [table.get(i) for i in ids]
            store = self._store
            store.ack([(lease.seg, lease.index) for lease in leases if lease is not None])  # all or nothing
            for lease_id in ids:
                ended = table.end(lease_id)
                ended.seg = ended.payload = None  # type: ignore[assignment]  # an ended lease keeps nothing alive
            self._tasks_done_locked(len(ids))
            self._taken_locked(len(ids))
            seq, turbo = store.write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def release(self, lease_id: int) -> None:
        """Put a leased item back at the head, ahead of newer items, in its original order.

        Raises LeaseError if the lease is not outstanding. An item released
        ``max_deliveries`` times goes to the dead-letter queue instead.
        """
        self.release_many([lease_id])

    def release_many(self, lease_ids: Iterable[int]) -> None:
        """Release several leases; LeaseError (nothing changed) if one is not outstanding."""
        ids = list(lease_ids)
        with self._mutex:
            self._check_open()
            self._leases.check(ids)
            for lease_id in ids:
                self._release_locked(lease_id)
            seq, turbo = self._store.write_seq, self._turbo
        if not turbo:
            self._sync(seq)  # a move to the dead-letter queue wrote an ack

    def _release_locked(self, lease_id: int) -> None:
        """End an outstanding lease without an ack: its item is ready again (or goes to the dead-letter queue)."""
        lease = self._leases.end(lease_id)
        seg, index, payload = lease.seg, lease.index, lease.payload
        lease.seg = lease.payload = None  # type: ignore[assignment]  # an ended lease keeps nothing alive
        if self.max_deliveries and seg.deliveries.get(index, 0) >= self.max_deliveries:
            if self.dead_letter(seg, index, payload):
                return
        self._store.give_back(seg, index, payload)
        self._wake_takers_locked(1)

    def expire_locked(self, lease_ids: list[int]) -> bool:
        """(The ExpiryHost interface, _lease_table.py; not for users.) Release leases whose ttl ran out."""
        if self._closed:
            return False
        for lease_id in lease_ids:
            self._release_locked(lease_id)
        return True

    def in_flight(self) -> int:
        """The number of items leased and not yet acked or released."""
        with self._mutex:
            self._check_open()
            return len(self._leases)

    # ------------------------------------------------------------ the payload API
    # Serialized items: bytes in, bytes out, for a layer that serializes elsewhere (the
    # owner process of a ProcessSafeDQue stores and returns payloads; its clients serialize).
    # A payload is what the queue's serializer makes of an item; the queue never looks inside.

    def put_payloads(self, payloads: list[bytes], block: bool = False, timeout: float | None = None) -> None:
        """``put``/``enqueue_many`` for serialized items: all or nothing, with one sync (durable on return in safe mode).

        Raises TypeError unless every payload is ``bytes``, SerializationError
        for one over the size limit, Full when they do not fit under
        ``maxsize`` (after waiting up to ``timeout`` if ``block``; a batch
        larger than ``maxsize`` fits an empty queue), ShutDown, ClosedError.
        """
        if block:
            check_timeout(timeout)
        records = [_payload_record(payload) for payload in payloads]
        count = len(records)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=False)
            if not count:
                return
            if not self._room_for(count):
                if not block:
                    raise Full
                self._wait_locked(self._not_full, lambda: self._room_for(count), timeout, "_waiting_putters", Full)
            self._append_locked(records, payloads)
            if self._turbo:
                return
            seq = self._store.write_seq
        self._sync(seq)

    def _room_for(self, count: int) -> bool:
        """Room for ``count`` more items under ``maxsize`` (a batch larger than it fits an empty queue)."""
        maxsize = self.maxsize
        if maxsize <= 0:
            return True
        used = self._store.size + len(self._leases)
        return used + count <= maxsize or (count > maxsize and not used)

    def take_payloads(self, max_items: int, block: bool = False, timeout: float | None = None) -> list[bytes]:
        """``dequeue_many`` for serialized items: up to ``max_items`` payloads, with one sync.

        [] when the queue is empty and not ``block``; with ``block``, waits up
        to ``timeout`` seconds for one (Empty on timeout). Raises as ``get``.
        """
        if type(max_items) is not int or max_items < 1:
            check_int(max_items, "max_items", 1)  # the full check: raises unless an int subclass
        return self._take(max_items, block, timeout, None)

    def peek_payload(self, block: bool = False, timeout: float | None = None) -> bytes:
        """The head item's payload, not removed; Empty if there is none (after waiting up to ``timeout`` if ``block``)."""
        if block:
            check_timeout(timeout)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            if block:
                self._wait_locked(self._peekable, self._has_item, timeout, "_waiting_peekers", Empty)
            payload: bytes = self._store.peek(None)
            return payload

    def lease_payloads(
        self, max_items: int, block: bool, timeout: float | None, ttl: float | None, owner: Any = None
    ) -> list[tuple[int, bytes, int]]:
        """``(lease id, payload, deliveries)`` for up to ``max_items`` items leased (as ``lease_many``, waiting
        as ``lease`` if ``block``); [] if there is none and not ``block``.

        ``owner`` names who the leases are for (any hashable; the owner
        process passes a client process's id): :meth:`release_owner` releases
        them all at once, when that client dies.
        """
        leases = self._lease_items(max_items, block, timeout, ttl, None, owner)
        return [(lease.id, lease.item, lease.deliveries) for lease in leases]

    def release_owner(self, owner: Any) -> int:
        """Release every lease taken for ``owner`` (see :meth:`lease_payloads`); returns how many. 0 once closed."""
        with self._mutex:
            if self._closed:
                return 0
            ids = self._leases.owned_by(owner)
            for lease_id in ids:
                self._release_locked(lease_id)  # (never raises for a lease outstanding)
            return len(ids)

    def join_for(self, timeout: float) -> bool:
        """``join`` with a deadline: wait up to ``timeout`` seconds; True once every task is done, else False."""
        with self._mutex:
            self._check_open()
            if self._unfinished_tasks:
                self._all_tasks_done.wait(timeout)
                self._check_open()
            return not self._unfinished_tasks

    # ------------------------------------------------------------------ turbo

    @property
    def turbo(self) -> bool:
        """True in turbo mode (see :meth:`turbo_on`)."""
        return self._turbo

    def turbo_on(self, max_delay: float | None = None) -> None:
        """Switch to turbo mode: calls return once the OS has the bytes, without waiting for the disk.

        A killed process still loses nothing. A power cut or OS crash may lose
        changes made in the last ``max_delay`` seconds (default 1.0): a
        background thread syncs at most that long after a change, even while
        the queue is idle. ``float('inf')`` leaves syncing to the OS.
        """
        delay = (
            DEFAULT_MAX_DELAY
            if max_delay is None
            else check_seconds(max_delay, "max_delay", " (use turbo_off() for a sync on every call)")
        )
        with self._mutex:
            self._check_open()
            self._turbo = self._store.turbo = True
            self._max_delay = delay
        if self._max_delay == float("inf"):
            self._stop_syncer()  # the OS decides; full segments are synced in batches by the callers
        else:
            self._start_syncer()  # (a running one picks up the new max_delay at its next period)

    def turbo_off(self) -> None:
        """Switch to safe mode: everything written so far is synced now, and every later call syncs."""
        with self._mutex:
            self._check_open()
            self._turbo = self._store.turbo = False
        self._stop_syncer()
        self._sync(None)

    def turbo_sync(self) -> None:
        """Put every change made so far on stable storage now (in either mode)."""
        self._check_open()
        self._sync(None)

    def _start_syncer(self) -> None:
        if self._syncer is not None or self._max_delay == float("inf"):
            return
        self._syncer_stop = threading.Event()
        self._syncer = threading.Thread(
            target=_sync_periodically,
            args=(weakref.ref(self), self._syncer_stop, self._syncer_wake),
            name=f"dque-sync {self.name}",
            daemon=True,
        )
        self._syncer.start()
        self._store.wake_syncer = self._syncer_wake

    def _stop_syncer(self) -> None:
        syncer, self._syncer = self._syncer, None
        self._store.wake_syncer = None
        if syncer is not None:
            self._syncer_stop.set()
            self._syncer_wake.set()
            _join(syncer)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Sync everything, release the files and the lock, and wake every blocked caller with ClosedError.

        Calling it again does nothing; any other call afterwards raises ClosedError.
        Background work (turbo syncs, deleting used segments, lease expiry)
        has stopped before the lock is released, so the next open finds the
        files as this handle left them. On a poisoned handle (SyncError) it
        syncs nothing and only lets go of the files and the lock. Raises
        SyncError if its own sync fails (after letting go of everything).
        In a forked child, closing the inherited handle only drops the child's
        copies of the files: the queue stays open in the parent.
        """
        if os.getpid() != self._pid:
            self._closed = self._released = True
            for seg in self._store.open_segments():
                seg.drop()
            return
        if self._released:
            return
        error: BaseException | None = None
        try:
            self._stop_syncer()  # first: nothing touches the files once the lock is let go
            with self._commit.exclusive(), self._mutex:
                if self._released:
                    return
                self._closed = True
                for cond in (self._not_empty, self._peekable, self._not_full, self._all_tasks_done, self._leases.timer):
                    cond.notify_all()
                try:
                    if self._poisoned is None:
                        self._store.close_files()
                except BaseException as exc:
                    error = exc
                finally:
                    for seg in self._store.open_segments():
                        try:
                            seg.close()
                        except OSError:
                            pass  # its fd is closed either way; its reserved room is cut at the next open
            expirer = self._leases.expirer()
            if expirer is not None:
                _join(expirer)  # (it sees _closed and returns)
            self._stop_syncer()  # (one started by a turbo_on racing this close)
        finally:
            if not self._released:
                self._released = True
                self._lock.release()
        if error is not None:
            raise error

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._released

    def __enter__(self) -> DQue:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Last resort for a handle dropped without close(): free fds and the lock.
        try:
            if not self._released:
                self.close()
        except BaseException:  # nothing may escape a finalizer
            pass

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a DQue handle cannot be pickled or sent to another process ({self.path}): "
            "to share a queue with Pool workers or other processes, use dque.ProcessSafeDQue(name, dirpath), "
            "whose handles pickle"
        )

    def _after_fork_in_child(self) -> None:
        """(In a forked child, one thread.) Make this copy of the handle refuse every call."""
        self._forked = self._closed = True
        self._mutex = threading.Lock()  # a parent thread may have held it at the fork
        for name in ("_not_empty", "_peekable", "_not_full", "_all_tasks_done"):
            setattr(self, name, threading.Condition(self._mutex))
        self._leases.timer = threading.Condition(self._mutex)
        self._commit = GroupCommit(self.path)
        self._syncer = self._store.wake_syncer = None  # (threads do not survive a fork)
        self._leases.forget_threads()

    def __repr__(self) -> str:
        state = "closed" if self._released else "poisoned" if self._poisoned else f"size={self._store.size}"
        mode = "turbo" if self._turbo else "safe"
        return f"<{type(self).__name__} {self.path!r} {state} {mode} segment_size={self.segment_size}>"


def _payload_record(payload: bytes) -> bytes:
    """The item record of a payload of the payload API; TypeError or SerializationError if it is not one."""
    if type(payload) is not bytes:
        raise TypeError(f"payloads must be bytes, not {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD:
        raise SerializationError(f"item of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    return encode_item(payload)


_JOIN_S = 30.0  # at most this long close() waits for a background thread (it takes milliseconds)


def _join(thread: threading.Thread) -> None:
    """Wait for one of the handle's background threads to end (a bounded wait).

    Not from the thread itself, and not while the interpreter shuts down: by
    then daemon threads no longer run (Python 3.13 froze a join of one there).
    """
    if thread is not threading.current_thread() and not sys.is_finalizing():
        thread.join(_JOIN_S)


_HANDLES: weakref.WeakSet[DQue] = weakref.WeakSet()  # the open handles of this process


def _after_fork_in_child() -> None:
    for handle in list(_HANDLES):
        handle._after_fork_in_child()
    _HANDLES.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _sync_periodically(ref: weakref.ref[DQue], stop: threading.Event, wake: threading.Event) -> None:
    """Turbo mode's bound: sync changes no later than ``max_delay`` after they were made.

    Also syncs full segments and deletes used ones as soon as a batch of them
    waits (``wake``), so that the callers do not pay for it.
    """
    while True:
        q = ref()
        if q is None:
            return
        due = monotonic() + q._max_delay / 2
        del q
        while not stop.is_set():
            remaining = due - monotonic()
            if remaining <= 0 or not wake.wait(min(remaining, 3600.0)):
                break
            wake.clear()
            q = ref()
            if q is None:
                return
            with q._mutex:
                if q._closed:
                    return
                work = q._store.take_background()
            try:
                left = finish_background_files(*work)  # without the mutex: callers go on meanwhile
            except FailedSync as failed:
                with q._mutex:
                    q._sync_failed_locked(failed.error)  # the next call raises it
                return
            with q._mutex:
                q._store.requeue_background(*left)
            del q
        if stop.is_set():
            return
        q = ref()
        if q is None or q._closed:
            return
        try:
            store = q._store
            if store.write_seq != q._commit.synced or store.rolled or store.doomed:
                q._sync(None)
        except SyncError:
            return  # the handle is poisoned: every later call raises it
        del q
