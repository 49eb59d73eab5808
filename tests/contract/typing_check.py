"""Static check (mypy, never executed by pytest): every backend satisfies ``dque.Queue``.

``test_protocol.py`` runs mypy on this file. One function per backend, so that
an error's line says which backend does not satisfy the protocol.
"""

from __future__ import annotations

import dque


def file_engine(dirpath: str) -> dque.Queue:
    q: dque.Queue = dque.DQue.new("q", dirpath)
    return q


def process_safe(dirpath: str) -> dque.Queue:
    q2: dque.Queue = dque.ProcessSafeDQue("q", dirpath)
    return q2


def redis_queue() -> dque.Queue:
    q3: dque.Queue = dque.RedisQueue("q")
    return q3


def uses_the_protocol(q: dque.Queue) -> list[int]:
    """Code written against the protocol alone type-checks."""
    q.put(1, timeout=1.0)
    q.enqueue_many([2, 3])
    with q.lease(timeout=1.0) as lease:
        first: int = lease.item
    batch = q.lease_many(10)
    q.ack_many([b.id for b in batch])
    with q as same:
        same.close()
    return [first, q.size(), q.maxsize, q.in_flight()]
