"""``BackendError``: the one error ``RedisQueue`` adds (importable without redis-py)."""

from __future__ import annotations

from .errors import DQueError

__all__ = ["BackendError"]


class BackendError(DQueError, ConnectionError):
    """The Redis server could not be reached, or answered with an error (``RedisQueue`` only).

    The call's outcome is unknown: a put may or may not have been stored, an
    ack may or may not have happened (redis-py's own retries are turned off,
    so a call is sent once). The handle stays usable: the next call
    reconnects.
    """
