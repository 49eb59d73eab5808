"""Targets for the child processes of the contract tests (importable under spawn)."""

from __future__ import annotations

import time
from typing import Any


def lease_and_hang(q: Any, count: int, conn: Any) -> None:
    """Lease ``count`` items, send ``[(item, deliveries), ...]`` through ``conn``, then wait to be killed."""
    try:
        leases = q.lease_many(count)
        conn.send([(lease.item, lease.deliveries) for lease in leases])
    except BaseException as exc:
        conn.send(repr(exc))
    time.sleep(60)


def put_items(q: Any, items: list) -> None:
    """Enqueue ``items`` one by one, in order, and return (the process exits normally)."""
    for item in items:
        q.enqueue(item)
