"""Bad arguments raise TypeError/ValueError and change nothing."""

from __future__ import annotations

import math

import pytest


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get(timeout=-1),
        lambda q: q.get(timeout=math.nan),
        lambda q: q.dequeue_block(timeout=-0.5),
        lambda q: q.peek_block(timeout=-1),
        lambda q: q.put("x", timeout=-1),
        lambda q: q.lease(timeout=-1),
        lambda q: q.lease(block=False, ttl=0),
        lambda q: q.lease(block=False, ttl=-1),
        lambda q: q.lease_many(1, ttl=0),
        lambda q: q.dequeue_many(-1),
        lambda q: q.lease_many(-1),
    ],
    ids=[
        "get-negative",
        "get-nan",
        "dequeue_block-negative",
        "peek_block-negative",
        "put-negative",
        "lease-negative",
        "lease-ttl-0",
        "lease-ttl-negative",
        "lease_many-ttl-0",
        "dequeue_many-negative",
        "lease_many-negative",
    ],
)
def test_bad_values_raise_value_error_and_change_nothing(backend, call):
    q = backend.make()
    q.enqueue_many(["a", "b"])
    with pytest.raises(ValueError):
        call(q)
    assert (q.size(), q.in_flight()) == (2, 0)
    assert q.dequeue_many(5) == ["a", "b"]


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get(timeout="1"),
        lambda q: q.dequeue_many("2"),
        lambda q: q.enqueue_many(5),
        lambda q: q.enqueue_many("ab"),
        lambda q: q.lease(block=False, ttl="1"),
    ],
    ids=["get-str-timeout", "dequeue_many-str", "enqueue_many-int", "enqueue_many-str", "lease-str-ttl"],
)
def test_bad_types_raise_type_error_and_change_nothing(backend, call):
    q = backend.make()
    q.enqueue("a")
    with pytest.raises(TypeError):
        call(q)
    assert (q.size(), q.in_flight()) == (1, 0)
    assert q.dequeue_many(5) == ["a"]
