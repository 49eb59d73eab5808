"""The items the stress scripts enqueue, and the check that one came back whole."""

from __future__ import annotations


def item(i: int) -> tuple[int, bytes]:
    """Item ``i``: its id and some padding, so that records differ in size; checked when taken."""
    return (i, bytes([i % 251]) * (i * 7 % 37))


class Damaged(Exception):
    """An item came out that is not one that was put in."""


def ident(x: object) -> int:
    """The id of an item taken from a queue; Damaged if it is not exactly ``item(id)``."""
    if not (isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], int) and x == item(x[0])):
        raise Damaged(repr(x)[:200])
    return x[0]
