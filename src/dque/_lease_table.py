"""``LeaseTable``: the outstanding leases of one open queue, and the thread that expires them.

A lease names an item that is out of the queue (``SegmentStore``: it stays in
its segment until acked) and the client process it was taken for (a
``ProcessSafeDQue`` client, or None); with a ttl it has a deadline. The
table holds them by id, by owner and by deadline; what a lease's end does to
the queue (an ACK record, or the item given back) is its queue's, told
through :class:`ExpiryHost` when a ttl runs out.

Guarded by its queue's mutex: every method expects it held, and the expiry
thread takes it (``timer`` is a Condition on it).
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import weakref
from time import monotonic
from typing import Any, Protocol

from ._lease import Lease
from ._segment import Segment
from .errors import LeaseError


class ExpiryHost(Protocol):
    """The queue, as the expiry thread sees it."""

    def expire_locked(self, lease_ids: list[int]) -> bool:
        """(Holding the mutex.) End these leases, whose ttl ran out; False if the queue is closed (the thread ends)."""


class LeaseState(Lease):
    """A lease as its table keeps it while it is outstanding: the Lease handed out, and where its item is."""

    __slots__ = ("seg", "index", "payload", "owner")
    seg: Segment  # where the item is (None, unchecked, once the lease ended: it keeps nothing alive)
    index: int
    payload: bytes
    owner: Any  # the ProcessSafeDQue client process it was taken for, or None

    def ack(self) -> None:
        """Delete the item for good (durable on return in safe mode). LeaseError if not outstanding."""
        self._queue._ack_lease(self)  # type: ignore[attr-defined]  # (DQue's: one call for the common case)
        self._settled = True


class LeaseTable:
    """The outstanding leases by id, owner and deadline (see the module docstring)."""

    def __init__(self, mutex: threading.Lock) -> None:
        # id -> outstanding lease. Read it freely (under the mutex); change it only through the methods.
        self.outstanding: dict[int, LeaseState] = {}
        self._owned: dict[Any, set[int]] = {}  # owner -> ids of its outstanding leases
        self._expiries: list[tuple[float, int]] = []  # heap of (deadline, lease id); ended ones are skipped
        # Ids: a random start per open, so that an id from before a reopen is unknown after it.
        self._ids = itertools.count(int.from_bytes(os.urandom(6), "little") << 16)
        # Notified when a lease with an earlier deadline appears, and at close: the expiry thread waits here.
        self.timer = threading.Condition(mutex)
        self._expirer: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.outstanding)

    def get(self, lease_id: Any) -> LeaseState | None:
        """The outstanding lease ``lease_id``, or None."""
        return self.outstanding.get(lease_id)

    def add(
        self,
        queue: Any,
        item: Any,
        deliveries: int,
        seg: Segment,
        index: int,
        payload: bytes,
        owner: Any = None,
        deadline: float | None = None,
    ) -> LeaseState:
        """A new outstanding lease on the item at ``seg``/``index`` (``queue``: what ``Lease.ack``/``release`` call)."""
        lease = _new(LeaseState)
        lease.item = item
        lease.id = lease_id = next(self._ids)
        lease.deliveries = deliveries
        lease._queue = queue
        lease._settled = False
        lease.seg = seg
        lease.index = index
        lease.payload = payload
        lease.owner = owner
        self.outstanding[lease_id] = lease
        if owner is not None:
            self._owned.setdefault(owner, set()).add(lease_id)
        if deadline is not None:
            if not self._expiries or deadline < self._expiries[0][0]:
                self.timer.notify()
            heapq.heappush(self._expiries, (deadline, lease_id))
        return lease

    def check(self, lease_ids: list[Any]) -> None:
        """Raise TypeError or LeaseError unless every id is an outstanding lease, each named once."""
        for lease_id in lease_ids:
            check_lease_id(lease_id)
        unknown = [i for i in lease_ids if i not in self.outstanding]
        if unknown or len(set(lease_ids)) != len(lease_ids):
            raise LeaseError(f"lease(s) {unknown or lease_ids!r} not outstanding (unknown, acked, released or expired)")

    def end(self, lease_id: Any) -> LeaseState:
        """End an outstanding lease; returns it, its place (``seg``, ``index``, ``payload``) still set.

        The item's delivery count goes back to its segment (for the next
        hand-out and the dead-letter check). LeaseError if not outstanding.
        """
        check_lease_id(lease_id)
        lease = self.outstanding.pop(lease_id, None)
        if lease is None:
            raise LeaseError(f"lease {lease_id!r} is not outstanding (unknown, acked, released or expired)")
        if lease.owner is not None:
            owned = self._owned.get(lease.owner)
            if owned is not None:
                owned.discard(lease_id)
                if not owned:
                    del self._owned[lease.owner]
        lease.seg.deliveries[lease.index] = lease.deliveries
        return lease

    def end_acked(self, lease: LeaseState) -> None:
        """End ``lease``, outstanding and acked (``end`` without the checks, for an ack's common case)."""
        del self.outstanding[lease.id]
        if lease.owner is not None:
            self._owned[lease.owner].discard(lease.id)
            if not self._owned[lease.owner]:
                del self._owned[lease.owner]
        lease.seg = lease.payload = None  # type: ignore[assignment]  # an ended lease keeps nothing alive

    def owned_by(self, owner: Any) -> list[int]:
        """The ids of ``owner``'s outstanding leases, oldest first."""
        return sorted(self._owned.get(owner, ()))

    def start_expirer(self, host: ExpiryHost, name: str) -> None:
        """Start the thread that ends leases as their ttl runs out (once; it ends when ``host`` closes)."""
        if self._expirer is None:
            self._expirer = threading.Thread(
                target=_expire_leases, args=(weakref.ref(host), self), name=f"dque-leases {name}", daemon=True
            )
            self._expirer.start()

    def expirer(self) -> threading.Thread | None:
        return self._expirer

    def forget_threads(self) -> None:
        """(A forked child: threads do not survive a fork.)"""
        self._expirer = None

    def _due(self, now: float) -> list[int]:
        due = []
        while self._expiries and self._expiries[0][0] <= now:
            _, lease_id = heapq.heappop(self._expiries)
            if lease_id in self.outstanding:
                due.append(lease_id)
        return due

    def _wait(self, now: float) -> float:
        return min(1.0, self._expiries[0][0] - now) if self._expiries else 1.0


def check_lease_id(lease_id: Any) -> None:
    if isinstance(lease_id, bool) or not isinstance(lease_id, int):
        raise TypeError(f"a lease id is an int, not {type(lease_id).__name__}")


_new = object.__new__


def _expire_leases(ref: weakref.ref[ExpiryHost], table: LeaseTable) -> None:
    """End leases whose ttl ran out; wakes for the earliest deadline (at least once a second)."""
    while True:
        host = ref()
        if host is None:
            return
        with table.timer:
            now = monotonic()
            if not host.expire_locked(table._due(now)):
                return
            table.timer.wait(table._wait(now))
        del host
