"""Acknowledged delivery: the lease, ack and release half of ``DQue``.

A mixin of ``DQue`` (``_queue.py``), kept apart because it is one idea: an
item handed out under a lease stays in its segment (a LEASE record counts the
hand-out) until an ACK record deletes it; a release only puts it back among
the ready items (``_returned``, ahead of the head's); a segment before the head
stays open ("lingering") while one of its items is out. Same locking rules as
``_queue.py``: public methods take ``_mutex``; ``*_locked`` helpers assume it.
"""

from __future__ import annotations

import heapq
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from time import monotonic
from typing import TYPE_CHECKING, Any, cast

from ._args import check_int, check_timeout
from ._format import ACK, LEASE, TYPE_OFFSET, encode_index_record, uncommitted
from ._lease import Lease
from ._segment import Segment, by_segment
from .errors import Empty, LeaseError

if TYPE_CHECKING:
    from ._queue import DQue
    from ._serializers import Serializer

_log = logging.getLogger("dque")

DEAD_LETTER_SUFFIX = ".dead"
INDEX_RECORD_SIZE = 16  # a LEASE or ACK record


class Leasing:
    """The lease half of DQue (see the module docstring); not usable on its own."""

    if TYPE_CHECKING:  # What this half uses of DQue (defined in _queue.py): its interface, for the type checker.
        path: str
        name: str
        dirpath: str
        segment_size: int
        max_deliveries: int
        group_access: bool
        _serializer: Serializer
        _loads: Callable[[bytes], Any]
        _mutex: threading.Lock
        _not_empty: threading.Condition
        _not_full: threading.Condition
        _lease_timer: threading.Condition
        _closed: bool
        _shutdown: int
        _turbo: bool
        _size: int
        _write_seq: int
        _unfinished_tasks: int
        _waiting_putters: int
        _head: Segment
        _returned: list[tuple[int, int, bytes, Segment]]
        _leases: dict[int, LeaseState]
        _owner_leases: dict[Any, set[int]]
        _expiries: list[tuple[float, int]]
        _expirer: threading.Thread | None
        _lease_ids: Iterator[int]
        _dead_letter_error: Exception | None

        def _check_open(self) -> None: ...
        def _check_shutdown_locked(self, take: bool) -> None: ...
        def _has_item(self) -> bool: ...
        def _wait_locked(
            self, cond: threading.Condition, ready: Any, timeout: float | None, counter: str, error: type
        ) -> None: ...
        def _pop_locked(self, limit: int, raw: bool) -> list[tuple[Segment, int, bytes, Any, bool]]: ...
        def _write_grouped_locked(self, entries: list[Any], record_of: Any) -> None: ...
        def _store_grouped_locked(self, groups: list[tuple[Segment, bytes]]) -> None: ...
        def _settle_locked(self, seg: Segment) -> None: ...
        def _settle_after_locked(self) -> None: ...
        def _tasks_done_locked(self, count: int) -> None: ...
        def _wake_takers_locked(self, count: int) -> None: ...
        def _sync(self, upto: int | None) -> None: ...

    # --------------------------------------------------------------- leases

    def _lease_locked(self, entries: list[Any], ttl: float | None, owner: Any) -> list[LeaseState]:
        """Hand out taken entries under leases."""
        self._write_grouped_locked(entries, lambda e: encode_index_record(LEASE, e[1]))  # all or nothing
        deadline = None if ttl is None else monotonic() + ttl
        out = []
        for seg, index, payload, item, _ in entries:
            deliveries = seg.deliveries[index] = seg.deliveries.get(index, 0) + 1
            lease_id = next(self._lease_ids)
            lease = self._leases[lease_id] = new_lease(self, lease_id, item, deliveries, seg, index, payload, owner)
            if owner is not None:
                self._owner_leases.setdefault(owner, set()).add(lease_id)
            if deadline is not None:
                if not self._expiries or deadline < self._expiries[0][0]:
                    self._lease_timer.notify()
                heapq.heappush(self._expiries, (deadline, lease_id))
            out.append(lease)
        if deadline is not None:
            self._start_expirer()
        self._settle_after_locked()
        return out

    def _settle_lease_locked(self, lease_id: Any) -> tuple[Segment, int, bytes]:
        """End an outstanding lease; returns where its item is: ``(segment, index, payload)``."""
        _check_lease_id(lease_id)
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            raise LeaseError(f"lease {lease_id!r} is not outstanding (unknown, acked, released or expired)")
        if lease.owner is not None:
            owned = self._owner_leases.get(lease.owner)
            if owned is not None:
                owned.discard(lease_id)
                if not owned:
                    del self._owner_leases[lease.owner]
        where = seg, index, _ = lease.seg, lease.index, lease.payload
        seg.deliveries[index] = lease.deliveries  # for the next hand-out and the dead-letter check
        lease.seg = lease.payload = None  # type: ignore[assignment]  # a Lease kept after it ended keeps nothing alive
        return where

    def _ack_locked(self, lease_ids: list[int]) -> None:
        for lease_id in lease_ids:
            _check_lease_id(lease_id)
        unknown = [i for i in lease_ids if i not in self._leases]
        if unknown or len(set(lease_ids)) != len(lease_ids):
            raise LeaseError(f"lease(s) {unknown or lease_ids!r} not outstanding (unknown, acked, released or expired)")
        leases = sorted((self._leases[i] for i in lease_ids), key=lambda lease: (lease.seg.number, lease.index))
        groups = by_segment([(lease.seg, lease) for lease in leases])
        # All or nothing: room in every segment first (OSError, nothing changed, if there is none).
        self._store_grouped_locked(
            [(seg, b"".join([encode_index_record(ACK, lease.index) for _, lease in group])) for seg, group in groups]
        )
        self._settle_acked_locked(leases)

    def _settle_acked_locked(self, leases: list[LeaseState]) -> None:
        """Account for leases whose ACK records were written."""
        segs = set()
        for lease in leases:
            seg, _, _ = self._settle_lease_locked(lease.id)
            seg.removed += 1
            seg.out -= 1
            segs.add(seg)
        self._tasks_done_locked(len(leases))
        for seg in sorted(segs, key=by_number):
            self._settle_locked(seg)
        if self._waiting_putters:
            self._not_full.notify(len(leases))

    def _release_locked(self, lease_id: int) -> None:
        seg, index, payload = self._settle_lease_locked(lease_id)
        if self.max_deliveries and seg.deliveries.get(index, 0) >= self.max_deliveries:
            if self._dead_letter_locked(seg, index, payload):
                return
        heapq.heappush(self._returned, (seg.number, index, payload, seg))
        self._size += 1
        self._wake_takers_locked(1)

    def _release_owner_locked(self, owner: Any) -> int:
        ids = sorted(self._owner_leases.get(owner, ()))
        for lease_id in ids:
            self._release_locked(lease_id)  # (never raises for a lease outstanding)
        return len(ids)

    def _screen_locked(self, seg: Segment) -> None:
        """Move the items of a newly loaded head that were handed out max_deliveries times."""
        keep: deque[tuple[int, bytes]] = deque()
        for index, payload in seg.pending:
            if seg.deliveries.get(index, 0) >= self.max_deliveries:
                seg.out += 1
                self._size -= 1
                if self._dead_letter_locked(seg, index, payload):
                    continue
                seg.out -= 1
                self._size += 1
            keep.append((index, payload))
        seg.pending = keep

    def _dead_letter_locked(self, seg: Segment, index: int, payload: bytes) -> bool:
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
            dead = cast("type[DQue]", type(self)).new_or_open(
                self.name + DEAD_LETTER_SUFFIX,
                self.dirpath,
                segment_size=self.segment_size,
                serializer=self._serializer,
                group_access=self.group_access,
            )
            try:
                dead._put_payloads([payload])  # durable on return: the dead-letter queue is in safe mode
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
        seg.append(ack)
        self._write_seq += 1
        seg.removed += 1
        seg.out -= 1
        self._tasks_done_locked(1)
        self._settle_locked(seg)
        if self._waiting_putters:
            self._not_full.notify()
        return True

    def _start_expirer(self) -> None:
        if self._expirer is None:
            self._expirer = threading.Thread(
                target=_expire_leases, args=(weakref.ref(self),), name=f"dque-leases {self.name}", daemon=True
            )
            self._expirer.start()

    # --------------------------------------------------------------- leases

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
            # The common case kept short: the head's next item, nobody waiting to put.
            # (The mutex is taken without ``with``, which costs twice as much.)
            lease = None
            self._mutex.acquire()
            try:
                head = self._head
                pending = head.pending
                if (
                    pending
                    and not self._closed
                    and not self._shutdown
                    and not self._returned
                    and not self._waiting_putters
                ):
                    index, payload = pending[0]
                    try:
                        item = self._loads(payload)
                    except Exception:
                        pass  # the general path reports it
                    else:
                        # head.store(UNCOMMITTED_LEASES[index], LEASE), inlined (the calls cost
                        # 5% of a lease + ack round); the protocol is Segment.store's.
                        pos = head.end
                        if pos + INDEX_RECORD_SIZE > head.cap:
                            head.reserve(INDEX_RECORD_SIZE)
                            pos = head.end
                        m = head.map
                        m[pos : pos + INDEX_RECORD_SIZE] = UNCOMMITTED_LEASES[index]
                        m[pos + TYPE_OFFSET] = LEASE
                        head.end = pos + INDEX_RECORD_SIZE
                        head.dirty = True
                        pending.popleft()
                        head.out += 1
                        self._size -= 1
                        self._write_seq += 1
                        # (head.deliveries gets the new count if the lease ends without an ack)
                        deliveries = head.deliveries.get(index, 0) + 1
                        lease_id = next(self._lease_ids)
                        # new_lease(...), inlined: the call would cost 3% of a lease + ack.
                        lease = self._leases[lease_id] = _new(LeaseState)
                        lease.item = item
                        lease.id = lease_id
                        lease.deliveries = deliveries
                        lease._queue = self
                        lease._settled = False
                        lease.seg = head
                        lease.index = index
                        lease.payload = payload
                        lease.owner = None
                        if not pending:
                            self._settle_after_locked()
                        if self._turbo:
                            return lease
                        seq = self._write_seq
            finally:
                self._mutex.release()
            if lease is not None:
                self._sync(seq)
                return lease
        return self._lease_items(1, block, timeout, ttl, raw=False, raise_empty=True)[0]

    def lease_many(self, max_items: int, ttl: float | None = None) -> list[Lease]:
        """Lease up to ``max_items`` ready items without blocking (maybe none), with one sync."""
        check_int(max_items, "max_items", 0)
        if max_items == 0:
            self._check_open()
            return []
        return list(self._lease_items(max_items, False, None, ttl, raw=False))

    def _lease_payloads(
        self, max_items: int, block: bool, timeout: float | None, ttl: float | None, raw: bool = True, owner: Any = None
    ) -> list[tuple[int, Any, int]]:
        """``(lease id, payload or item, deliveries)`` for up to ``max_items`` items; [] if none and not block."""
        leases = self._lease_items(max_items, block, timeout, ttl, raw, owner)
        return [(lease.id, lease.item, lease.deliveries) for lease in leases]

    def _lease_items(
        self,
        max_items: int,
        block: bool,
        timeout: float | None,
        ttl: float | None,
        raw: bool = True,
        owner: Any = None,
        raise_empty: bool = False,
    ) -> list[LeaseState]:
        """Leases of up to ``max_items`` items (their payloads if ``raw``); [] if none and not block."""
        check_int(max_items, "max_items", 1)
        if block:
            check_timeout(timeout)
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
                raise TypeError(f"ttl must be a number or None, not {type(ttl).__name__}")
            if not ttl > 0:
                raise ValueError("ttl must be > 0")
        with self._mutex:
            self._check_open()
            self._check_shutdown_locked(take=True)
            if block:
                self._wait_locked(self._not_empty, self._has_item, timeout, "_waiting_takers", Empty)
            elif not self._has_item():
                if raise_empty:
                    raise Empty
                return []
            leased = self._lease_locked(self._pop_locked(max_items, raw), ttl, owner)
            seq, turbo = self._write_seq, self._turbo
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
            lease.ack()
            lease._settled = False  # acked by id, not through the object: its ``with`` exit still says so

    def ack_many(self, lease_ids: Iterable[int]) -> None:
        """Ack several leases, all or nothing, with one sync."""
        ids = list(lease_ids)
        with self._mutex:
            self._check_open()
            if not ids:
                return
            self._ack_locked(ids)
            seq, turbo = self._write_seq, self._turbo
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
            for lease_id in ids:
                _check_lease_id(lease_id)
                if lease_id not in self._leases or ids.count(lease_id) > 1:
                    raise LeaseError(f"lease {lease_id!r} is not outstanding (unknown, acked, released or expired)")
            for lease_id in ids:
                self._release_locked(lease_id)
            seq, turbo = self._write_seq, self._turbo
        if not turbo:
            self._sync(seq)  # a move to the dead-letter queue wrote an ack

    def _release_owner(self, owner: Any) -> int:
        """Release every lease taken on behalf of ``owner`` (a ProcessSafeDQue client); returns how many."""
        with self._mutex:
            if self._closed:
                return 0
            return self._release_owner_locked(owner)

    def in_flight(self) -> int:
        """The number of items leased and not yet acked or released."""
        with self._mutex:
            self._check_open()
            return len(self._leases)


def _check_lease_id(lease_id: Any) -> None:
    if isinstance(lease_id, bool) or not isinstance(lease_id, int):
        raise TypeError(f"a lease id is an int, not {type(lease_id).__name__}")


def by_number(seg: Segment) -> int:
    return seg.number


class LeaseState(Lease):
    """A lease as its queue keeps it while it is outstanding: the Lease handed out, and where its item is."""

    __slots__ = ("seg", "index", "payload", "owner")
    seg: Segment  # where the item is (None, unchecked, once the lease ended: it keeps nothing alive)
    index: int
    payload: bytes
    owner: Any  # the ProcessSafeDQue client process it was taken for, or None

    def ack(self) -> None:
        """Delete the item for good (durable on return in safe mode). LeaseError if not outstanding."""
        # The queue's side of it is here, not in a method of the queue: one call less for the
        # most frequent call after a take (same rules as Leasing: the mutex guards all of it).
        q = cast("DQue", self._queue)
        seq = None
        q._mutex.acquire()  # (not ``with``, which costs twice as much)
        try:
            if not q._closed and not q._waiting_putters and q._leases.pop(self.id, None) is self:
                # The common case kept short; ack_many handles errors and waiting putters.
                seg = self.seg
                pos = seg.end  # seg.store(UNCOMMITTED_ACKS[self.index], ACK), inlined as in lease()
                if pos + INDEX_RECORD_SIZE > seg.cap:
                    try:
                        seg.reserve(INDEX_RECORD_SIZE)
                    except BaseException:
                        q._leases[self.id] = self  # nothing written: still outstanding
                        raise
                    pos = seg.end
                m = seg.map
                m[pos : pos + INDEX_RECORD_SIZE] = UNCOMMITTED_ACKS[self.index]
                m[pos + TYPE_OFFSET] = ACK
                seg.end = pos + INDEX_RECORD_SIZE
                seg.dirty = True
                self.seg = self.payload = None  # type: ignore[assignment]  # as _settle_lease_locked
                self._settled = True
                seg.removed += 1
                seg.out -= 1
                q._write_seq += 1
                if q._unfinished_tasks > 1:
                    q._unfinished_tasks -= 1
                else:
                    q._tasks_done_locked(1)
                if not seg.out and seg is not q._head:
                    q._settle_locked(seg)
                if q._turbo:
                    return
                seq = q._write_seq
        finally:
            q._mutex.release()
        if seq is None:
            q.ack_many([self.id])
        else:
            q._sync(seq)
        self._settled = True


_new = object.__new__


def new_lease(
    queue: Leasing, lease_id: int, item: Any, deliveries: int, seg: Segment, index: int, payload: bytes, owner: Any
) -> LeaseState:
    """``LeaseState(queue, lease_id, item, deliveries)`` with its place, for less than a Python ``__init__`` costs."""
    lease = _new(LeaseState)
    lease.item = item
    lease.id = lease_id
    lease.deliveries = deliveries
    lease._queue = queue
    lease._settled = False
    lease.seg = seg
    lease.index = index
    lease.payload = payload
    lease.owner = owner
    return lease


class _IndexRecords(dict[int, bytes]):
    """Item index -> the LEASE or ACK record naming it, as a store writes it first (type 0)."""

    def __init__(self, rtype: int) -> None:
        super().__init__()
        self.rtype = rtype

    def __missing__(self, index: int) -> bytes:
        record = uncommitted(encode_index_record(self.rtype, index))
        if index < 65536:  # (a bound on the memory kept, as encode_index_record's)
            self[index] = record
        return record


UNCOMMITTED_LEASES = _IndexRecords(LEASE)
UNCOMMITTED_ACKS = _IndexRecords(ACK)


def _expire_leases(ref: weakref.ref[Leasing]) -> None:
    """Release leases whose ttl ran out; wakes for the earliest deadline (at least once a second)."""
    while True:
        q = ref()
        if q is None:
            return
        with q._mutex:
            if q._closed:
                return
            now = monotonic()
            while q._expiries and q._expiries[0][0] <= now:
                _, lease_id = heapq.heappop(q._expiries)
                if lease_id in q._leases:
                    q._release_locked(lease_id)  # (never raises for a lease outstanding)
            wait = min(1.0, q._expiries[0][0] - now) if q._expiries else 1.0
            q._lease_timer.wait(wait)
        del q
