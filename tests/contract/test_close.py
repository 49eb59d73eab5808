"""``close()``: idempotent, every later call raises ClosedError, and blocked callers are woken with it."""

from __future__ import annotations

import pytest

import dque

from .helpers import WAIT, Call


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get(timeout=WAIT),
        lambda q: q.get(),
        lambda q: q.dequeue_block(timeout=WAIT),
        lambda q: q.peek_block(timeout=WAIT),
        lambda q: q.lease(timeout=WAIT),
    ],
    ids=["get-timeout", "get-forever", "dequeue_block", "peek_block", "lease"],
)
def test_close_wakes_a_blocked_take_with_closed_error(backend, call):
    q = backend.make()
    blocked = Call(lambda: call(q))
    assert not blocked.done(0.3)
    q.close()
    with pytest.raises(dque.ClosedError):
        blocked.result()
    assert blocked.ended - blocked.started < WAIT - 1  # woken, not timed out


def test_close_wakes_a_blocked_put_with_closed_error(backend):
    q = backend.make(maxsize=1)
    q.put("full")
    blocked = Call(lambda: q.put("more", timeout=WAIT))
    assert not blocked.done(0.3)
    q.close()
    with pytest.raises(dque.ClosedError):
        blocked.result()


def test_close_wakes_a_blocked_join_with_closed_error(backend):
    q = backend.make()
    q.put("never done")
    blocked = Call(q.join)
    assert not blocked.done(0.3)
    q.close()
    with pytest.raises(dque.ClosedError):
        blocked.result()


def test_every_call_after_close_raises_closed_error_and_close_is_idempotent(backend):
    q = backend.make()
    q.enqueue("a")
    lease = q.lease(block=False)
    assert not q.closed
    q.close()
    assert q.closed
    q.close()
    calls = [
        lambda: q.enqueue("x"),
        lambda: q.enqueue_many(["x"]),
        lambda: q.put("x"),
        q.dequeue,
        lambda: q.dequeue_many(1),
        q.get,
        q.peek,
        q.lease,
        lambda: q.lease_many(1),
        lambda: q.ack(lease.id),
        lambda: q.release(lease.id),
        q.size,
        q.qsize,
        q.empty,
        q.full,
        q.in_flight,
        q.task_done,
        q.join,
        q.shutdown,
    ]
    for n, call in enumerate(calls):
        with pytest.raises(dque.ClosedError):
            call()
            pytest.fail(f"call {n} did not raise")


def test_with_closes(backend):
    q = backend.make()
    with q as inside:
        assert inside is q
        q.enqueue("a")
    assert q.closed
    with pytest.raises(dque.ClosedError):
        q.size()
