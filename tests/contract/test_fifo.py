"""FIFO order, the single-item puts and takes, peeks."""

from __future__ import annotations

import pytest

import dque


def test_fifo_order_item_by_item(backend):
    q = backend.make()
    items = [0, "one", {"two": 2}, [3, 3], None, 5.5, b"six", (7,)]
    for item in items:
        q.put(item)
    assert q.size() == len(items)
    for item in items:
        assert q.get(timeout=5) == item
    with pytest.raises(dque.Empty):
        q.get_nowait()
