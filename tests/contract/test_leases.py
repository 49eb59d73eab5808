"""Leases: ``lease``, ``ack``, ``release``, ``in_flight``, ``Lease.deliveries``, ttl, release order, ``with``."""

from __future__ import annotations

import time

import pytest

import dque

from .helpers import WAIT, Call, wait_until


def test_a_leased_item_is_invisible_until_acked(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    lease = q.lease(block=False)
    assert isinstance(lease, dque.Lease)
    assert (lease.item, lease.deliveries) == ("a", 1)
    assert q.peek() == "b"
    assert (q.size(), q.in_flight()) == (1, 1)
    lease.ack()
    assert (q.size(), q.in_flight()) == (1, 0)
    assert q.dequeue_many(5) == ["b"]


def test_ack_by_id_and_release_by_id(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    first = q.lease()
    second = q.lease(timeout=WAIT)
    q.ack(first.id)
    q.release(second.id)
    assert q.in_flight() == 0
    again = q.lease(block=False)
    assert (again.item, again.deliveries) == ("b", 2)
    q.ack(again.id)
    assert q.size() == 0 and q.in_flight() == 0


def test_settling_a_lease_twice_raises_lease_error_and_changes_nothing(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    acked = q.lease(block=False)
    acked.ack()
    released = q.lease(block=False)
    released.release()
    for settle in (
        lambda: q.ack(acked.id),
        lambda: q.release(acked.id),
        acked.ack,
        lambda: q.ack(released.id),
        released.release,
    ):
        with pytest.raises(dque.LeaseError) as info:
            settle()
        assert isinstance(info.value, KeyError)
    assert (q.size(), q.in_flight()) == (1, 0)
    assert q.dequeue() == "b"


def test_release_puts_the_item_back_ahead_of_newer_items(backend):
    q = backend.make()
    q.enqueue_many(["a", "b", "c"])
    lease = q.lease(block=False)
    q.enqueue("d")
    lease.release()
    assert q.peek() == "a"
    assert q.dequeue_many(10) == ["a", "b", "c", "d"]


def test_several_released_items_come_back_ahead_of_newer_ones(backend):
    q = backend.make()
    q.enqueue_many(["a", "b", "c", "d"])
    leases = q.lease_many(3)  # a, b, c
    leases[2].release()
    leases[0].release()
    leases[1].release()
    got = q.dequeue_many(10)
    if backend.caps.released_items_in_original_order:
        assert got == ["a", "b", "c", "d"]
    else:  # in the order released
        assert got == ["c", "a", "b", "d"]


def test_deliveries_counts_every_hand_out(backend):
    q = backend.make()
    q.enqueue("x")
    for n in range(1, 5):
        lease = q.lease(block=False)
        assert (lease.item, lease.deliveries) == ("x", n)
        lease.release()
    assert q.dequeue() == "x"
    q.enqueue("y")  # a new item starts at 1
    assert q.lease(block=False).deliveries == 1


def test_blocked_lease_gets_an_item_put_later(backend):
    q = backend.make()
    leaser = Call(lambda: q.lease(timeout=WAIT))
    assert not leaser.done(0.2)
    q.put("late")
    lease = leaser.result()
    assert (lease.item, lease.deliveries, q.in_flight()) == ("late", 1, 1)
    lease.ack()
    assert q.in_flight() == 0


def test_non_blocking_lease_on_an_empty_queue_raises_empty(backend):
    q = backend.make()
    with pytest.raises(dque.Empty):
        q.lease(block=False)


def test_with_a_clean_exit_acks(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    with q.lease(block=False) as lease:
        assert lease.item == "a"
        assert q.in_flight() == 1
    assert (q.in_flight(), q.size()) == (0, 1)
    with pytest.raises(dque.LeaseError):
        lease.ack()  # it was acked
    assert q.dequeue() == "b"


def test_with_an_exception_releases_and_the_exception_goes_on(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    with pytest.raises(RuntimeError, match="worker failed"):
        with q.lease(block=False) as lease:
            assert lease.item == "a"
            raise RuntimeError("worker failed")
    assert (q.in_flight(), q.size()) == (0, 2)
    again = q.lease(block=False)
    assert (again.item, again.deliveries) == ("a", 2)


def test_with_after_settling_through_the_lease_does_not_settle_again(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    with q.lease(block=False) as lease:
        lease.release()
    with q.lease(block=False) as again:
        assert (again.item, again.deliveries) == ("a", 2)
        again.ack()
    assert (q.in_flight(), q.size()) == (0, 1)


def test_with_after_an_ack_by_id_reports_the_lease_is_not_outstanding(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    with pytest.raises(dque.LeaseError):
        with q.lease(block=False) as lease:
            q.ack(lease.id)  # the Lease does not know: its clean exit acks again
    assert (q.in_flight(), q.size()) == (0, 1)
    assert q.dequeue() == "b"


def test_ttl_releases_an_unacked_lease(backend):
    caps = backend.caps
    if caps.per_lease_ttl:
        q = backend.make()
        q.enqueue_many(["a", "b"])
        lease = q.lease(block=False, ttl=0.3)
        many = q.lease_many(1, ttl=0.3)
        assert [m.item for m in many] == ["b"]
        assert q.in_flight() == 2
        wait_until(lambda: q.in_flight() == 0, "both leases to expire")
        assert q.size() == 2
        with pytest.raises(dque.LeaseError):
            lease.ack()  # expired: no longer outstanding
        again = q.lease_many(2)
        assert [(a.item, a.deliveries) for a in again] == [("a", 2), ("b", 2)]
    else:  # one lease_ttl per queue, renewed while the holder lives: a slow live consumer keeps its lease
        q = backend.make(lease_ttl=0.3)
        q.enqueue_many(["a", "b"])
        lease = q.lease(block=False)
        time.sleep(1.0)
        assert (q.in_flight(), q.size()) == (1, 1)
        assert [m.item for m in q.lease_many(5)] == ["b"]
        lease.ack()


def test_a_lease_acked_in_time_is_not_released_by_its_ttl(backend):
    caps = backend.caps
    q = backend.make() if caps.per_lease_ttl else backend.make(lease_ttl=0.3)
    q.enqueue("a")
    lease = q.lease(block=False, ttl=0.3) if caps.per_lease_ttl else q.lease(block=False)
    lease.ack()
    time.sleep(0.6)
    assert (q.size(), q.in_flight()) == (0, 0)
    with pytest.raises(dque.Empty):
        q.dequeue()


def test_a_lease_id_from_before_a_reopen_is_not_outstanding_after_it(backend):
    q = backend.make()
    q.enqueue("a")
    old = q.lease(block=False)
    q.close()
    q = backend.reopen()
    if backend.caps.close_leaves_leases:
        wait_until(
            lambda: q.size() == 1, "the lease left by close() to come back", backend.caps.death_release_within + 5
        )
    with pytest.raises(dque.LeaseError):
        q.ack(old.id)
    with pytest.raises(dque.LeaseError):
        q.release(old.id)
    assert (q.size(), q.in_flight()) == (1, 0)
    new = q.lease(block=False)
    assert (new.item, new.deliveries) == ("a", 2)
    new.ack()


def test_peek_and_get_see_no_leased_item(backend):
    q = backend.make()
    q.enqueue("only")
    lease = q.lease(block=False)
    with pytest.raises(dque.Empty):
        q.peek()
    with pytest.raises(dque.Empty):
        q.get(timeout=0.1)
    assert q.lease_many(3) == []
    lease.release()
    assert q.peek() == "only"


def test_concurrent_leasers_get_distinct_items(backend):
    q = backend.make()
    q.enqueue_many(range(20))

    def lease_all():
        got = []
        while True:
            try:
                lease = q.lease(block=False)
            except dque.Empty:
                return got
            got.append(lease.item)
            lease.ack()

    calls = [Call(lease_all) for _ in range(3)]
    results = [c.result() for c in calls]
    assert sorted(x for got in results for x in got) == list(range(20))
    assert (q.size(), q.in_flight()) == (0, 0)
