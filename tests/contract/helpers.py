"""Small helpers shared by the contract tests (every wait here is bounded)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import waiting  # tests/waiting.py

WAIT = 10.0  # the most any test waits for something that should happen at once


class Call:
    """Run ``fn`` in a daemon thread; ``result()`` waits (bounded) for its value or re-raises its error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended = time.monotonic()

    def done(self, timeout: float = 0.0) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def result(self, timeout: float = WAIT) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the call still runs after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds taken, value or the exception raised)``."""
    start = time.monotonic()
    try:
        value = fn()
    except Exception as exc:
        value = exc
    return time.monotonic() - start, value


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT, poll: float = 0.01) -> Any:
    """Return ``predicate()``'s first truthy value; AssertionError after ``timeout`` seconds (``waiting.py``'s,
    with this suite's bound)."""
    return waiting.wait_until(predicate, what, timeout, poll)


def drain(q: Any) -> list[Any]:
    """Take every ready item, in order, without blocking."""
    out: list[Any] = []
    while True:
        got = q.dequeue_many(10)
        if not got:
            return out
        out.extend(got)
