"""dque: a fast, embedded, durable FIFO queue that many processes can share.

>>> import dque, tempfile
>>> with dque.new("jobs", tempfile.mkdtemp(), segment_size=50) as q:
...     q.enqueue({"id": 1})
...     q.dequeue()
{'id': 1}

Runs on POSIX systems: Linux, macOS and the BSDs. ``dque.open`` is an
attribute but not in ``__all__``, so that ``from dque import *`` leaves the
built-in ``open`` alone.
"""

import os as _os
import sys as _sys
import typing as _typing

__version__ = "0.1.0"  # the one place: pyproject.toml reads it from here

if _sys.platform == "win32" or _os.name != "posix":
    raise ImportError(
        f"dque runs on POSIX systems only (Linux, macOS, the BSDs), not on {_sys.platform!r}: it relies on "
        "POSIX file locking, fsync semantics and memory maps. On Windows, run it under WSL "
        "(Windows Subsystem for Linux)."
    )

from ._lease import Lease  # noqa: E402 - after the platform check
from ._process import ProcessSafeDQue, attach  # noqa: E402
from ._protocol import Queue  # noqa: E402
from ._queue import DQue  # noqa: E402
from ._serializers import BytesSerializer, JsonSerializer, PickleSerializer  # noqa: E402
from .errors import (  # noqa: E402
    ClosedError,
    ConfigError,
    CorruptedError,
    DQueError,
    Empty,
    ForkedError,
    Full,
    LeaseError,
    LockedError,
    OwnerGoneError,
    SerializationError,
    ShutDown,
    SyncError,
)

if _typing.TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports them on first use
    from ._redis import RedisQueue as RedisQueue
    from ._redis_errors import BackendError as BackendError


def __getattr__(name: str) -> object:
    """``dque.RedisQueue`` and ``dque.BackendError``, imported on first use (so redis-py stays optional)."""
    if name == "RedisQueue":
        from ._redis import RedisQueue  # ImportError if redis-py is missing: pip install dque[redis]

        return RedisQueue
    if name == "BackendError":
        from ._redis_errors import BackendError

        return BackendError
    raise AttributeError(f"module 'dque' has no attribute {name!r}")


new = DQue.new
open = DQue.open  # noqa: A001 - the Go API's name (not in __all__: a star import keeps the built-in open)
new_or_open = DQue.new_or_open

__all__ = [
    "DQue",
    "Queue",
    "ProcessSafeDQue",
    "attach",
    "OwnerGoneError",
    "LeaseError",
    "Lease",
    "new",
    "new_or_open",
    "DQueError",
    "Empty",
    "Full",
    "LockedError",
    "CorruptedError",
    "ClosedError",
    "ForkedError",
    "SerializationError",
    "ConfigError",
    "SyncError",
    "ShutDown",
    "PickleSerializer",
    "JsonSerializer",
    "BytesSerializer",
]
