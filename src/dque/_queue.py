"""``DQue``: the durable FIFO queue engine.

Concurrency follows CPython's ``queue.Queue``: one mutex guards all state and
every file write; a Condition per waited-on predicate shares it. Public
methods take the mutex; ``*_locked`` helpers assume it is held.

Durability (safe mode) uses group commit: a call appends its record under
the mutex, then waits, outside it, until a sync covering its write has
finished. One thread at a time (holding ``_sync_lock``) syncs everything
written so far, so threads arriving while an fsync runs share the next one.
Lock order: ``_sync_lock`` before ``_mutex``, never the other way.
"""

from __future__ import annotations

import os
import pickle
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from time import monotonic
from typing import Any
from zlib import crc32

from . import _config, _fs
from ._format import (
    CRC_FIELD,
    DELETE_MARKER,
    ITEM_RESTS,
    MARKER_SIZE,
    MAX_PAYLOAD,
    SMALL,
    encode_item,
    item_header_rest,
)
from ._lock import DirLock
from ._segment import CORRUPT_SUFFIX, Segment, segment_numbers_on_disk
from ._serializers import PickleSerializer, Serializer, resolve
from .errors import ClosedError, ConfigError, CorruptedError, Empty, Full, SerializationError

DEFAULT_SEGMENT_SIZE = 1000
_pickle_dumps = pickle.dumps
_PROTOCOL = pickle.HIGHEST_PROTOCOL
DEFAULT_MAX_DELAY = 1.0


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


def _check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _queue_dir(name: Any, dirpath: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name or name in (".", "..") or "\0" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"bad queue name {name!r}: it must be a plain file name (no path separators)")
    if not isinstance(dirpath, (str, os.PathLike)):
        raise TypeError(f"dirpath must be a str or path, not {type(dirpath).__name__}")
    return os.path.join(os.fspath(dirpath), name)


def _check_is_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{path} exists and is not a directory")


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
    ) -> DQue:
        """Create the queue ``dirpath/name`` (parents too) and open it.

        Raises FileExistsError if a queue is already there, NotADirectoryError
        if the path is a file, LockedError if another handle holds it.
        """
        qdir = _queue_dir(name, dirpath)
        _check_int(segment_size, "segment_size", 1)
        _check_int(maxsize, "maxsize", 0)
        ser_name, ser = resolve(serializer)
        turbo = bool(turbo)
        _check_is_dir(qdir)
        if _config.exists(qdir):
            raise FileExistsError(f"queue {qdir} already exists")
        parent = os.path.dirname(qdir) or "."
        _check_is_dir(parent)
        try:
            os.makedirs(qdir, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(f"a part of {qdir} is a file") from None
        _fs.sync_dir(parent)
        lock = DirLock(qdir)
        lock.acquire()
        try:
            if _config.exists(qdir):
                raise FileExistsError(f"queue {qdir} already exists")
            config = _config.Config(segment_size=segment_size, serializer=ser_name, maxsize=maxsize)
            _config.write(qdir, config)
            return cls(qdir, config, ser, lock, turbo)
        except BaseException:
            lock.release()
            raise

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
        qdir = _queue_dir(name, dirpath)
        want = None if serializer is None else resolve(serializer)
        turbo = bool(turbo)
        _check_is_dir(qdir)
        if not _config.exists(qdir):
            raise FileNotFoundError(f"no queue at {qdir}")
        lock = DirLock(qdir)
        lock.acquire()
        try:
            config = _config.read(qdir)
            if want is None:
                try:
                    ser_name, ser = resolve(config.serializer)
                except ValueError:
                    raise ConfigError(
                        f"queue {qdir} was created with serializer {config.serializer!r}: pass it to open"
                    ) from None
            else:
                ser_name, ser = want
            if ser_name != config.serializer:
                raise ConfigError(
                    f"queue {qdir} was created with serializer {config.serializer!r}, not {ser_name!r}"
                )
            return cls(qdir, config, ser, lock, turbo)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def new_or_open(
        cls,
        name: str,
        dirpath: str | os.PathLike[str],
        segment_size: int | None = None,
        turbo: bool = False,
        serializer: str | Serializer | None = None,
        maxsize: int | None = None,
    ) -> DQue:
        """Open the queue if it exists, else create it.

        ``segment_size`` (default 1000) and ``maxsize`` (default 0) apply when
        creating; an existing queue keeps its own, and passing different ones
        warns (``UserWarning``) and is otherwise ignored.
        """
        qdir = _queue_dir(name, dirpath)
        if segment_size is not None:
            _check_int(segment_size, "segment_size", 1)
        if maxsize is not None:
            _check_int(maxsize, "maxsize", 0)
        resolve(serializer)
        if not _config.exists(qdir):
            try:
                return cls.new(
                    name,
                    dirpath,
                    segment_size=DEFAULT_SEGMENT_SIZE if segment_size is None else segment_size,
                    turbo=turbo,
                    serializer=serializer,
                    maxsize=0 if maxsize is None else maxsize,
                )
            except FileExistsError:
                if not _config.exists(qdir):
                    raise
        q = cls.open(name, dirpath, turbo=turbo, serializer=serializer)
        for what, asked, kept in (("segment_size", segment_size, q.segment_size), ("maxsize", maxsize, q.maxsize)):
            if asked is not None and asked != kept:
                import warnings

                warnings.warn(
                    f"queue {qdir} keeps its {what} {kept}; the {what}={asked} passed is ignored",
                    UserWarning,
                    stacklevel=2,
                )
        return q

    def __init__(self, qdir: str, config: _config.Config, serializer: Serializer, lock: DirLock, turbo: bool) -> None:
        # Not for users: call dque.new / dque.open / dque.new_or_open.
        self.path = qdir
        self.dirpath, self.name = os.path.split(qdir)
        self.segment_size = config.segment_size
        self.serializer_name = config.serializer
        self.maxsize = config.maxsize
        self._dumps = None if isinstance(serializer, PickleSerializer) else serializer.dumps
        self._loads = serializer.loads
        self._lock = lock

        # One mutex guards everything below, and every write to the files.
        # Invariants while it is not held:
        #   _size == len(_head.pending) + segment_size * len(_middle)
        #            + (0 if _tail is _head else _tail.added - _tail.removed)
        #   _head.pending is empty only if the queue is empty or _head.damage is set.
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

        # Group commit. _write_seq counts writes; _synced_seq is the last one on stable storage.
        self._sync_lock = threading.Lock()
        self._write_seq = 0
        self._synced_seq = 0
        self._dir_dirty = False

        self._turbo = turbo
        self._max_delay = DEFAULT_MAX_DELAY
        self._syncer: threading.Thread | None = None
        self._syncer_stop = threading.Event()

        self._middle: deque[int] = deque()
        self._load()
        self._unfinished_tasks = self._size
        if turbo:
            self._start_syncer()

    def _load(self) -> None:
        qdir, size = self.path, self.segment_size
        numbers = segment_numbers_on_disk(qdir)
        if not numbers:
            self._head = self._tail = Segment.create(qdir, 1)
            _fs.sync_dir(qdir)
            self._size = 0
            return
        last = numbers[-1]
        tail = Segment.load(qdir, last, last=True, segment_size=size)
        if tail.damage is not None:  # never append after damage: start a fresh tail
            tail.close()
            numbers.append(last + 1)
            tail = Segment.create(qdir, last + 1)
            _fs.sync_dir(qdir)
        tail.open()
        self._tail = tail
        if len(numbers) == 1:
            self._head = tail
        else:
            self._head = Segment.load(qdir, numbers[0], last=False, segment_size=size)
            self._middle.extend(numbers[1:-1])
        head = self._head
        self._size = len(head.pending) + size * len(self._middle)
        if tail is not head:
            self._size += tail.added - tail.removed
        # A head left fully read by a crash before its file was deleted.
        while not head.pending and head.damage is None and head.added >= size:
            self._retire_head_locked(unlink=True)
            head = self._head
        if self._dir_dirty:
            _fs.sync_dir(qdir)
            self._dir_dirty = False

    # --------------------------------------------------------------- internals

    def _advance_head_locked(self, old: Segment) -> None:
        """Make the segment after ``old`` the head (``old`` is already closed)."""
        if old is self._tail:
            self._head = self._tail = Segment.create(self.path, old.number + 1)
            self._dir_dirty = True
            return
        nxt = self._middle[0] if self._middle else self._tail.number
        if nxt != old.number + 1:
            self._head = Segment.missing(self.path, old.number + 1, nxt - 1)
            return
        if self._middle:
            self._middle.popleft()
            seg = Segment.load(self.path, nxt, last=False, segment_size=self.segment_size)
            self._size += len(seg.pending) - self.segment_size
        else:
            seg = self._tail
            counted = seg.added - seg.removed
            seg.read_back(last=False, segment_size=0)
            self._size += len(seg.pending) - counted
            if seg.damage is not None:  # changed under us: stop appending to it
                self._roll_locked()
        self._head = seg

    def _retire_head_locked(self, unlink: bool) -> None:
        old = self._head
        old.close()
        if unlink:
            _fs.unlink(old.path)
        else:
            target = old.path + CORRUPT_SUFFIX
            n = 1
            while os.path.exists(target):
                n += 1
                target = f"{old.path}{CORRUPT_SUFFIX}.{n}"
            if os.path.exists(old.path):
                _fs.rename(old.path, target)
        self._dir_dirty = True
        self._advance_head_locked(old)

    def _quarantine_head_locked(self) -> None:
        """Move the damaged head aside, go on with the next segment, and raise CorruptedError."""
        head = self._head
        damage = head.damage
        assert damage is not None
        self._size -= len(head.pending)
        self._retire_head_locked(unlink=False)
        self._write_seq += 1
        raise CorruptedError(head.path, damage.offset, damage.reason)

    def _roll_locked(self) -> None:
        """Start a new tail segment after a full one (which is synced first, in every mode)."""
        old = self._tail
        if old.fd >= 0 and old.dirty:
            _fs.datasync(old.fd)
            old.dirty = False
        if old is not self._head:
            old.close()
            self._middle.append(old.number)
            # A tail left behind holds exactly the items counted for a middle segment.
            self._size += self.segment_size - (old.added - old.removed)
        self._tail = Segment.create(self.path, old.number + 1)
        self._dir_dirty = True

    def _append_locked(self, records: list[bytes], payloads: list[bytes]) -> None:
        """Write item records to the tail, rolling segments as they fill."""
        size = self.segment_size
        done = 0
        total = len(records)
        while done < total:
            tail = self._tail
            if tail.added >= size:
                self._roll_locked()
                tail = self._tail
            room = min(size - tail.added, total - done)
            chunk = records[done] if room == 1 else b"".join(records[done : done + room])
            tail.append(chunk)
            tail.added += room
            if tail is self._head:
                tail.pending.extend(payloads[done : done + room])
            done += room
        self._size += total
        self._unfinished_tasks += total
        self._write_seq += 1
        if self._waiting_takers:
            self._not_empty.notify(total)
        if self._waiting_peekers:
            self._peekable.notify_all()

    def _take_locked(self, limit: int, raw: bool = False) -> list[Any]:
        """Remove and return up to ``limit`` items (payload bytes if ``raw``) from the head.

        Takes at least one, or raises Empty/CorruptedError/SerializationError.
        """
        items: list[Any] = []
        while len(items) < limit:
            head = self._head
            pending = head.pending
            if not pending:
                if items:
                    break
                if head.damage is not None:
                    self._quarantine_head_locked()
                raise Empty
            count = min(limit - len(items), len(pending))
            loads = self._loads
            taken: list[Any] = []
            try:
                for i in range(count):
                    taken.append(pending[i] if raw else loads(pending[i]))
            except Exception as exc:
                if not taken and not items:
                    raise SerializationError(f"cannot deserialize the item at the head of {self.path}: {exc!r}") from exc
                count = len(taken)
                limit = 0  # stop after this batch; the next call reports the bad item
            head.append(DELETE_MARKER if count == 1 else DELETE_MARKER * count)
            for _ in range(count):
                pending.popleft()
            head.removed += count
            self._size -= count
            items.extend(taken)
            if not pending and head.damage is None and head.added >= self.segment_size:
                self._retire_head_locked(unlink=True)
        self._write_seq += 1
        if self._waiting_putters:
            self._not_full.notify(len(items))
        return items

    def _take_one_locked(self) -> Any:
        """``_take_locked(1)[0]``, the common case kept short."""
        head = self._head
        pending = head.pending
        if not pending or self._waiting_putters:
            return self._take_locked(1)[0]
        try:
            item = self._loads(pending[0])
        except Exception:
            return self._take_locked(1)[0]  # raises SerializationError with the details
        if head.fd < 0:
            head.open()
        try:
            written = _fs.write(head.fd, DELETE_MARKER)
        except BaseException:
            head.cut_back()
            raise
        if written != MARKER_SIZE:
            head.finish_write(DELETE_MARKER, written)
        head.size += MARKER_SIZE
        head.dirty = True
        pending.popleft()
        head.removed += 1
        self._size -= 1
        self._write_seq += 1
        if not pending and head.damage is None and head.added >= self.segment_size:
            self._retire_head_locked(unlink=True)
        return item

    def _peek_locked(self) -> Any:
        head = self._head
        if not head.pending:
            if head.damage is not None:
                self._quarantine_head_locked()
            raise Empty
        try:
            return self._loads(head.pending[0])
        except Exception as exc:
            raise SerializationError(f"cannot deserialize the item at the head of {self.path}: {exc!r}") from exc

    def _wait_locked(self, cond: threading.Condition, ready: Any, timeout: float | None, counter: str, error: type) -> None:
        """Wait on ``cond`` until ``ready()``; raise ``error`` on timeout, ClosedError on close."""
        if ready():
            return
        endtime = None if timeout is None else monotonic() + timeout
        setattr(self, counter, getattr(self, counter) + 1)
        try:
            while not ready():
                if self._closed:
                    raise ClosedError(f"queue {self.path} was closed")
                if endtime is None:
                    cond.wait()
                else:
                    remaining = endtime - monotonic()
                    if remaining <= 0.0:
                        raise error
                    cond.wait(remaining)
        finally:
            setattr(self, counter, getattr(self, counter) - 1)
        if self._closed:
            raise ClosedError(f"queue {self.path} was closed")

    def _has_item(self) -> bool:
        head = self._head
        return bool(head.pending) or head.damage is not None

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"queue {self.path} is closed")

    def _serialize(self, item: Any) -> tuple[bytes, bytes]:
        """``(payload, record)`` for ``item``; SerializationError if it cannot be stored."""
        try:
            # pickle is called directly: a wrapper would cost a fifth of an enqueue.
            payload = _pickle_dumps(item, _PROTOCOL) if self._dumps is None else self._dumps(item)
        except Exception as exc:
            raise SerializationError(f"cannot serialize {type(item).__name__} item: {exc!r}") from exc
        if type(payload) is not bytes:
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                raise SerializationError(f"serializer returned {type(payload).__name__}, not bytes")
            payload = bytes(payload)
        n = len(payload)
        if n < SMALL:
            rest, rest_crc = ITEM_RESTS[n] or item_header_rest(n)
        elif n > MAX_PAYLOAD:
            raise SerializationError(f"item of {n} bytes is over the {MAX_PAYLOAD}-byte limit")
        else:
            rest, rest_crc = item_header_rest(n)
        return payload, CRC_FIELD.pack(crc32(payload, rest_crc)) + rest + payload

    def _sync(self, upto: int | None) -> None:
        """Return once every write numbered ``upto`` or earlier (all, if None) is on stable storage."""
        with self._sync_lock:
            if upto is not None and self._synced_seq >= upto:
                return  # another thread's sync covered this write
            with self._mutex:
                if self._closed:
                    return
                target = self._write_seq
                fds = []
                for seg in {self._head, self._tail}:
                    if seg.dirty and seg.fd >= 0:
                        fds.append(_fs.dup(seg.fd))
                        seg.dirty = False
                dir_dirty, self._dir_dirty = self._dir_dirty, False
            try:
                for fd in fds:
                    _fs.datasync(fd)
                if dir_dirty:
                    _fs.sync_dir(self.path)
            except BaseException:
                with self._mutex:
                    self._head.dirty = self._tail.dirty = True
                    self._dir_dirty = self._dir_dirty or dir_dirty
                raise
            finally:
                for fd in fds:
                    _fs.close(fd)
            self._synced_seq = target

    def _after_write(self, seq: int, turbo: bool) -> None:
        if not turbo:
            self._sync(seq)

    # -------------------------------------------------------------- the API

    def enqueue(self, item: Any) -> None:
        """Add ``item`` at the tail without blocking.

        Raises Full if the queue is at its ``maxsize``, SerializationError if
        the item cannot be serialized (the queue is unchanged), ClosedError
        after close(). Durable on return in safe mode; in the OS in turbo mode.
        """
        if self._closed:
            self._check_open()
        # _serialize(), inlined for the common case (pickle, small item): a call costs 3% here.
        if self._dumps is None:
            try:
                payload = _pickle_dumps(item, _PROTOCOL)
            except Exception:
                payload, record = self._serialize(item)  # raises SerializationError
            n = len(payload)
            if n < SMALL:
                rest, rest_crc = ITEM_RESTS[n] or item_header_rest(n)
                record = CRC_FIELD.pack(crc32(payload, rest_crc)) + rest + payload
            else:
                payload, record = self._serialize(item)
        else:
            payload, record = self._serialize(item)
        with self._mutex:
            if self._closed:
                self._check_open()
            if self.maxsize > 0 and self._size >= self.maxsize:
                raise Full
            tail = self._tail
            if tail.added >= self.segment_size:
                self._roll_locked()
                tail = self._tail
            # Segment.append(), inlined.
            try:
                written = _fs.write(tail.fd, record)
            except BaseException:
                tail.cut_back()
                raise
            if written != len(record):
                tail.finish_write(record, written)
            tail.size += len(record)
            tail.dirty = True
            tail.added += 1
            if tail is self._head:
                tail.pending.append(payload)
            self._size += 1
            self._unfinished_tasks += 1
            self._write_seq += 1
            if self._waiting_takers:
                self._not_empty.notify()
            if self._waiting_peekers:
                self._peekable.notify_all()
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def enqueue_many(self, items: Iterable[Any]) -> None:
        """Add every item of ``items`` at the tail, in order, all or nothing, with one sync.

        Raises Full (nothing added) if they do not all fit under ``maxsize``,
        SerializationError (nothing added) if one cannot be serialized.
        After a crash during the call a prefix of the batch may be present.
        """
        self._check_open()
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError("enqueue_many takes an iterable of items")
        payloads, records = [], []
        for item in items:
            payload, record = self._serialize(item)
            payloads.append(payload)
            records.append(record)
        if not records:
            return
        with self._mutex:
            self._check_open()
            if self.maxsize > 0 and self._size + len(records) > self.maxsize:
                raise Full
            self._append_locked(records, payloads)
            seq, turbo = self._write_seq, self._turbo
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
            item = self._take_one_locked()
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)
        return item

    def dequeue_many(self, max_items: int) -> list[Any]:
        """Remove and return up to ``max_items`` items from the head, without blocking, with one sync.

        Returns an empty list when the queue is empty. Raises as :meth:`dequeue`
        does when the very first item cannot be taken for a reason other than
        emptiness.
        """
        _check_int(max_items, "max_items", 0)
        with self._mutex:
            self._check_open()
            if max_items == 0 or not self._has_item():
                return []
            items = self._take_locked(max_items)
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)
        return items

    def peek(self) -> Any:
        """Return the item at the head without removing it; Empty if there is none."""
        with self._mutex:
            self._check_open()
            return self._peek_locked()

    def dequeue_block(self, timeout: float | None = None) -> Any:
        """Remove and return the head item, waiting for one up to ``timeout`` seconds (None: forever).

        Raises Empty on timeout, ClosedError if the queue is closed while waiting.
        """
        return self.get(True, timeout)

    def peek_block(self, timeout: float | None = None) -> Any:
        """Return the head item without removing it, waiting for one up to ``timeout`` seconds.

        Raises Empty on timeout, ClosedError if the queue is closed while waiting.
        """
        _check_timeout(timeout)
        with self._mutex:
            self._check_open()
            self._wait_locked(self._peekable, self._has_item, timeout, "_waiting_peekers", Empty)
            return self._peek_locked()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: remove and return the head item.

        With ``block`` true, wait up to ``timeout`` seconds (None: forever) and
        raise Empty on timeout; with ``block`` false, raise Empty at once
        (``timeout`` is ignored). ClosedError if closed, before or while waiting.
        """
        if block:
            _check_timeout(timeout)
        with self._mutex:
            self._check_open()
            if block:
                self._wait_locked(self._not_empty, self._has_item, timeout, "_waiting_takers", Empty)
            item = self._take_one_locked()
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)
        return item

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``queue.Queue.put``: add ``item`` at the tail.

        If the queue is at ``maxsize`` and ``block`` is true, wait up to
        ``timeout`` seconds (None: forever) for room, raising Full on timeout;
        with ``block`` false raise Full at once. Durable on return in safe mode.
        """
        if block:
            _check_timeout(timeout)
        self._check_open()
        payload, record = self._serialize(item)
        with self._mutex:
            self._check_open()
            if 0 < self.maxsize <= self._size:
                if not block:
                    raise Full
                self._wait_locked(self._not_full, self._has_room, timeout, "_waiting_putters", Full)
            self._append_locked([record], [payload])
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def _has_room(self) -> bool:
        return not 0 < self.maxsize <= self._size

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def size(self) -> int:
        """The number of items in the queue (exact at the moment of the call)."""
        with self._mutex:
            self._check_open()
            return self._size

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

    def _join_for(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for join(); True when all tasks are done."""
        with self._mutex:
            self._check_open()
            if self._unfinished_tasks:
                self._all_tasks_done.wait(timeout)
                self._check_open()
            return not self._unfinished_tasks

    def segment_numbers(self) -> tuple[int, int]:
        """``(first, last)``: the numbers of the head and tail segment files."""
        with self._mutex:
            self._check_open()
            return self._head.number, self._tail.number

    # ------------------------------------------------- serialized items (for ProcessSafeDQue)
    # The owner process stores and returns payload bytes; its clients serialize.

    def _put_payloads(self, payloads: list[bytes], block: bool = False, timeout: float | None = None) -> None:
        """Like ``put``/``enqueue_many`` for already serialized items: all or nothing."""
        if block:
            _check_timeout(timeout)
        records = []
        for payload in payloads:
            if type(payload) is not bytes:
                raise TypeError(f"payloads must be bytes, not {type(payload).__name__}")
            if len(payload) > MAX_PAYLOAD:
                raise SerializationError(f"item of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
            records.append(encode_item(payload))
        if not records:
            self._check_open()
            return
        count = len(records)

        def room() -> bool:
            return self.maxsize <= 0 or self._size + count <= self.maxsize or (count > self.maxsize and not self._size)

        with self._mutex:
            self._check_open()
            if not room():
                if not block:
                    raise Full
                self._wait_locked(self._not_full, room, timeout, "_waiting_putters", Full)
            self._append_locked(records, payloads)
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def _take_payloads(self, max_items: int, block: bool = False, timeout: float | None = None) -> list[bytes]:
        """Remove up to ``max_items`` payloads; [] when empty and not blocking; Empty on timeout."""
        _check_int(max_items, "max_items", 1)
        if block:
            _check_timeout(timeout)
        with self._mutex:
            self._check_open()
            if block:
                self._wait_locked(self._not_empty, self._has_item, timeout, "_waiting_takers", Empty)
            elif not self._has_item():
                return []
            payloads = self._take_locked(max_items, raw=True)
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)
        return payloads

    def _peek_payload(self, block: bool = False, timeout: float | None = None) -> bytes:
        """The head payload, not removed; Empty if none (after waiting, if ``block``)."""
        if block:
            _check_timeout(timeout)
        with self._mutex:
            self._check_open()
            if block:
                self._wait_locked(self._peekable, self._has_item, timeout, "_waiting_peekers", Empty)
            head = self._head
            if not head.pending:
                if head.damage is not None:
                    self._quarantine_head_locked()
                raise Empty
            return head.pending[0]

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
        if max_delay is None:
            max_delay = DEFAULT_MAX_DELAY
        if isinstance(max_delay, bool) or not isinstance(max_delay, (int, float)):
            raise TypeError(f"max_delay must be a number or None, not {type(max_delay).__name__}")
        if not max_delay > 0:
            raise ValueError("max_delay must be > 0 (use turbo_off() for a sync on every call)")
        with self._mutex:
            self._check_open()
            self._turbo = True
            self._max_delay = float(max_delay)
        self._start_syncer()

    def turbo_off(self) -> None:
        """Switch to safe mode: everything written so far is synced now, and every later call syncs."""
        with self._mutex:
            self._check_open()
            self._turbo = False
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
            target=_sync_periodically, args=(weakref.ref(self), self._syncer_stop), name=f"dque-sync {self.name}", daemon=True
        )
        self._syncer.start()

    def _stop_syncer(self) -> None:
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            self._syncer_stop.set()
            if syncer is not threading.current_thread():
                syncer.join()

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Sync everything, release the files and the lock, and wake every blocked caller with ClosedError.

        Calling it again does nothing; any other call afterwards raises ClosedError.
        """
        with self._sync_lock:
            with self._mutex:
                if self._closed:
                    return
                self._closed = True
                for cond in (self._not_empty, self._peekable, self._not_full, self._all_tasks_done):
                    cond.notify_all()
                try:
                    for seg in {self._head, self._tail}:
                        if seg.dirty and seg.fd >= 0:
                            _fs.datasync(seg.fd)
                            seg.dirty = False
                    if self._dir_dirty:
                        _fs.sync_dir(self.path)
                        self._dir_dirty = False
                finally:
                    self._head.close()
                    self._tail.close()
                    self._lock.release()
        self._stop_syncer()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> DQue:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Last resort for a handle dropped without close(): free fds and the lock.
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size={self._size}"
        mode = "turbo" if self._turbo else "safe"
        return f"<{type(self).__name__} {self.path!r} {state} {mode} segment_size={self.segment_size}>"


def _sync_periodically(ref: weakref.ref[DQue], stop: threading.Event) -> None:
    """Turbo mode's bound: sync changes no later than ``max_delay`` after they were made."""
    while True:
        q = ref()
        if q is None:
            return
        period = q._max_delay / 2
        del q
        if stop.wait(period):
            return
        q = ref()
        if q is None or q._closed:
            return
        try:
            if q._write_seq != q._synced_seq:
                q._sync(None)
        except Exception:
            pass  # the next call that syncs reports the error
        del q
