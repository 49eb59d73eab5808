"""``size``/``qsize``/``len``/``empty``/``full``/``maxsize``, and ``Full``."""

from __future__ import annotations

import queue

import pytest

import dque

from .helpers import WAIT, Call, timed


def test_size_counts_ready_items_exactly(backend):
    q = backend.make()
    assert (q.size(), q.qsize(), len(q), q.empty(), q.full(), q.maxsize) == (0, 0, 0, True, False, 0)
    q.enqueue_many(range(5))
    assert (q.size(), q.qsize(), len(q), q.empty(), q.full()) == (5, 5, 5, False, False)
    q.dequeue()
    assert (q.size(), q.qsize(), len(q)) == (4, 4, 4)
    lease = q.lease(block=False)  # a leased item is not ready
    assert (q.size(), q.in_flight()) == (3, 1)
    lease.release()
    assert (q.size(), q.in_flight()) == (4, 0)
    assert q.dequeue_many(10) == [1, 2, 3, 4]
    assert (q.size(), q.empty()) == (0, True)


def test_maxsize_bounds_enqueue_and_put_nowait(backend):
    q = backend.make(maxsize=2)
    assert q.maxsize == 2
    q.enqueue("a")
    assert not q.full()
    q.put_nowait("b")
    assert q.full()
    for put in (lambda: q.enqueue("c"), lambda: q.put_nowait("c"), lambda: q.put("c", block=False)):
        with pytest.raises(dque.Full) as info:
            put()
        assert isinstance(info.value, queue.Full) and isinstance(info.value, dque.DQueError)
    assert q.size() == 2
    assert q.dequeue_many(5) == ["a", "b"]


def test_put_with_timeout_on_a_full_queue_raises_full_after_the_timeout(backend):
    q = backend.make(maxsize=1)
    q.put("only")
    took, result = timed(lambda: q.put("more", timeout=0.2))
    assert isinstance(result, dque.Full), result
    assert 0.15 <= took <= 5.0, took
    assert q.dequeue_many(5) == ["only"]


def test_blocked_put_goes_in_when_room_is_made(backend):
    q = backend.make(maxsize=1)
    q.put("first")
    putter = Call(lambda: q.put("second", timeout=WAIT))
    assert not putter.done(0.2)
    assert q.get() == "first"
    putter.result()
    assert q.dequeue_many(5) == ["second"]


def test_leased_items_count_against_maxsize_and_an_ack_makes_room(backend):
    q = backend.make(maxsize=2)
    q.enqueue_many(["a", "b"])
    lease = q.lease(block=False)
    assert (q.size(), q.in_flight(), q.full()) == (1, 1, True)
    with pytest.raises(dque.Full):
        q.enqueue("c")
    lease.ack()
    assert not q.full()
    q.enqueue("c")
    assert q.dequeue_many(5) == ["b", "c"]


def test_enqueue_many_that_does_not_fit_adds_nothing(backend):
    q = backend.make(maxsize=3)
    q.enqueue("a")
    with pytest.raises(dque.Full):
        q.enqueue_many(["b", "c", "d"])
    assert q.size() == 1
    q.enqueue_many(["b", "c"])
    assert q.dequeue_many(5) == ["a", "b", "c"]
