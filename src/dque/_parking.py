"""The owner's blocking calls as attempts: what a parked call retries, and its answer at its deadline.

A blocking request (``put``, ``take``, ``peek``, ``lease``, ``join``) becomes
``(kind, attempt, block, timeout, expired)``: ``attempt()`` carries it out
without waiting and returns NOT_YET while it cannot be served yet; the loop
(``_owner.py``) parks it as a :class:`Parked` until it can, or answers
``expired`` (Empty, Full, or False for ``join``) at its deadline. Calls of
one ``kind`` are served in the order they came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._args import check_timeout
from ._queue import DQue
from ._wire import _WAIT_SLICE
from .errors import Empty, Full

if TYPE_CHECKING:
    from ._owner import _Conn

NOT_YET: Any = object()  # a parked call's attempt: not ready yet


class Parked:
    """A blocking call waiting in the loop: ``attempt()`` serves it (or returns NOT_YET) until ``deadline``."""

    __slots__ = ("conn", "method", "args", "kind", "attempt", "deadline", "expired")

    def __init__(
        self,
        conn: _Conn,
        method: str,
        args: tuple[Any, ...],
        kind: str,
        attempt: Callable[[], Any],
        deadline: float,
        expired: tuple[str, Any],
    ) -> None:
        self.conn, self.method, self.args, self.kind = conn, method, args, kind
        self.attempt, self.deadline, self.expired = attempt, deadline, expired


BLOCKING = frozenset({"put", "take", "peek", "lease", "join"})


def blocking_call(
    q: DQue, method: str, args: tuple[Any, ...], process: str | None
) -> tuple[str, Callable[[], Any], bool, float, tuple[str, Any]]:
    """``(kind, attempt, block, timeout, expired reply)`` of a call that may wait; attempt() gives NOT_YET while it must."""
    if method == "join":
        (timeout,) = args
        return "join", lambda: True if q.join_for(0.0) else NOT_YET, True, float(timeout), ("#RETURN", False)
    if method == "put":
        payloads, block, timeout = args

        def put() -> Any:
            try:
                q.put_payloads(payloads)
            except Full:
                return NOT_YET
            return None

        return "put", put, _checked(block, timeout), _wait(timeout), ("#ERROR", Full())
    if method == "take":
        max_items, block, timeout = args
        return "take", lambda: q.take_payloads(max_items) or NOT_YET, _checked(block, timeout), _wait(timeout), (
            "#ERROR", Empty(),
        )  # fmt: skip
    if method == "lease":
        max_items, block, timeout, ttl = args
        return (
            "take",
            lambda: q.lease_payloads(max_items, False, None, ttl, owner=process) or NOT_YET,
            _checked(block, timeout),
            _wait(timeout),
            ("#ERROR", Empty()),
        )
    block, timeout = args  # peek

    def peek() -> Any:
        try:
            return q.peek_payload()
        except Empty:
            return NOT_YET

    return "peek", peek, _checked(block, timeout), _wait(timeout), ("#ERROR", Empty())


def _checked(block: object, timeout: float | None) -> bool:
    if block:
        check_timeout(timeout)
    return bool(block)


def _wait(timeout: float | None) -> float:
    return _WAIT_SLICE if timeout is None else min(float(timeout), _WAIT_SLICE)


def _raise_full() -> None:
    raise Full


def _raise_empty() -> None:
    raise Empty


NOT_BLOCKING: dict[str, Callable[[], Any]] = {
    "put": _raise_full, "take": list, "lease": list, "peek": _raise_empty,
}  # fmt: skip
