"""``shutdown()``/``ShutDown``: puts raise; takes drain what is left, then raise; ``immediate`` raises at once.

Python 3.13's ``queue.Queue.shutdown`` on every Python, on every backend, and what it means for the
stored items: a shutdown never deletes one (``ShutDown`` itself is checked in ``test_api.py``;
CPython's own shutdown tests run against DQue in ``test_stdlib_queue.py``, on 3.13 and later).
"""

from __future__ import annotations

import pytest

import dque

from .helpers import WAIT, Call, timed


def test_puts_raise_and_takes_drain_then_raise(backend):
    q = backend.make()
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
    took, result = timed(lambda: q.get(timeout=WAIT))
    assert isinstance(result, dque.ShutDown) and took < WAIT / 2  # at once: nothing will come


def _shut_down_at_once_with_a_lease_out(backend):
    """Four items: the first taken and marked done, the second leased; then ``shutdown(immediate=True)``.
    (The queue, the lease.)"""
    q = backend.make()
    q.enqueue_many(range(4))
    assert q.get() == 0
    q.task_done()
    lease = q.lease(block=False)
    q.shutdown(immediate=True)
    return q, lease


def test_immediate_takes_raise_at_once_and_join_returns(backend):
    q, lease = _shut_down_at_once_with_a_lease_out(backend)
    assert q.is_shutdown and q.size() == 0 and q.empty()
    for take in (q.get, q.dequeue, lambda: q.dequeue_many(3), q.peek):
        with pytest.raises(dque.ShutDown):
            take()
    lease.ack()  # the one taken item was still unfinished; acking it finishes it
    Call(q.join).result()  # returns: the items left count as done


def test_immediate_shutdown_counts_the_items_left_as_done(backend):
    q, lease = _shut_down_at_once_with_a_lease_out(backend)
    lease.ack()
    with pytest.raises(ValueError):
        q.task_done()  # as queue.Queue's: every task is done now, so one more is one too many


def test_shutdown_wakes_blocked_callers_with_shut_down(backend):
    q = backend.make()
    blocked = [Call(lambda: q.get(timeout=WAIT)), Call(lambda: q.lease(timeout=WAIT))]
    assert not any(b.done(0.3) for b in blocked)
    q.shutdown()
    for b in blocked:
        with pytest.raises(dque.ShutDown):
            b.result()


def test_shutdown_wakes_a_put_blocked_on_a_full_queue_with_shut_down(backend):
    q = backend.make(maxsize=1)
    q.put("full")
    blocked = Call(lambda: q.put("more", timeout=WAIT))
    assert not blocked.done(0.3)
    q.shutdown()
    with pytest.raises(dque.ShutDown):
        blocked.result()
    assert blocked.ended - blocked.started < WAIT - 1  # woken, not timed out


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_deletes_nothing(backend, immediate):
    q = backend.make()
    q.enqueue_many(range(7))  # file backends: over several segments
    assert q.dequeue() == 0
    q.shutdown(immediate=immediate)
    q.close()
    q = backend.reopen()  # a new open is not shut down
    assert not q.is_shutdown and q.size() == 6
    q.enqueue(7)
    assert q.dequeue_many(10) == [1, 2, 3, 4, 5, 6, 7]
