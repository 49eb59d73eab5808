"""dque: a fast, embedded, durable FIFO queue that many processes can share.

    >>> import dque, tempfile
    >>> with dque.new("jobs", tempfile.mkdtemp(), segment_size=50) as q:
    ...     q.enqueue({"id": 1})
    ...     q.dequeue()
    {'id': 1}
"""

from ._lease import Lease
from ._process import ProcessSafeDQue, attach
from ._queue import DQue
from ._serializers import BytesSerializer, JsonSerializer, PickleSerializer
from .errors import (
    ClosedError,
    ConfigError,
    CorruptedError,
    DQueError,
    Empty,
    Full,
    LeaseError,
    LockedError,
    OwnerGoneError,
    SerializationError,
    ShutDown,
    SyncError,
)

new = DQue.new
open = DQue.open  # noqa: A001 - the Go API's name
new_or_open = DQue.new_or_open

__all__ = [
    "DQue",
    "ProcessSafeDQue",
    "attach",
    "OwnerGoneError",
    "LeaseError",
    "Lease",
    "new",
    "open",
    "new_or_open",
    "DQueError",
    "Empty",
    "Full",
    "LockedError",
    "CorruptedError",
    "ClosedError",
    "SerializationError",
    "ConfigError",
    "SyncError",
    "ShutDown",
    "PickleSerializer",
    "JsonSerializer",
    "BytesSerializer",
]
