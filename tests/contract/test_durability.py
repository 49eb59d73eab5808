"""Durability across ``close()`` and ``reopen()``: what was put and not taken is there, in order."""

from __future__ import annotations

from .helpers import drain, wait_until


def test_items_put_and_not_taken_are_there_in_order(backend):
    q = backend.make()
    q.enqueue_many(range(5))
    q.put(5)
    q.enqueue(6)
    assert q.dequeue_many(2) == [0, 1]
    q.close()
    q = backend.reopen()
    assert q.size() == 5
    assert [q.dequeue() for _ in range(5)] == [2, 3, 4, 5, 6]
    q.close()
    q = backend.reopen()
    assert q.size() == 0 and drain(q) == []


def test_acked_items_are_gone_and_unacked_leases_come_back_with_their_deliveries(backend):
    q = backend.make()
    q.enqueue_many(["a", "b", "c", "d"])
    leases = q.lease_many(3)  # a, b, c
    leases[1].ack()  # b is done
    q.close()  # a and c are leased, not acked
    q = backend.reopen()
    if backend.caps.close_leaves_leases:
        within = backend.caps.death_release_within
        wait_until(lambda: q.size() == 3, "the leases of the closed handle to come back", timeout=within * 2 + 5)
    assert q.size() == 3
    again = q.lease_many(10)
    assert [(lease.item, lease.deliveries) for lease in again] == [("a", 2), ("c", 2), ("d", 1)]
    q.ack_many([lease.id for lease in again])
    q.close()
    q = backend.reopen()
    assert (q.size(), q.in_flight()) == (0, 0)


def test_released_items_are_there_after_a_reopen(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    q.lease(block=False).release()
    q.close()
    q = backend.reopen()
    assert drain(q) == ["a", "b"]


def test_settings_survive_a_reopen(backend):
    q = backend.make(maxsize=3, max_deliveries=1, serializer="json")
    q.enqueue_many([[1], {"k": "v"}])
    q.close()
    q = backend.reopen()
    assert q.maxsize == 3
    q.enqueue("c")
    assert q.full()
    lease = q.lease(block=False)
    assert lease.item == [1]  # json: a list
    lease.release()  # max_deliveries 1: to the dead letters
    assert backend.dead_letters() == [[1]]
    assert drain(q) == [{"k": "v"}, "c"]
