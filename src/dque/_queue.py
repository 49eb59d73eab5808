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

import errno
import heapq
import itertools
import json
import os
import pickle
import sys
import threading
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import islice
from time import monotonic
from typing import Any
from zlib import crc32

from . import _config, _fs
from ._args import check_int, check_options, check_timeout, queue_dir
from ._commit import GroupCommit
from ._format import (
    ACK,
    CRC_FIELD,
    DELETE,
    DELETE_MARKER,
    ITEM,
    ITEM_RESTS,
    MAX_PAYLOAD,
    SEAL_SIZE,
    SMALL,
    UNCOMMITTED_DELETE_MARKER,
    encode_index_record,
    encode_item,
    encode_seal,
    item_header_rest,
    read_seal,
    uncommitted,
)
from ._leasing import LeaseState, Leasing, by_number
from ._lock import DirLock
from ._segment import Segment, by_segment, close_fd, segment_numbers_on_disk, segment_path
from ._serializers import PickleSerializer, Serializer, resolve
from .errors import (
    ClosedError,
    ConfigError,
    CorruptedError,
    Empty,
    ForkedError,
    Full,
    SerializationError,
    ShutDown,
    SyncError,
)

DEFAULT_SEGMENT_SIZE = 1000
DEFAULT_SEGMENT_BYTES = 16 << 20  # (a head segment's unread items are in memory: this bounds them)
_pickle_dumps = pickle.dumps
_pack_crc = CRC_FIELD.pack
_PROTOCOL = pickle.HIGHEST_PROTOCOL
DEFAULT_MAX_DELAY = 1.0
_SHUT, _SHUT_NOW = 1, 2  # DQue._shutdown: shut down (takes drain what is left), immediately (takes raise)
CLEAN_NAME = "dque.clean"  # present while no handle has the queue open and the last one closed it
# Turbo mode syncs full segments and deletes used ones in the background; this
# many waiting wake the background thread (or, with no thread, are done at once).
_BACKGROUND_BATCH = 4
_BACKGROUND_MAX = 256


def _check_is_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{path} exists and is not a directory")


class DQue(Leasing):
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
        max_deliveries: int = 0,
        group_access: bool = False,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> DQue:
        """Create the queue ``dirpath/name`` (parents too) and open it.

        A segment file holds at most ``segment_size`` items, and rolls over
        once its records take ``segment_bytes`` bytes (0: no byte bound): what
        a process keeps in memory of a queue is bounded by that, whatever the
        size of the items.

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
        qdir = queue_dir(name, dirpath)
        check_int(segment_size, "segment_size", 1)
        check_int(maxsize, "maxsize", 0)
        check_int(max_deliveries, "max_deliveries", 0)
        check_int(segment_bytes, "segment_bytes", 0)
        if not isinstance(group_access, bool):
            raise TypeError(f"group_access must be True or False, not {type(group_access).__name__}")
        ser_name, ser = resolve(serializer)
        turbo = bool(turbo)
        _check_is_dir(qdir)
        if _config.exists(qdir):
            raise FileExistsError(f"queue {qdir} already exists: open it with dque.open, or use dque.new_or_open")
        parent = os.path.dirname(qdir) or "."
        _check_is_dir(parent)
        try:
            _fs.make_dir(qdir, _fs.dir_mode(group_access))
        except FileExistsError:
            raise NotADirectoryError(f"a part of {qdir} is a file") from None
        _fs.sync_dir(parent)
        lock = DirLock(qdir, _fs.file_mode(group_access))
        lock.acquire()
        try:
            if _config.exists(qdir):
                raise FileExistsError(f"queue {qdir} already exists: open it with dque.open, or use dque.new_or_open")
            config = _config.Config(
                segment_size=segment_size,
                serializer=ser_name,
                maxsize=maxsize,
                max_deliveries=max_deliveries,
                group_access=group_access,
                segment_bytes=segment_bytes,
            )
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
        qdir = queue_dir(name, dirpath)
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
                raise ConfigError(f"queue {qdir} was created with serializer {config.serializer!r}, not {ser_name!r}")
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
        qdir = queue_dir(name, dirpath)
        check_options(segment_size, maxsize, max_deliveries, serializer)
        if not _config.exists(qdir):
            try:
                return cls.new(
                    name,
                    dirpath,
                    segment_size=DEFAULT_SEGMENT_SIZE if segment_size is None else segment_size,
                    turbo=turbo,
                    serializer=serializer,
                    maxsize=0 if maxsize is None else maxsize,
                    max_deliveries=0 if max_deliveries is None else max_deliveries,
                    group_access=group_access,
                    segment_bytes=DEFAULT_SEGMENT_BYTES if segment_bytes is None else segment_bytes,
                )
            except FileExistsError:
                if not _config.exists(qdir):
                    raise
        q = cls.open(name, dirpath, turbo=turbo, serializer=serializer)
        for what, asked, kept in (
            ("segment_size", segment_size, q.segment_size),
            ("maxsize", maxsize, q.maxsize),
            ("max_deliveries", max_deliveries, q.max_deliveries),
            ("segment_bytes", segment_bytes, q.segment_bytes),
        ):
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
        self.max_deliveries = config.max_deliveries
        self.group_access = config.group_access
        self.segment_bytes = config.segment_bytes
        self._byte_cap = config.segment_bytes or 1 << 62  # a segment rolls once its records reach it
        self._seals = config.seals  # format 2: full segments get a seal (see _seal_locked)
        self._file_mode = config.file_mode  # of the segment files it creates
        self._serializer = serializer
        self._dumps = None if isinstance(serializer, PickleSerializer) else serializer.dumps
        self._loads = serializer.loads
        self._lock = lock
        self._pid = os.getpid()  # a forked child's copy of the handle must leave the queue alone
        self._forked = False  # this is a forked child's copy: every call raises ForkedError

        # One mutex guards everything below, and every write to the files.
        # Invariants while it is not held:
        #   _size (the ready items) == len(_returned) + len(_head.pending)
        #            + sum of the live items of the _middle segments
        #            + (0 if _tail is _head else _tail.added - _tail.removed - _tail_uncounted)
        #   _head.pending is empty only if the queue is empty or _head.damage is set.
        #   seg.out == items of seg in _returned or _leases; a segment before the
        #   head stays open in _lingering while seg.out > 0.
        self._mutex = threading.Lock()
        # Notified (once per item) when an item is added; dequeue/get wait here.
        self._not_empty = threading.Condition(self._mutex)
        # Notified (all) when an item is added; peek waits here, takes nothing.
        self._peekable = threading.Condition(self._mutex)
        # Notified when an item is taken; put waits here while the queue is full.
        self._not_full = threading.Condition(self._mutex)
        # Notified (all) when unfinished tasks reach zero; join waits here.
        self._all_tasks_done = threading.Condition(self._mutex)
        # Notified when a lease with an earlier deadline appears; the expiry thread waits here.
        self._lease_timer = threading.Condition(self._mutex)
        self._waiting_takers = 0
        self._waiting_peekers = 0
        self._waiting_putters = 0
        self._closed = False

        self._released = False  # the files and the lock are let go (close() ran to its end)
        self._shutdown = 0  # _SHUT or _SHUT_NOW once shutdown() was called (see there)
        self._poisoned: SyncError | None = None  # a sync failed: every call raises it until a reopen

        # Group commit: _write_seq counts writes (under the mutex); _commit syncs them.
        self._write_seq = 0
        self._commit = GroupCommit(qdir)
        self._dir_dirty = False

        self._turbo = turbo
        self._max_delay = DEFAULT_MAX_DELAY
        self._syncer: threading.Thread | None = None
        self._syncer_stop = threading.Event()
        self._syncer_wake = threading.Event()
        self._rolled: list[str] = []  # full segment files not synced yet (turbo)
        self._doomed: list[str] = []  # used segment files not deleted yet (turbo)
        self._unsealed: dict[str, tuple[int, int]] = {}  # rolled, not synced yet: path -> (items, end) for its seal

        self._middle: deque[int] = deque()
        self._middle_live: dict[int, int] = {}  # middle segments not holding segment_size live items
        self._tail_uncounted = 0  # items of the tail found at open to go to the dead-letter queue
        self._lingering: dict[int, Segment] = {}
        self._returned: list[tuple[int, int, bytes, Segment]] = []  # heap of released items
        self._leases: dict[int, LeaseState] = {}
        self._owner_leases: dict[Any, set[int]] = {}
        self._expiries: list[tuple[float, int]] = []  # heap of (deadline, lease id)
        self._expirer: threading.Thread | None = None
        self._dead_letter_error: Exception | None = None  # the last failed move to the dead-letter queue
        # Lease ids: a random start per open, so that an id from before a reopen is unknown after it.
        self._lease_ids = itertools.count(int.from_bytes(os.urandom(6), "little") << 16)
        self._unfinished_tasks = 0
        try:
            with self._mutex:  # nobody else has the handle yet, but _load's helpers expect the mutex
                self._load()
                self._unfinished_tasks = self._size
        except BaseException:
            # Opening failed (the caller releases the lock): let go of what _load opened, now,
            # so that nothing is left for a finalizer to close later.
            self._closed = self._released = True
            for seg in (getattr(self, "_head", None), getattr(self, "_tail", None), *self._lingering.values()):
                if seg is not None:
                    try:
                        seg.drop()
                    except BaseException:
                        pass
            raise
        _HANDLES.add(self)
        if turbo:
            self._start_syncer()

    def _load(self) -> None:
        qdir, size = self.path, self.segment_size
        numbers = segment_numbers_on_disk(qdir)
        if not numbers:
            self._head = self._tail = Segment.create(qdir, 1, self._file_mode)
            _fs.sync_dir(qdir)
            self._size = 0
            return
        last = numbers[-1]
        tail = Segment.load(qdir, last, last=True)
        damaged_tail_live = None
        if tail.damage is not None:  # never append after damage: start a fresh tail
            damaged_tail_live = self._live_of(tail)  # (its items before the damage: exact, not assumed)
            tail.close()
            numbers.append(last + 1)
            tail = Segment.create(qdir, last + 1, self._file_mode)
            _fs.sync_dir(qdir)
        tail.open()
        self._tail = tail
        if len(numbers) == 1:
            self._head = tail
        else:
            self._head = Segment.load(qdir, numbers[0], last=False, head=True)
            self._middle.extend(numbers[1:-1])
        # Count the live items of the segments between head and tail. After a
        # clean close only the first ones can hold fewer than segment_size:
        # those that were the head before (the head only moves forward), up to
        # the first untouched one. After a crash any of them may (turbo mode
        # may lose the unsynced end of a full segment), so all are read.
        marker = self._was_closed_cleanly()
        clean = marker is not None
        # After a clean close the marker has the counts (format 2): only the segments up to
        # the head it names are read. Otherwise a format-2 queue's full segments end with a
        # seal (written once all before it was synced: see docs/format.md) that gives the
        # count without reading the file; segments may hold fewer than segment_size items
        # (segment_bytes), so each is counted. A segment with neither is read.
        short = marker.get("short") if marker else None
        old_head = marker.get("head") if marker else None
        if not (self._seals and isinstance(short, dict) and isinstance(old_head, int)):
            short, old_head = {}, None  # (a format-1 queue, or an older version's empty marker)
        for number in self._middle:
            if number == last:
                break  # the damaged old tail, counted above
            live = None
            if old_head is not None and number > old_head:
                live = short.get(str(number), size)
                if not isinstance(live, int) or live < 0:
                    live = None
            if live is None and self._seals:
                live = self._sealed_count(number)
            untouched = True
            if live is None:
                found = Segment.load(qdir, number, last=False)
                found.close()
                live = self._live_of(found)
                untouched = not (found.removed or found.deliveries)
            if live != size:
                self._middle_live[number] = live
            elif clean and untouched and not self._seals:
                break
        if damaged_tail_live is not None and self._middle and self._middle[-1] == last:
            if damaged_tail_live != size:
                self._middle_live[last] = damaged_tail_live
        head = self._head
        self._size = (
            len(head.pending) + size * len(self._middle) - sum(size - live for live in self._middle_live.values())
        )
        if tail is not head:
            if self.max_deliveries and tail.deliveries:  # dead letters once it is the head
                self._tail_uncounted = sum(tail.deliveries.get(i, 0) >= self.max_deliveries for i, _ in tail.pending)
            self._size += tail.added - tail.removed - self._tail_uncounted
        self._settle_head_locked()
        if self._dir_dirty:
            _fs.sync_dir(qdir)
            self._dir_dirty = False

    def _sealed_count(self, number: int) -> int | None:
        """The item count in the seal that ends segment ``number``; None if it does not end with one."""
        try:
            size, tail = _fs.read_tail(segment_path(self.path, number), SEAL_SIZE)
        except OSError:
            return None  # (read it instead)
        return read_seal(tail, size)

    def _live_of(self, seg: Segment) -> int:
        """The items of a loaded segment that will be handed out (not those due to the dead-letter queue)."""
        live = len(seg.pending)
        if self.max_deliveries and seg.deliveries:
            live -= sum(seg.deliveries.get(i, 0) >= self.max_deliveries for i, _ in seg.pending)
        return live

    def _was_closed_cleanly(self) -> dict[str, Any] | None:
        """What the last handle wrote when it closed the queue cleanly (None: it did not; {}: an older
        version's empty marker); from now on the queue is open (not clean) until close()."""
        path = os.path.join(self.path, CLEAN_NAME)
        if not os.path.exists(path):
            return None
        try:
            counts = json.loads(_fs.read_file(path) or b"{}")
        except (OSError, ValueError):
            counts = {}
        _fs.unlink(path)
        _fs.sync_dir(self.path)
        return counts if isinstance(counts, dict) else {}

    def _clean_marker_locked(self) -> bytes:
        """What close() leaves for the next open: the counts of the segments between head and tail.

        ``head``: the head's number (segments up to it may hold deleted or leased items: read at
        open); ``short``: the live items of those after it that hold fewer than segment_size.
        """
        short = {str(n): live for n, live in self._middle_live.items()}
        return json.dumps({"head": self._head.number, "short": short}).encode()

    # --------------------------------------------------------------- internals

    def _next_head_locked(self, old: Segment) -> Segment:
        """Open (or, after the tail, create) the segment that follows ``old`` as the head.

        May raise OSError (no descriptor, no room for a file): nothing changed then.
        """
        if old is self._tail:
            return Segment.create(self.path, old.number + 1, self._file_mode)
        if self._middle:  # numbers may skip: a segment emptied while an older one lingered is gone
            return Segment.load(self.path, self._middle[0], last=False, head=True)
        tail = self._tail
        tail.read_back(last=True, head=True)  # (reads the file again: the counts it sets are the same)
        return tail

    def _advance_head_locked(self, old: Segment, nxt: Segment) -> None:
        """Make ``nxt`` (from _next_head_locked) the head after ``old``. Cannot fail."""
        if old is self._tail:
            self._head = self._tail = nxt
            self._dir_dirty = True
            return
        if nxt is self._tail:
            counted = nxt.added - nxt.removed - self._tail_uncounted
            self._tail_uncounted = 0
            self._recount_locked(len(nxt.pending) - counted)
            if nxt.damage is not None:  # changed under us: stop appending to it
                try:
                    self._roll_locked()
                except Exception:
                    pass  # the next enqueue rolls it
        else:
            self._middle.popleft()
            self._recount_locked(len(nxt.pending) - self._middle_live.pop(nxt.number, self.segment_size))
        self._head = nxt

    def _recount_locked(self, delta: int) -> None:
        """Correct the counts when a segment turns out to hold ``delta`` more live items than assumed."""
        if delta:
            self._size += delta
            self._unfinished_tasks = max(0, self._unfinished_tasks + delta)
            if not self._unfinished_tasks:
                self._all_tasks_done.notify_all()

    def _head_done(self) -> bool:
        head = self._head
        return not head.pending and head.damage is None and (head is not self._tail or head.added >= self.segment_size)

    def _settle_head_locked(self) -> None:
        """Move past heads with nothing left to hand out, and screen a new head for dead letters.

        Raises OSError if the next segment cannot be opened: the head is then
        left as it was (moving on is retried by the next call that needs it).
        """
        while True:
            head = self._head
            if self.max_deliveries and head.deliveries:
                self._screen_locked(head)
            if not self._head_done():
                return  # (a head before the tail is finished when empty, full or not)
            nxt = self._next_head_locked(head)  # first: if this fails, nothing changed
            if head.out:
                self._lingering[head.number] = head  # open until its last item out is acked
            else:
                self._unlink_locked(head)
            self._advance_head_locked(head, nxt)

    def _settle_after_locked(self) -> None:
        """Settle the head after a change was made: a failure is left to the next call that needs the head."""
        try:
            self._settle_head_locked()
        except Exception:
            pass  # (OSError: _first_locked tries again, before that call changes anything, and reports it)

    def _settle_locked(self, seg: Segment) -> None:
        """Delete a segment before the head once every item in it is deleted."""
        if seg.out or seg is self._head or self._lingering.get(seg.number) is not seg:
            return
        del self._lingering[seg.number]
        self._unlink_locked(seg)

    def _unlink_locked(self, seg: Segment) -> None:
        """Delete a used segment file. Never raises: a failed delete is retried with the next sync."""
        seg.drop()  # (not trimmed: it goes)
        self._doomed.append(seg.path)  # a used segment found again after a crash is deleted at open
        if self._turbo:
            self._background_locked()
        else:
            self._dir_dirty = True
            try:
                self._doomed.extend(_finish_background([], self._doomed_now())[1])
            except OSError:  # (no sync ran: only unlinks)
                pass

    def _doomed_now(self) -> list[str]:
        doomed, self._doomed = self._doomed, []
        return doomed

    def _background_locked(self) -> None:
        """Hand turbo mode's deferred work to the background thread, or do it now if there is none."""
        waiting = len(self._rolled) + len(self._doomed)
        if waiting >= _BACKGROUND_MAX or (self._syncer is None and waiting >= _BACKGROUND_BATCH):
            self._finish_background_locked()
        elif self._syncer is not None and waiting >= _BACKGROUND_BATCH:
            self._syncer_wake.set()

    def _take_background_locked(self) -> tuple[list[str], list[str]]:
        rolled, self._rolled = self._rolled, []
        doomed, self._doomed = self._doomed, []
        return rolled, doomed

    def _requeue_background_locked(self, rolled: list[str], doomed: list[str], synced: Sequence[str] = ()) -> None:
        """After _finish_background: seal what it synced, keep what it could not do for the next time."""
        if synced:
            self._seal_synced_locked(synced)
        self._rolled[:0] = rolled
        self._doomed[:0] = doomed
        if doomed:
            self._dir_dirty = True

    def _finish_background_locked(self) -> None:
        """Sync the rolled files and delete the doomed ones now; a failed sync poisons the handle."""
        try:
            left = _finish_background(*self._take_background_locked())
        except _FailedSync as failed:
            raise self._sync_failed_locked(failed.error) from failed.error
        self._requeue_background_locked(*left)
        self._dir_dirty = True

    def _open_segments(self) -> list[Segment]:
        """The segments with an open file, oldest first, each once."""
        segs = [self._lingering[n] for n in sorted(self._lingering)]
        segs.append(self._head)
        if self._tail is not self._head:
            segs.append(self._tail)
        return segs

    def _quarantine_head_locked(self) -> None:
        """Report the damage of the head, whose items are all out or taken, go on with the next segment.

        The damaged end of the head's file was moved aside to ``*.corrupt``
        when it became the head (Segment.read_back), so its file holds only
        good records: it stays while items of it are out (leased or released),
        like any used head. Raises CorruptedError (or OSError, nothing changed,
        if the next segment cannot be opened).
        """
        head = self._head
        damage = head.damage
        assert damage is not None
        head.damage = None
        try:
            nxt = self._next_head_locked(head)
        except BaseException:
            head.damage = damage
            raise
        if head.out:
            self._lingering[head.number] = head
        else:
            self._unlink_locked(head)
        self._advance_head_locked(head, nxt)
        self._settle_after_locked()
        raise CorruptedError(head.path, damage.offset, damage.reason)

    def _roll_locked(self, new: Segment | None = None) -> None:
        """Start a new tail segment (``new``, made beforehand, or made here first) after a full one.

        Safe mode syncs the full one (a failed sync poisons the handle).
        Turbo mode syncs it in the background, within ``max_delay`` (at once
        when a batch is waiting).
        """
        old = self._tail
        if new is None:
            new = Segment.create(self.path, old.number + 1, self._file_mode)  # first: if this fails, nothing changed
        self._dir_dirty = True
        sealable = old is not self._head and self._seals
        if old.fd >= 0 and old.dirty and not self._turbo:
            try:
                _fs.datasync(old.fd)
            except OSError as exc:
                new.drop()
                raise self._sync_failed_locked(exc) from exc
            old.dirty = False
        if sealable and not self._turbo:
            self._seal_locked(old)  # after the sync of everything before it (turbo: once it is synced)
        if old is not self._head:
            try:
                old.trim()  # drop its reserved room
            except OSError:
                pass  # the room stays (zeros after the last record); the next open cuts it
        if old.fd >= 0 and old.dirty and self._turbo:
            self._rolled.append(old.path)
            if sealable:
                self._unsealed[old.path] = (old.added, old.end)
            old.dirty = False
            self._background_locked()
        if old is not self._head:
            try:
                old.close()
            except OSError:
                pass  # its fd is closed either way
            self._middle.append(old.number)
            live = old.added - old.removed - self._tail_uncounted
            self._tail_uncounted = 0
            if live != self.segment_size:
                self._middle_live[old.number] = live
        self._tail = new

    def _seal_locked(self, seg: Segment) -> None:
        """Store the seal of a full segment that holds only items, all synced (safe mode's roll). Never raises.

        No seal (no room left, say) only means an open after a crash reads the segment.
        """
        if seg.removed or seg.deliveries or seg.fd < 0:
            return
        try:
            seg.reserve(SEAL_SIZE)
        except OSError:
            return
        seg.append(encode_seal(seg.added, seg.end))

    def _seal_synced_locked(self, synced: Sequence[str]) -> None:
        """(Turbo.) Seal the rolled segments that are now synced and still untouched between head and tail.

        Appended through a descriptor of its own, only where the file ends
        where the segment's records ended. Never raises: a seal is a hint.
        """
        for path in synced:
            sealing = self._unsealed.pop(path, None)
            number = int(os.path.basename(path).partition(".")[0])
            if sealing is None or not self._middle or not self._middle[0] <= number <= self._middle[-1]:
                continue  # (not to be sealed, or it is the head or before it by now)
            items, end = sealing
            if not os.path.exists(path):
                continue
            try:
                fd = _fs.open_append(path, self._file_mode)
            except OSError:
                continue
            try:
                if _fs.file_size(fd) == end:
                    _fs.write(fd, encode_seal(items, end))
            except OSError:
                pass
            finally:
                close_fd(fd)

    def _append_locked(self, records: list[bytes], payloads: list[bytes]) -> None:
        """Write item records at the tail, rolling segments as they fill: all or nothing.

        First the room in the tail and every new segment the records need
        (OSError, nothing changed, if there is none), then the stores.
        (enqueue keeps its own copy for one item.)
        """
        total = len(records)
        tail = self._tail
        cuts = self._cuts_locked(records)
        first = cuts[0]
        chunks: list[
            tuple[Segment | None, int, int, bytes]
        ] = []  # (new segment or None for the tail, start, stop, bytes)
        if first:
            chunks.append((None, 0, first, records[0] if first == 1 else b"".join(records[:first])))
        number = tail.number
        try:
            if first:
                tail.reserve(len(chunks[0][3]))
            for start, stop in zip(cuts, cuts[1:], strict=False):
                number += 1
                new = Segment.create(self.path, number, self._file_mode)
                chunks.append((new, start, stop, b"".join(records[start:stop])))
                new.reserve(len(chunks[-1][3]))
        except BaseException:
            for made, _, _, _ in chunks:
                if made is not None:
                    made.drop()
                    try:
                        _fs.unlink(made.path)
                    except OSError:
                        pass  # an empty segment file after the tail holds nothing
            raise
        # The point of no return: stores, and the syncs of rolled segments (safe mode).
        for made, start, stop, chunk in chunks:
            if made is not None:
                self._roll_locked(made)
            tail = self._tail
            tail.append(chunk)
            room = stop - start
            if tail is not self._head:
                pass
            elif room == 1:
                tail.pending.append((tail.added, payloads[start]))
            else:
                tail.pending.extend(zip(range(tail.added, tail.added + room), payloads[start:stop], strict=True))
            tail.added += room
        self._size += total
        self._unfinished_tasks += total
        self._write_seq += 1
        self._wake_takers_locked(total)

    def _cuts_locked(self, records: list[bytes]) -> list[int]:
        """Where ``records`` go: the end index of each segment's run, the current tail's first (maybe empty).

        A segment takes records while it holds fewer than ``segment_size`` and
        its records take fewer than ``segment_bytes`` bytes (so a new one
        takes at least one), as a single enqueue rolls over.
        """
        size, cap, n = self.segment_size, self._byte_cap, len(records)
        tail = self._tail
        added, used, i = tail.added, tail.end, 0
        cuts = []
        if used + sum(map(len, records)) < cap:  # (the common case: the byte bound is far)
            i = min(max(size - added, 0), n) if used < cap else 0
            cuts.append(i)
            while i < n:
                i = min(i + size, n)
                cuts.append(i)
            return cuts
        while True:
            while i < n and added < size and used < cap:
                used += len(records[i])
                added += 1
                i += 1
            cuts.append(i)
            if i >= n:
                return cuts
            added = used = 0

    def _wake_takers_locked(self, count: int) -> None:
        """``count`` items became ready: wake as many takers, and every peeker."""
        if self._waiting_takers:
            self._not_empty.notify(count)
        if self._waiting_peekers:
            self._peekable.notify_all()

    def _first_locked(self) -> tuple[Segment, int, bytes] | None:
        """The next item to hand out, not taken: released items first, then the head's.

        Moves the head on first if it is used up (OSError, nothing changed, if it cannot).
        """
        if self._returned:
            _, index, payload, seg = self._returned[0]
            return seg, index, payload
        head = self._head
        if not head.pending:
            if not self._size or not self._head_done():
                return None
            self._settle_head_locked()
            if self._returned:
                return self._first_locked()
            head = self._head
            if not head.pending:
                return None
        index, payload = head.pending[0]
        return head, index, payload

    def _pop_locked(self, limit: int, raw: bool) -> list[tuple[Segment, int, bytes, Any, bool]]:
        """Take up to ``limit`` ready items out of the ready set (at least one, or raise).

        Returns ``(segment, index, payload, item, in_order)`` each; ``item`` is
        the deserialized item (the payload if ``raw``); ``in_order`` says a
        plain DELETE record deletes it (it is its segment's lowest live item
        once the entries before it are deleted). The items are "out" until the
        caller deletes or leases them (or puts them back with _unpop_locked).
        """
        taken: list[tuple[Segment, int, bytes, Any, bool]] = []
        batch_out: dict[Segment, int] = {}
        loads = self._loads
        while len(taken) < limit:
            try:
                first = self._first_locked()
            except Exception:
                if taken:
                    break  # the next call reports it
                raise
            if first is None:
                if not taken and self._head.damage is not None:
                    self._quarantine_head_locked()
                break
            seg, index, payload = first
            if raw:
                item: Any = payload
            else:
                try:
                    item = loads(payload)
                except Exception as exc:
                    if taken:
                        break  # the next call reports it
                    raise SerializationError(
                        f"cannot deserialize the item at the head of {self.path}: {exc!r}"
                    ) from exc
            if self._returned:
                heapq.heappop(self._returned)
                in_order = False
            else:
                seg.pending.popleft()
                in_order = seg.out == batch_out.get(seg, 0)
                batch_out[seg] = batch_out.get(seg, 0) + 1
                seg.out += 1
            self._size -= 1
            taken.append((seg, index, payload, item, in_order))
        if not taken:
            raise Empty
        if self._waiting_putters:
            self._not_full.notify(len(taken))
        return taken

    def _unpop_locked(self, entries: list[tuple[Segment, int, bytes, Any, bool]]) -> None:
        """Put taken entries back among the ready items, in their order (a write failed)."""
        for seg, index, payload, _, _ in entries:
            heapq.heappush(self._returned, (seg.number, index, payload, seg))
        self._size += len(entries)

    def _store_grouped_locked(self, groups: list[tuple[Segment, bytes]]) -> None:
        """Append records to segments, all or nothing: room is reserved in every one before any store.

        Raises OSError (a full disk, no descriptor) having stored nothing.
        """
        need: dict[Segment, int] = {}
        for seg, records in groups:
            need[seg] = need.get(seg, 0) + len(records)
        for seg, n in need.items():
            seg.reserve(n)
        for seg, records in groups:
            seg.append(records)  # (cannot fail now: the room is there)
        self._write_seq += 1

    def _write_grouped_locked(self, entries: list[Any], record_of: Any) -> None:
        """Write one record per taken entry, one store per segment, all or nothing.

        If there is no room, the entries are put back among the ready items and the error raised.
        """
        groups = [(seg, b"".join([record_of(entry) for entry in group])) for seg, group in by_segment(entries)]
        try:
            self._store_grouped_locked(groups)
        except BaseException:
            self._unpop_locked(entries)
            raise

    def _delete_locked(self, entries: list[tuple[Segment, int, bytes, Any, bool]]) -> list[Any]:
        """Delete taken entries for good (all or nothing); returns their items."""
        self._write_grouped_locked(entries, lambda e: DELETE_MARKER if e[4] else encode_index_record(ACK, e[1]))
        for seg, _, _, _, _ in entries:
            seg.removed += 1
            seg.out -= 1
        for seg in sorted({e[0] for e in entries}, key=by_number):
            self._settle_locked(seg)
        self._settle_after_locked()
        return [e[3] for e in entries]

    def _take_locked(self, limit: int, raw: bool = False) -> list[Any]:
        """Remove and return up to ``limit`` items (payload bytes if ``raw``): at least one, or raise.

        The common case, a head with nothing out and nobody waiting to put, takes a run of
        the head's items with one store of their delete markers: ``dequeue_many(100)`` gives
        1.33x (1.30-1.43) the items/s of the general path below (stress/ab.py, 5 rounds, this
        commit against the one before), 1.4-1.7x single dequeues where it gave 1.04x; what
        is left per item is unpickling and the scan of each segment as it becomes the head. A
        run ends at the end of the head segment; the next segment's run follows, each one
        committed on its own: a failure after the first run ends the batch early (the next
        call reports it), never undoes a run.
        """
        head = self._head
        if self._returned or head.out or self._waiting_putters or self._shutdown or not head.pending:
            return self._delete_locked(self._pop_locked(limit, raw))
        out: list[Any] = []
        loads = self._loads
        while True:
            pending = head.pending
            payloads = [payload for _, payload in islice(pending, limit - len(out))]
            if raw:
                items: list[Any] = payloads
            else:
                items = []
                try:
                    for payload in payloads:
                        items.append(loads(payload))
                except Exception:
                    if not items and not out:
                        return self._delete_locked(self._pop_locked(limit, raw))  # raises SerializationError
                    # (the item that does not deserialize stays at the head: the next call reports it)
            n = len(items)
            if n:
                try:
                    head.store(_delete_markers(n), DELETE)  # (OSError if there is no room: nothing changed)
                except OSError:
                    if out:
                        return out
                    raise
                for _ in range(n):
                    pending.popleft()
                head.removed += n
                self._size -= n
                self._write_seq += 1
                out.extend(items)
            if len(out) >= limit or pending or n < len(payloads):
                return out
            try:
                self._settle_head_locked()  # the head is used up: on to the next segment
            except Exception:
                return out  # (the next call reports it)
            head = self._head
            if self._returned or head.out or not head.pending:
                return out

    def _take_one_locked(self, raw: bool = False) -> Any:
        """``_take_locked(1, raw)[0]``, the common case (no leases, nobody waiting) kept short."""
        head = self._head
        pending = head.pending
        if not pending or head.out or self._returned or self._waiting_putters:
            return self._take_locked(1, raw)[0]
        if raw:
            item = pending[0][1]
        else:
            try:
                item = self._loads(pending[0][1])
            except Exception:
                return self._take_locked(1)[0]  # raises SerializationError with the details
        head.store(UNCOMMITTED_DELETE_MARKER, DELETE)  # (OSError if there is no room: nothing changed)
        pending.popleft()
        head.removed += 1
        self._size -= 1
        self._write_seq += 1
        if not pending:
            self._settle_after_locked()
        return item

    def _peek_locked(self, raw: bool = False) -> Any:
        first = self._first_locked()
        if first is None:
            if self._head.damage is not None:
                self._quarantine_head_locked()
            raise Empty
        if raw:
            return first[2]
        try:
            return self._loads(first[2])
        except Exception as exc:
            raise SerializationError(f"cannot deserialize the item at the head of {self.path}: {exc!r}") from exc

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
        return self._first_locked() is not None or self._head.damage is not None

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
            rest, rest_crc, _ = ITEM_RESTS[n] or item_header_rest(n)
        elif n > MAX_PAYLOAD:
            raise SerializationError(f"item of {n} bytes is over the {MAX_PAYLOAD}-byte limit")
        else:
            rest, rest_crc, _ = item_header_rest(n)
        return payload, CRC_FIELD.pack(crc32(payload, rest_crc)) + rest + payload

    # ------------------------------------------------------------ syncing

    def _sync(self, upto: int | None) -> None:
        """Return once every write numbered ``upto`` or earlier (all, if None) is on stable storage.

        Raises SyncError if a sync failed (this one or an earlier one).
        """
        self._commit.wait(self, upto)

    # The group-commit Writer protocol (_commit.py); not for users.

    def _newest_write(self) -> int:
        return self._write_seq

    def _flush(self) -> int | None:
        """Sync all writes made so far; returns the last write number covered (None if closed).

        OSError if a sync failed (GroupCommit then poisons the handle).
        """
        in_place = []
        with self._mutex:
            if self._closed:
                return None
            target = self._write_seq
            rolled, doomed = self._take_background_locked()
            fds = []
            for seg in self._open_segments():
                if seg.dirty and seg.fd >= 0:
                    try:
                        fds.append(_fs.dup(seg.fd))  # synced without the mutex: writers go on meanwhile
                    except OSError:
                        in_place.append(seg.fd)  # no descriptor free: synced here, holding the mutex
                    seg.dirty = False
            dir_dirty, self._dir_dirty = self._dir_dirty or bool(doomed), False
            for fd in in_place:
                _fs.datasync(fd)
        try:
            try:
                left = _finish_background(rolled, doomed)  # needs no mutex
            except _FailedSync as failed:
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
                self._requeue_background_locked(*left)
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
        for cond in (self._not_empty, self._peekable, self._not_full, self._all_tasks_done, self._lease_timer):
            cond.notify_all()

    # -------------------------------------------------------------- the API

    def enqueue(self, item: Any) -> None:
        """Add ``item`` at the tail without blocking.

        Raises Full if the queue is at its ``maxsize``, SerializationError if
        the item cannot be serialized (the queue is unchanged), ClosedError
        after close(). Durable on return in safe mode; in the OS in turbo mode.
        """
        # _serialize(), inlined for the common case (pickle, small item): a call costs 3% here.
        if self._dumps is None:
            try:
                payload = _pickle_dumps(item, _PROTOCOL)
            except Exception:
                payload, record = self._serialize(item)  # raises SerializationError
            n = len(payload)
            if n < SMALL:  # the record as its store writes it first: type 0 (see _format.TYPE_OFFSET)
                _, rest_crc, rest0 = ITEM_RESTS[n] or item_header_rest(n)
                record = _pack_crc(crc32(payload, rest_crc)) + rest0 + payload
                body = b""
            else:  # a large item: pickled once, its payload copied once (into the map, as the body)
                if n > MAX_PAYLOAD:
                    raise SerializationError(f"item of {n} bytes is over the {MAX_PAYLOAD}-byte limit")
                _, rest_crc, rest0 = item_header_rest(n)
                record = _pack_crc(crc32(payload, rest_crc)) + rest0
                body = payload
        else:
            payload, record = self._serialize(item)
            record = uncommitted(record)
            body = b""
        with self._mutex:
            if self._closed:
                self._check_open()
            if self._shutdown:
                self._check_shutdown_locked(take=False)
            if self.maxsize > 0 and self._size + len(self._leases) >= self.maxsize:
                raise Full
            # _append_locked([record], [payload]) for one item, inlined: a call costs 5% of an enqueue.
            tail = self._tail
            if tail.added >= self.segment_size or tail.end >= self._byte_cap:
                self._roll_locked()
                tail = self._tail
            tail.store(record, ITEM, body)
            if tail is self._head:
                tail.pending.append((tail.added, payload))
            tail.added += 1
            self._size += 1
            self._unfinished_tasks += 1
            self._write_seq += 1
            if self._waiting_takers or self._waiting_peekers:
                self._wake_takers_locked(1)
            if self._turbo:
                return
            seq = self._write_seq
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
        payloads, records = [], []
        for item in items:
            payload, record = self._serialize(item)
            payloads.append(payload)
            records.append(record)
        if not records:
            return
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=False)
            if self.maxsize > 0 and self._size + len(self._leases) + len(records) > self.maxsize:
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
            if self._shutdown:
                self._check_shutdown_locked(take=True)
            item = self._take_one_locked()
            if self._turbo:
                return item
            seq = self._write_seq
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
        return self._take(max_items, False, None, raw=False)

    def peek(self) -> Any:
        """Return the item at the head without removing it; Empty if there is none."""
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
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
        check_timeout(timeout)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            self._wait_locked(self._peekable, self._has_item, timeout, "_waiting_peekers", Empty)
            return self._peek_locked()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: remove and return the head item.

        With ``block`` true, wait up to ``timeout`` seconds (None: forever) and
        raise Empty on timeout; with ``block`` false, raise Empty at once
        (``timeout`` is ignored). ClosedError if closed, before or while waiting.
        """
        items = self._take(1, block, timeout, raw=False)
        if not items:
            raise Empty
        return items[0]

    def _take(self, max_items: int, block: bool, timeout: float | None, raw: bool) -> list[Any]:
        """Remove up to ``max_items`` items (payloads if ``raw``), with one sync.

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
            items = [self._take_one_locked(raw)] if max_items == 1 else self._take_locked(max_items, raw)
            if self._turbo:
                return items
            seq = self._write_seq
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
        payload, record = self._serialize(item)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=False)
            if not self._has_room():
                if not block:
                    raise Full
                self._wait_locked(self._not_full, self._has_room, timeout, "_waiting_putters", Full)
            self._append_locked([record], [payload])
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)

    def _has_room(self) -> bool:
        return not 0 < self.maxsize <= self._size + len(self._leases)

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
            return 0 if self._shutdown == _SHUT_NOW else self._size

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
                self._tasks_done_locked(self._size)
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
            return self._head.number, self._tail.number

    # ------------------------------------------------- serialized items (for ProcessSafeDQue)
    # The owner process stores and returns payload bytes; its clients serialize.

    def _put_payloads(self, payloads: list[bytes], block: bool = False, timeout: float | None = None) -> None:
        """Like ``put``/``enqueue_many`` for already serialized items: all or nothing."""
        if block:
            check_timeout(timeout)
        records = [self._payload_record(payload) for payload in payloads]
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
            seq = self._write_seq
        self._sync(seq)

    @staticmethod
    def _payload_record(payload: bytes) -> bytes:
        if type(payload) is not bytes:
            raise TypeError(f"payloads must be bytes, not {type(payload).__name__}")
        if len(payload) > MAX_PAYLOAD:
            raise SerializationError(f"item of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
        return encode_item(payload)

    def _room_for(self, count: int) -> bool:
        """Room for ``count`` more items under ``maxsize`` (a batch larger than it fits an empty queue)."""
        maxsize = self.maxsize
        if maxsize <= 0:
            return True
        used = self._size + len(self._leases)
        return used + count <= maxsize or (count > maxsize and not used)

    def _take_payloads(self, max_items: int, block: bool = False, timeout: float | None = None) -> list[bytes]:
        """Remove up to ``max_items`` payloads; [] when empty and not blocking; Empty on timeout."""
        if type(max_items) is not int or max_items < 1:
            check_int(max_items, "max_items", 1)  # the full check: raises unless an int subclass
        return self._take(max_items, block, timeout, raw=True)

    def _peek_payload(self, block: bool = False, timeout: float | None = None) -> bytes:
        """The head payload, not removed; Empty if none (after waiting, if ``block``)."""
        if block:
            check_timeout(timeout)
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            if block:
                self._wait_locked(self._peekable, self._has_item, timeout, "_waiting_peekers", Empty)
            payload: bytes = self._peek_locked(raw=True)
            return payload

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
        if self._max_delay == float("inf"):
            self._stop_syncer()  # the OS decides; full segments are synced in batches by the callers
        else:
            self._start_syncer()  # (a running one picks up the new max_delay at its next period)

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
            target=_sync_periodically,
            args=(weakref.ref(self), self._syncer_stop, self._syncer_wake),
            name=f"dque-sync {self.name}",
            daemon=True,
        )
        self._syncer.start()

    def _stop_syncer(self) -> None:
        syncer, self._syncer = self._syncer, None
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
            for seg in self._open_segments():
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
                for cond in (self._not_empty, self._peekable, self._not_full, self._all_tasks_done, self._lease_timer):
                    cond.notify_all()
                try:
                    if self._poisoned is None:
                        self._close_files_locked()
                except BaseException as exc:
                    error = exc
                finally:
                    for seg in self._open_segments():
                        try:
                            seg.close()
                        except OSError:
                            pass  # its fd is closed either way; its reserved room is cut at the next open
            if self._expirer is not None:
                _join(self._expirer)  # (it sees _closed and returns)
            self._stop_syncer()  # (one started by a turbo_on racing this close)
        finally:
            if not self._released:
                self._released = True
                self._lock.release()
        if error is not None:
            raise error

    def _close_files_locked(self) -> None:
        """Close's work on the files: the last syncs and the clean-close marker. SyncError if a sync fails."""
        try:
            rolled, doomed = self._take_background_locked()
            try:
                left_rolled, _, synced = _finish_background(rolled, doomed)
            except _FailedSync as failed:
                raise failed.error from None
            self._seal_synced_locked(synced)
            for seg in self._open_segments():
                try:
                    seg.trim()  # drop the room reserved for records
                except OSError:
                    pass  # zeros after the last record: the next open cuts them
                if seg.dirty and seg.fd >= 0:
                    _fs.datasync(seg.fd)
                    seg.dirty = False
            if self._dir_dirty or doomed:
                _fs.sync_dir(self.path)
                self._dir_dirty = False
            if left_rolled:  # (a full segment that could not be opened to be synced)
                raise OSError(errno.EMFILE, f"could not open {left_rolled[0]} to sync it")
        except OSError as exc:
            raise self._sync_failed_locked(exc) from exc
        try:
            _fs.write_file_durably(os.path.join(self.path, CLEAN_NAME), self._clean_marker_locked())
        except OSError:
            pass  # no marker: the next open reads every segment to count the items

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
        for name in ("_not_empty", "_peekable", "_not_full", "_all_tasks_done", "_lease_timer"):
            setattr(self, name, threading.Condition(self._mutex))
        self._commit = GroupCommit(self.path)
        self._syncer = self._expirer = None  # (threads do not survive a fork)

    def __repr__(self) -> str:
        state = "closed" if self._released else "poisoned" if self._poisoned else f"size={self._size}"
        mode = "turbo" if self._turbo else "safe"
        return f"<{type(self).__name__} {self.path!r} {state} {mode} segment_size={self.segment_size}>"


@lru_cache(maxsize=64)
def _delete_markers(n: int) -> bytes:
    """``n`` delete markers as a store writes them first (the first one's type byte 0)."""
    return UNCOMMITTED_DELETE_MARKER + DELETE_MARKER * (n - 1)


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


class _FailedSync(Exception):
    """A sync in _finish_background failed (OSError ``error``), as against an open or unlink that failed."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _finish_background(rolled: list[str], doomed: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Sync the rolled files, then delete the doomed ones (with or without the mutex).

    A rolled file is synced through a new descriptor (fdatasync flushes the
    file, whichever descriptor wrote it); one already moved aside or deleted
    needs nothing. Returns the paths it could not get to (no descriptor free,
    a delete that failed), for later, and the rolled ones it synced. Raises
    _FailedSync if a sync failed.
    """
    left_rolled: list[str] = []
    left_doomed: list[str] = []
    synced: list[str] = []
    for path in rolled:
        if not os.path.exists(path):
            continue
        try:
            fd = _fs.open_rw(path)
        except FileNotFoundError:
            continue
        except OSError:
            left_rolled.append(path)
            continue
        try:
            _fs.datasync(fd)
        except OSError as exc:
            raise _FailedSync(exc) from exc
        finally:
            close_fd(fd)
        synced.append(path)
    for path in doomed:
        try:
            _fs.unlink(path)
        except FileNotFoundError:
            pass  # already gone (a crash between the unlink and the list, or deleted by hand)
        except OSError:
            left_doomed.append(path)
    return left_rolled, left_doomed, synced


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
                work = q._take_background_locked()
            try:
                left = _finish_background(*work)  # without the mutex: callers go on meanwhile
            except _FailedSync as failed:
                with q._mutex:
                    q._sync_failed_locked(failed.error)  # the next call raises it
                return
            with q._mutex:
                q._requeue_background_locked(*left)
            del q
        if stop.is_set():
            return
        q = ref()
        if q is None or q._closed:
            return
        try:
            if q._write_seq != q._commit.synced or q._rolled or q._doomed:
                q._sync(None)
        except SyncError:
            return  # the handle is poisoned: every later call raises it
        del q
