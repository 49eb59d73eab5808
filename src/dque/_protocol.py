"""``dque.Queue``: the public protocol every dque backend implements.

``dque.DQue`` (the file engine), ``dque.ProcessSafeDQue`` (its owner
process, shared by many processes) and any other backend are held to it,
statically (mypy) and by one contract suite (``tests/contract/``). Code that
takes a ``dque.Queue`` runs on any of them. Engine-specific calls (turbo
controls, ``segment_numbers``) are not part of it.

A lease id is whatever ``Lease.id`` holds (an int for the file engine); pass
it back unchanged to ``ack``/``release``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, Self, runtime_checkable

from ._lease import Lease

LeaseId = Any  # the file engine's are ints; another backend may use its own ids


@runtime_checkable
class Queue(Protocol):
    """A durable FIFO queue with leases, dead letters and ``queue.Queue``'s API.

    Errors are the ``dque`` ones: Empty, Full, ClosedError (any call after
    ``close()``, and every caller blocked when it ran), SerializationError,
    LeaseError, ShutDown. Every method is safe to call from many threads.
    """

    # ------------------------------------------------------------------ puts

    def enqueue(self, item: Any) -> None:
        """Add ``item`` at the tail without blocking; Full at ``maxsize``, SerializationError (nothing added)."""
        ...

    def enqueue_many(self, items: Iterable[Any]) -> None:
        """Add every item, in order, all or nothing (Full, SerializationError: nothing added)."""
        ...

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``queue.Queue.put``: wait up to ``timeout`` (None: forever) for room if ``block``; Full otherwise."""
        ...

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        ...

    # ----------------------------------------------------------------- takes

    def dequeue(self) -> Any:
        """Remove and return the head item without blocking; Empty if there is none."""
        ...

    def dequeue_many(self, max_items: int) -> list[Any]:
        """Remove and return up to ``max_items`` items from the head, in order, without blocking (maybe [])."""
        ...

    def dequeue_block(self, timeout: float | None = None) -> Any:
        """Remove and return the head item, waiting up to ``timeout`` seconds (None: forever); Empty on timeout."""
        ...

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: wait up to ``timeout`` if ``block``; Empty on timeout, or at once if not ``block``."""
        ...

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        ...

    def peek(self) -> Any:
        """The head item, not removed; Empty if there is none."""
        ...

    def peek_block(self, timeout: float | None = None) -> Any:
        """The head item, not removed, waiting up to ``timeout`` seconds; Empty on timeout."""
        ...

    # ---------------------------------------------------------------- leases

    def lease(self, block: bool = True, timeout: float | None = None, ttl: float | None = None) -> Lease:
        """Take the head item under a lease (waits like ``get``): invisible to others until acked or released.

        ``ttl``: released if not acked in time. ``Lease.deliveries`` counts the
        hand-outs (1 the first time). Unacked leases come back after a crash.
        """
        ...

    def lease_many(self, max_items: int, ttl: float | None = None) -> list[Lease]:
        """Lease up to ``max_items`` ready items, in order, without blocking (maybe [])."""
        ...

    def ack(self, lease_id: LeaseId) -> None:
        """Delete a leased item for good; counts as ``task_done``. LeaseError (no change) if not outstanding."""
        ...

    def ack_many(self, lease_ids: Iterable[LeaseId]) -> None:
        """Ack several leases, all or nothing (LeaseError: none acked)."""
        ...

    def release(self, lease_id: LeaseId) -> None:
        """Put a leased item back ahead of newer items; LeaseError if not outstanding.

        An item handed out ``max_deliveries`` times goes to the dead-letter queue instead.
        """
        ...

    def release_many(self, lease_ids: Iterable[LeaseId]) -> None:
        """Release several leases, all or nothing (LeaseError: none released)."""
        ...

    def in_flight(self) -> int:
        """The number of items leased and not yet acked or released."""
        ...

    # ----------------------------------------------------------------- state

    def size(self) -> int:
        """The number of items ready to be taken (leased ones are not counted)."""
        ...

    def qsize(self) -> int:
        """``size()``."""
        ...

    def __len__(self) -> int:
        """``size()``."""
        ...

    def empty(self) -> bool:
        """``size() == 0``."""
        ...

    def full(self) -> bool:
        """True when ready plus leased items reach ``maxsize`` (never when it is 0)."""
        ...

    @property
    def maxsize(self) -> int:
        """The bound on ready plus leased items; 0: unbounded."""
        ...

    def task_done(self) -> None:
        """Mark one taken item as processed; ValueError if called more times than items were put."""
        ...

    def join(self) -> None:
        """Block until every item put has been taken and marked done (``task_done`` or ``ack``)."""
        ...

    # --------------------------------------------------------- shutdown, close

    def shutdown(self, immediate: bool = False) -> None:
        """``queue.Queue.shutdown``: puts raise ShutDown; takes drain what is left, then raise ShutDown.

        ``immediate``: takes raise at once, and the items left count as done for ``join``.
        Nothing stored is deleted. Every blocked caller is woken.
        """
        ...

    @property
    def is_shutdown(self) -> bool:
        """True once ``shutdown()`` was called."""
        ...

    def close(self) -> None:
        """Let go of the queue, waking every blocked caller with ClosedError; idempotent.

        Every later call raises ClosedError.
        """
        ...

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        ...

    def __enter__(self) -> Self:
        """The queue itself; ``close()`` on exit."""
        ...

    def __exit__(self, *exc: object) -> None:
        """``close()``."""
        ...
