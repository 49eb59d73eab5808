"""The serializers every backend offers: ``"pickle"`` (the default), ``"json"``, ``"bytes"``."""

from __future__ import annotations

import pytest

import dque


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_pickle_is_the_default_and_round_trips_objects(backend):
    q = backend.make()
    items = [Point(1, 2), {"set": {1, 2}}, (1, "a"), b"\x00\xff", None]
    q.enqueue_many(items)
    got = q.dequeue_many(10)
    assert got == items
    assert type(got[2]) is tuple and type(got[0]) is Point


def test_json_round_trips_json_values_and_refuses_the_rest(backend):
    q = backend.make(serializer="json")
    items = [{"a": [1, 2.5, None, True]}, "text", 3, [], {}]
    q.enqueue_many(items)
    for bad in ({1, 2}, Point(0, 0), b"bytes", float("nan")):
        with pytest.raises(dque.SerializationError):
            q.enqueue(bad)
    with pytest.raises(dque.SerializationError):
        q.enqueue_many(["fine", {1}])
    assert q.size() == len(items)
    assert [q.dequeue() for _ in items] == items
    q.enqueue((1, 2))
    assert q.dequeue() == [1, 2]  # JSON has no tuples


def test_bytes_round_trips_bytes_and_refuses_the_rest(backend):
    q = backend.make(serializer="bytes")
    q.enqueue(b"raw")
    q.put(bytearray(b"array"))
    q.enqueue_many([b"", memoryview(b"view")])
    for bad in ("text", 1, None):
        with pytest.raises(dque.SerializationError):
            q.enqueue(bad)
    got = q.dequeue_many(10)
    assert got == [b"raw", b"array", b"", b"view"]
    assert all(type(item) is bytes for item in got)


@pytest.mark.parametrize("serializer", ["pickle", "json", "bytes"])
def test_leases_and_peeks_deserialize_with_the_queues_serializer(backend, serializer):
    q = backend.make(serializer=serializer)
    item = b"payload" if serializer == "bytes" else ["payload", 1]
    q.enqueue(item)
    assert q.peek() == item
    lease = q.lease(block=False)
    assert lease.item == item
    lease.release()
    assert q.dequeue() == item
