"""``Lease``: an item handed out until it is acknowledged or released."""

from __future__ import annotations

from typing import Any, Protocol

from .errors import LeaseError


class _Leaser(Protocol):
    def ack(self, lease_id: int) -> None: ...

    def release(self, lease_id: int) -> None: ...


class Lease:
    """An item taken with ``lease()``: invisible to other consumers until acked or released.

    ``item`` is the item, ``id`` the lease's id (for ``q.ack(id)`` and
    ``q.release(id)``), ``deliveries`` how many times the item has been handed
    out under a lease (1 the first time). As a context manager, a clean exit
    acks it and an exception releases it back to the head of the queue.
    """

    __slots__ = ("item", "id", "deliveries", "_queue", "_settled")

    def __init__(self, queue: _Leaser, lease_id: int, item: Any, deliveries: int) -> None:
        self.item = item
        self.id = lease_id
        self.deliveries = deliveries
        self._queue = queue
        self._settled = False

    def ack(self) -> None:
        """Delete the item for good (durable on return in safe mode). LeaseError if not outstanding."""
        self._queue.ack(self.id)
        self._settled = True

    def release(self) -> None:
        """Put the item back at the head, in its original order. LeaseError if not outstanding."""
        self._queue.release(self.id)
        self._settled = True

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._settled:
            return
        if exc_type is None:
            self.ack()
        else:
            try:
                self.release()
            except LeaseError:
                pass  # already expired; do not hide the original exception

    def __repr__(self) -> str:
        return f"<Lease {self.id} deliveries={self.deliveries} item={self.item!r}>"
