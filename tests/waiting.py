"""Polling for a condition that another thread or process brings about, with a deadline."""

import time


def wait_until(predicate, what: str, timeout: float = 30.0, poll: float = 0.01):
    """Return ``predicate()``'s first truthy value; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)
