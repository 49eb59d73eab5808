"""``ProcessSafeDQue``: one owner process holds the queue, every process reaches it through a proxy.

The process layer: ``_wire`` (the framing and deadlines both ends share),
``_owner`` (the owner process: one event loop serving every client), with
``_served`` (what it serves: the open queue, its start and end) and
``_parking`` (blocking calls parked with their deadlines), and ``_client``
(the handle and its proxy). This module gathers what the rest of the package
and the tests import.
"""

from ._client import _ABSTRACT, OWNER_FILE, DQueManager, ProcessSafeDQue, _QueueProxy, attach
from ._owner import _PIDFD, _SLICE
from ._wire import _LATE, _WAIT_SLICE, REPLY_TIMEOUT, _Wire

__all__ = [
    "OWNER_FILE", "REPLY_TIMEOUT", "_ABSTRACT", "_LATE", "_PIDFD", "_SLICE", "_WAIT_SLICE", "DQueManager",
    "ProcessSafeDQue", "_QueueProxy", "_Wire", "attach",
]  # fmt: skip
