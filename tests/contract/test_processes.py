"""Processes: a consumer that dies holding leases; items put by another process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from . import children
from .helpers import WAIT, drain, wait_until

AT_ONCE = 2.0  # seconds: "at once", measured from the SIGKILL, on a loaded machine


def test_the_leases_of_a_killed_consumer_come_back(backend):
    caps = backend.caps
    q = backend.make()
    q.enqueue_many(["a", "b", "c", "d"])
    if not caps.shared_between_processes:
        # One process's queue: its consumer dies with it; the leases come back when the queue is opened again.
        leases = q.lease_many(2)
        assert [lease.item for lease in leases] == ["a", "b"]
        q.close()
        q = backend.reopen()
        killed_at = time.monotonic()
    else:
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        child = ctx.Process(target=children.lease_and_hang, args=(q, 2, child_end), daemon=True)
        child.start()
        try:
            assert parent_end.poll(WAIT * 3), "the child did not report its leases"
            assert parent_end.recv() == [("a", 1), ("b", 1)]
            assert (q.size(), q.in_flight()) == (2, 2)
            os.kill(child.pid, signal.SIGKILL)
            killed_at = time.monotonic()
        finally:
            child.join(WAIT)
            if child.is_alive():
                child.kill()
                child.join(WAIT)
        assert child.exitcode == -signal.SIGKILL
    bound = AT_ONCE if caps.death_releases_at_once else caps.death_release_within + AT_ONCE
    wait_until(lambda: q.size() == 4, "the dead consumer's leases to come back", timeout=bound + WAIT)
    took = time.monotonic() - killed_at
    assert took <= bound, f"the leases came back {took:.2f} s after the death, not within {bound} s"
    assert q.in_flight() == 0
    again = q.lease_many(10)
    assert [(lease.item, lease.deliveries) for lease in again] == [("a", 2), ("b", 2), ("c", 1), ("d", 1)]
    q.ack_many([lease.id for lease in again])
    assert drain(q) == []


def test_items_put_by_another_process_arrive_in_its_order(backend):
    q = backend.make()
    if not backend.caps.shared_between_processes:
        # One process's queue: another process's items are those there when it opens it.
        q.enqueue_many(["x", "y", "z"])
        q.close()
        q = backend.reopen()
    else:
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=children.put_items, args=(q, ["x", "y", "z"]), daemon=True)
        child.start()
        child.join(WAIT * 3)
        if child.is_alive():
            child.kill()
            child.join(WAIT)
        assert child.exitcode == 0
    assert [q.get(timeout=WAIT) for _ in range(3)] == ["x", "y", "z"]
