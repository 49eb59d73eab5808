"""Argument checks shared by DQue and ProcessSafeDQue: TypeError/ValueError before any disk access."""

from __future__ import annotations

import math
import os
from typing import Any

from ._serializers import resolve


def check_timeout(timeout: float | None) -> None:
    """A blocking call's ``timeout``: None (wait forever) or a number >= 0.

    ``float('inf')`` and huge numbers are valid and mean "as long as that"
    (the waits are made in steps the OS accepts). NaN is a ValueError: it is
    neither a duration nor "forever".
    """
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    if math.isnan(timeout):
        raise ValueError("'timeout' must be a number of seconds >= 0, not NaN (pass None to wait forever)")
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


def check_seconds(value: Any, what: str, hint: str = "") -> float:
    """A duration that must be > 0 (``ttl``, ``max_delay``): ``float('inf')`` allowed, NaN and <= 0 not.

    Returns it as a float. ``hint`` is appended to the ValueError's message.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number or None, not {type(value).__name__}")
    if not value > 0:  # (NaN included)
        raise ValueError(f"{what} must be a number of seconds > 0, got {value!r}{hint}")
    return float(value)


def check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def queue_dir(name: Any, dirpath: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name or name in (".", "..") or "\0" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"bad queue name {name!r}: it must be a plain file name (no path separators)")
    if not isinstance(dirpath, (str, os.PathLike)):
        raise TypeError(f"dirpath must be a str or path, not {type(dirpath).__name__}")
    # Absolute, resolved when the handle is made: a process with another working directory
    # (a Pool worker after os.chdir, a handle unpickled elsewhere) still finds the queue.
    return os.path.join(os.path.abspath(os.fspath(dirpath)), name)


def check_options(segment_size: Any, maxsize: Any, max_deliveries: Any, serializer: Any) -> None:
    """The creation options of new_or_open/ProcessSafeDQue (None: the default or the stored one)."""
    for value, what, minimum in (
        (segment_size, "segment_size", 1),
        (maxsize, "maxsize", 0),
        (max_deliveries, "max_deliveries", 0),
    ):
        if value is not None:
            check_int(value, what, minimum)
    resolve(serializer)
