"""``task_done``/``join``: join returns once every item put has been taken and marked done."""

from __future__ import annotations

import pytest

from .helpers import Call


def test_join_returns_at_once_on_a_new_queue(backend):
    q = backend.make()
    Call(q.join).result()


def test_join_waits_for_task_done_of_every_item(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    joiner = Call(q.join)
    assert q.get() == "a"
    q.task_done()
    assert q.dequeue() == "b"
    assert not joiner.done(0.3)  # "b" is taken, not done
    q.task_done()
    joiner.result()


def test_join_waits_for_items_not_yet_taken(backend):
    q = backend.make()
    q.put("a")
    q.put("b")
    assert q.get() == "a"
    q.task_done()
    joiner = Call(q.join)
    assert not joiner.done(0.3)  # "b" is still in the queue
    assert q.get() == "b"
    q.task_done()
    joiner.result()


def test_an_ack_counts_as_task_done_and_a_release_does_not(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    joiner = Call(q.join)
    lease = q.lease(block=False)
    lease.release()
    assert not joiner.done(0.3)
    leases = q.lease_many(2)
    assert [lease.item for lease in leases] == ["a", "b"]
    leases[0].ack()
    assert not joiner.done(0.3)
    with leases[1]:
        pass
    joiner.result()


def test_task_done_more_times_than_items_raises_value_error(backend):
    q = backend.make()
    with pytest.raises(ValueError):
        q.task_done()
    q.put("a")
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()
    Call(q.join).result()


def test_items_there_at_reopen_are_unfinished_until_done(backend):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    q.close()
    q = backend.reopen()
    joiner = Call(q.join)
    assert not joiner.done(0.3)
    assert q.dequeue_many(5) == ["a", "b"]
    q.task_done()
    assert not joiner.done(0.3)
    q.task_done()
    joiner.result()
