"""``shutdown()``/``ShutDown``: puts raise; takes drain what is left, then raise; ``immediate`` raises at once."""

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


def test_immediate_takes_raise_at_once_and_join_returns(backend):
    q = backend.make()
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
    Call(q.join).result()  # returns: the items left count as done


def test_shutdown_wakes_blocked_callers_with_shut_down(backend):
    q = backend.make()
    blocked = [Call(lambda: q.get(timeout=WAIT)), Call(lambda: q.lease(timeout=WAIT))]
    assert not any(b.done(0.3) for b in blocked)
    q.shutdown()
    for b in blocked:
        with pytest.raises(dque.ShutDown):
            b.result()


def test_shutdown_deletes_nothing(backend):
    q = backend.make()
    q.enqueue_many(range(5))
    assert q.dequeue() == 0
    q.shutdown(immediate=True)
    q.close()
    q = backend.reopen()
    assert not q.is_shutdown
    assert q.dequeue_many(10) == [1, 2, 3, 4]
