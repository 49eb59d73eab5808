"""``max_deliveries`` and the dead-letter queue."""

from __future__ import annotations

import time

from .helpers import wait_until


def test_an_item_handed_out_max_deliveries_times_goes_to_the_dead_letters(backend):
    q = backend.make(max_deliveries=2)
    q.enqueue_many(["poison", "good"])
    first = q.lease(block=False)
    assert (first.item, first.deliveries) == ("poison", 1)
    first.release()
    second = q.lease(block=False)
    assert (second.item, second.deliveries) == ("poison", 2)
    second.release()  # the second hand-out without an ack: moved, not handed out again
    assert (q.size(), q.in_flight()) == (1, 0)
    nxt = q.lease(block=False)
    assert (nxt.item, nxt.deliveries) == ("good", 1)
    nxt.ack()
    assert q.size() == 0
    assert backend.dead_letters() == ["poison"]


def test_dead_letters_keep_their_order_and_acked_items_never_go_there(backend):
    q = backend.make(max_deliveries=1)
    q.enqueue_many(["a", "b", "c", "d"])
    leases = q.lease_many(4)
    leases[1].ack()
    leases[0].release()
    leases[2].release()
    with leases[3]:
        pass  # acked
    assert (q.size(), q.in_flight()) == (0, 0)
    assert backend.dead_letters() == ["a", "c"]


def test_without_max_deliveries_nothing_is_dead_lettered(backend):
    q = backend.make()
    q.enqueue("x")
    for n in range(1, 6):
        lease = q.lease(block=False)
        assert lease.deliveries == n
        lease.release()
    assert q.size() == 1
    assert backend.dead_letters() == []


def test_a_move_to_the_dead_letters_counts_as_task_done(backend):
    q = backend.make(max_deliveries=1)
    q.enqueue_many(["dead", "done"])
    q.lease(block=False).release()
    assert q.get() == "done"
    q.task_done()
    q.join()  # returns: nothing is unfinished
    assert backend.dead_letters() == ["dead"]


def test_plain_takes_do_not_count_deliveries(backend):
    q = backend.make(max_deliveries=1)
    q.enqueue_many(["a", "b"])
    assert q.peek() == "a"
    assert q.dequeue() == "a"
    assert q.lease(block=False).item == "b"
    assert backend.dead_letters() == []


def test_an_expired_lease_counts_towards_max_deliveries(backend):
    caps = backend.caps
    if caps.per_lease_ttl:
        q = backend.make(max_deliveries=1)
        q.enqueue_many(["slow", "next"])
        q.lease(block=False, ttl=0.2)
        wait_until(lambda: _moved_out(q), "the expired lease to be dead-lettered")
        assert backend.dead_letters() == ["slow"]
        assert q.dequeue_many(5) == ["next"]
    else:  # a live holder renews its lease: nothing expires, nothing is dead-lettered
        q = backend.make(max_deliveries=1, lease_ttl=0.2)
        q.enqueue_many(["slow", "next"])
        lease = q.lease(block=False)
        time.sleep(0.8)
        assert (q.in_flight(), q.size()) == (1, 1)
        assert backend.dead_letters() == []
        lease.ack()


def _moved_out(q) -> bool:
    """The expired lease has ended (moved: not in flight, not ready)."""
    return q.in_flight() == 0 and q.size() == 1
