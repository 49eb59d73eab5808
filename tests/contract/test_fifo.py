"""FIFO order; the single-item puts and takes; peeks; blocking takes with timeouts."""

from __future__ import annotations

import pytest

import dque

from .helpers import WAIT, Call, timed

ITEMS = [0, "one", {"two": 2}, [3, 3], None, 5.5, b"six", (7,)]


def test_put_get_fifo_item_by_item(backend):
    q = backend.make()
    for item in ITEMS:
        q.put(item)
    assert q.size() == len(ITEMS)
    for n, item in enumerate(ITEMS):
        assert q.get(timeout=WAIT) == item
        assert q.size() == len(ITEMS) - n - 1
    with pytest.raises(dque.Empty):
        q.get_nowait()


def test_enqueue_dequeue_and_the_queue_names_mix(backend):
    q = backend.make()
    q.enqueue("a")
    q.put("b")
    q.put_nowait("c")
    q.put("d", block=False)
    q.enqueue("e")
    assert q.dequeue() == "a"
    assert q.get() == "b"
    assert q.get_nowait() == "c"
    assert q.get(block=False) == "d"
    assert q.dequeue_block(timeout=WAIT) == "e"
    for take in (q.dequeue, q.get_nowait, lambda: q.get(block=False), q.peek):
        with pytest.raises(dque.Empty):
            take()


def test_order_holds_when_puts_and_takes_interleave(backend):
    q = backend.make()
    expected, got = [], []
    n = 0
    for round_ in range(5):
        for _ in range(round_ + 2):
            q.enqueue(n)
            expected.append(n)
            n += 1
        got.append(q.dequeue())
    got.extend(q.dequeue_many(100))
    assert got == expected


def test_peek_does_not_remove(backend):
    q = backend.make()
    with pytest.raises(dque.Empty):
        q.peek()
    q.enqueue_many(["first", "second"])
    assert q.peek() == "first"
    assert q.peek() == "first"
    assert q.size() == 2
    assert q.peek_block(timeout=WAIT) == "first"
    assert q.dequeue() == "first"
    assert q.peek() == "second"
    assert q.size() == 1


def test_empty_is_a_queue_empty(backend):
    q = backend.make()
    with pytest.raises(dque.Empty) as info:
        q.dequeue()
    assert isinstance(info.value, dque.DQueError)
    import queue

    assert isinstance(info.value, queue.Empty)


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get(timeout=0.2),
        lambda q: q.dequeue_block(timeout=0.2),
        lambda q: q.peek_block(timeout=0.2),
        lambda q: q.lease(timeout=0.2),
    ],
    ids=["get", "dequeue_block", "peek_block", "lease"],
)
def test_blocking_take_times_out_with_empty(backend, call):
    q = backend.make()
    took, result = timed(lambda: call(q))
    assert isinstance(result, dque.Empty), result
    assert 0.15 <= took <= 5.0, took
    assert q.size() == 0 and q.in_flight() == 0


def test_non_blocking_get_ignores_timeout(backend):
    q = backend.make()
    took, result = timed(lambda: q.get(block=False, timeout=5))
    assert isinstance(result, dque.Empty), result
    assert took < 2.0, took


def test_blocked_get_returns_an_item_put_later(backend):
    q = backend.make()
    taker = Call(lambda: q.get(timeout=WAIT))
    assert not taker.done(0.2)
    q.put("late")
    assert taker.result() == "late"
    assert q.size() == 0


def test_blocked_peek_returns_an_item_put_later_and_leaves_it(backend):
    q = backend.make()
    peekers = [Call(lambda: q.peek_block(timeout=WAIT)) for _ in range(2)]
    assert not any(p.done(0.2) for p in peekers)
    q.put("late")
    assert [p.result() for p in peekers] == ["late", "late"]  # every peeker sees it
    assert q.size() == 1
    assert q.dequeue() == "late"


def test_each_item_goes_to_exactly_one_of_several_blocked_takers(backend):
    q = backend.make()
    takers = [Call(lambda: q.get(timeout=WAIT)) for _ in range(3)]
    assert not any(t.done(0.2) for t in takers)
    q.enqueue_many(["x", "y", "z"])
    assert sorted(t.result() for t in takers) == ["x", "y", "z"]
    assert q.size() == 0


def test_threads_put_and_take_each_item_exactly_once_in_each_producers_order(backend):
    q = backend.make()
    per_producer = 30

    def produce(tag):
        for i in range(per_producer):
            q.put((tag, i))

    def consume():
        got = []
        while True:
            try:
                got.append(q.get(timeout=1.0))
            except dque.Empty:
                return got

    consumers = [Call(consume) for _ in range(2)]
    producers = [Call(lambda tag=tag: produce(tag)) for tag in "ab"]
    for p in producers:
        p.result()
    results = [c.result(WAIT + 5) for c in consumers]
    everything = sorted(item for got in results for item in got)
    assert everything == sorted((tag, i) for tag in "ab" for i in range(per_producer))
    for got in results:  # each consumer sees each producer's items in order
        for tag in "ab":
            seq = [i for t, i in got if t == tag]
            assert seq == sorted(seq)
