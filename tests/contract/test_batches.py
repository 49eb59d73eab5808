"""``enqueue_many``, ``dequeue_many``, ``lease_many``, ``ack_many``, ``release_many``: in order, all or nothing."""

from __future__ import annotations

import threading

import pytest

import dque


def test_enqueue_many_keeps_order_and_dequeue_many_takes_up_to_n(backend):
    q = backend.make()
    q.enqueue_many(range(7))
    q.enqueue_many(iter([7, 8]))  # any iterable
    q.enqueue_many([])
    assert q.size() == 9
    assert q.dequeue_many(4) == [0, 1, 2, 3]
    assert q.dequeue_many(0) == []
    assert q.dequeue_many(100) == [4, 5, 6, 7, 8]
    assert q.dequeue_many(3) == []


def test_enqueue_many_with_an_unserializable_item_in_the_middle_adds_nothing(backend):
    q = backend.make()
    q.enqueue("before")
    with pytest.raises(dque.SerializationError):
        q.enqueue_many(["ok", threading.Lock(), "also ok"])
    assert q.size() == 1
    assert q.dequeue_many(10) == ["before"]


def test_unserializable_single_put_adds_nothing(backend):
    q = backend.make()
    for put in (q.enqueue, q.put, q.put_nowait):
        with pytest.raises(dque.SerializationError):
            put(lambda: None)
    assert q.size() == 0
    q.enqueue("fine")
    assert q.dequeue() == "fine"


def test_lease_many_then_ack_many(backend):
    q = backend.make()
    q.enqueue_many(range(6))
    leases = q.lease_many(4)
    assert [lease.item for lease in leases] == [0, 1, 2, 3]
    assert [lease.deliveries for lease in leases] == [1, 1, 1, 1]
    assert len({lease.id for lease in leases}) == 4
    assert (q.size(), q.in_flight()) == (2, 4)
    assert q.lease_many(0) == []
    q.ack_many([leases[2].id, leases[0].id])  # any order
    assert q.in_flight() == 2
    q.ack_many([])
    q.release_many([leases[1].id, leases[3].id])
    assert q.in_flight() == 0
    assert q.dequeue_many(10) == [1, 3, 4, 5]


def test_lease_many_on_an_empty_queue_is_empty(backend):
    q = backend.make()
    assert q.lease_many(5) == []
    assert q.in_flight() == 0


def test_ack_many_with_one_unknown_id_acks_nothing(backend):
    q = backend.make()
    q.enqueue_many(["a", "b", "c"])
    leases = q.lease_many(3)
    leases[1].ack()
    with pytest.raises(dque.LeaseError) as info:
        q.ack_many([leases[0].id, leases[1].id, leases[2].id])  # leases[1] is no longer outstanding
    assert isinstance(info.value, KeyError)
    assert q.in_flight() == 2
    q.ack_many([leases[0].id, leases[2].id])  # both were still outstanding
    assert q.in_flight() == 0
    assert q.size() == 0


def test_release_many_with_one_unknown_id_releases_nothing(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    leases = q.lease_many(2)
    leases[0].ack()
    with pytest.raises(dque.LeaseError):
        q.release_many([leases[1].id, leases[0].id])
    assert (q.in_flight(), q.size()) == (1, 0)
    leases[1].release()
    assert q.dequeue_many(5) == ["b"]
