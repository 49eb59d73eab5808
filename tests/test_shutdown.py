"""``shutdown()``: Python 3.13's ``queue.Queue.shutdown`` on every Python, and what it means on disk.

CPython's own shutdown tests run against DQue in test_stdlib_queue.py (on 3.13
and later, where they exist); these hold on every supported version, and
check the durable side: a shutdown never deletes an item.
"""

from __future__ import annotations

import queue
import sys
import threading

import pytest

import dque

WAIT = 10.0  # every wait here is bounded


@pytest.fixture(params=[False, True], ids=["safe", "turbo"])
def q(request, tmp_path):
    handle = dque.new("q", tmp_path, segment_size=3, turbo=request.param)
    yield handle
    handle.close()


def test_shutdown_is_a_queue_shutdown_where_python_has_one():
    assert issubclass(dque.ShutDown, dque.DQueError)
    if sys.version_info >= (3, 13):
        assert issubclass(dque.ShutDown, queue.ShutDown)


def test_puts_raise_and_takes_drain_then_raise(q):
    q.enqueue_many(range(4))
    assert not q.is_shutdown
    q.shutdown()
    assert q.is_shutdown
    for put in (lambda: q.put(9), lambda: q.put_nowait(9), lambda: q.enqueue(9), lambda: q.enqueue_many([9])):
        with pytest.raises(dque.ShutDown):
            put()
    assert q.peek() == 0
    assert q.get() == 0
    lease = q.lease(block=False)
    assert lease.item == 1
    lease.release()  # releases still work, and the item can be taken again
    assert q.dequeue_many(10) == [1, 2, 3]
    for take in (q.get, q.get_nowait, q.dequeue, lambda: q.dequeue_many(3), q.peek, lambda: q.lease(block=False)):
        with pytest.raises(dque.ShutDown):
            take()
    with pytest.raises(dque.ShutDown):
        q.get(timeout=WAIT)  # raises at once: nothing will come


def test_immediate_takes_raise_at_once_and_join_returns(q):
    q.enqueue_many(range(4))
    assert q.get() == 0
    q.task_done()
    lease = q.lease(block=False)
    q.shutdown(immediate=True)
    assert q.is_shutdown and q.size() == 0 and q.empty()
    for take in (q.get, q.dequeue, lambda: q.dequeue_many(3), q.peek):
        with pytest.raises(dque.ShutDown):
            take()
    lease.ack()  # the one taken item was still unfinished; acking it finishes it
    q.join()  # returns: the items left count as done
    with pytest.raises(ValueError):
        q.task_done()


def test_shutdown_wakes_every_blocked_caller(tmp_path):
    q = dque.new("q", tmp_path, maxsize=1)
    q.enqueue("full")
    errors: list[BaseException] = []
    started = threading.Barrier(4)

    def call(fn):
        started.wait(WAIT)
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    other = dque.new("empty", tmp_path)
    threads = [
        threading.Thread(target=call, args=(lambda: q.put("x", timeout=WAIT),)),
        threading.Thread(target=call, args=(lambda: other.get(timeout=WAIT),)),
        threading.Thread(target=call, args=(lambda: other.lease(timeout=WAIT),)),
    ]
    for t in threads:
        t.start()
    started.wait(WAIT)
    for t in threads:
        t.join(0.2)
    q.shutdown()
    other.shutdown()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert len(errors) == 3 and all(isinstance(e, dque.ShutDown) for e in errors), errors
    q.close()
    other.close()


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_keeps_every_item_on_disk(tmp_path, immediate):
    with dque.new("q", tmp_path, segment_size=3) as q:
        q.enqueue_many(range(7))
        assert q.dequeue() == 0
        q.shutdown(immediate=immediate)
    with dque.open("q", tmp_path) as q:  # a new open is not shut down
        assert not q.is_shutdown and q.size() == 6
        q.enqueue(7)
        assert q.dequeue_many(10) == [1, 2, 3, 4, 5, 6, 7]


def test_shutdown_of_a_closed_queue_raises_closed(tmp_path):
    q = dque.new("q", tmp_path)
    q.close()
    with pytest.raises(dque.ClosedError):
        q.shutdown()
