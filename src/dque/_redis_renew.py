"""The lease renewer of a ``RedisQueue`` handle: one daemon thread, started at its first lease.

Every ``lease_ttl / 3`` seconds it extends the expiry of every lease the
handle holds to ``now + lease_ttl`` (server time; never past a lease's own
``ttl``), in one script. So a lease lives as long as the process that holds
it, and ends at most ``lease_ttl`` after that process dies (or loses the
server). A renewal that fails (server unreachable) is tried again at the next
tick; a lease found taken over (it expired and another handle leased it) is
forgotten, and its ack raises LeaseError.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

_log = logging.getLogger("dque")


class Renewer:
    """Renews the leases of one queue handle while the handle is open."""

    def __init__(self, queue: Any) -> None:
        self._queue = weakref.ref(queue)
        self._interval = min(queue.lease_ttl / 3, 3600.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread if it is not running (idempotent, cheap)."""
        if self._thread is not None:
            return
        with self._lock:
            queue = self._queue()
            if self._thread is None and not self._stop.is_set() and queue is not None:
                self._thread = threading.Thread(target=self._run, name=f"dque-renew {queue.name}", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (bounded: one renewal at most)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self._interval):
            queue = self._queue()
            if queue is None or queue.closed:
                return
            held = queue._held()
            del queue
            if not held:
                continue
            queue = self._queue()
            if queue is None:
                return
            try:
                queue._renew(held)
                if failed:
                    _log.warning("dque: renewing the leases of %s works again", queue.name)
                failed = False
            except Exception as exc:  # the server is away: try again at the next tick
                if not failed:
                    _log.error("dque: cannot renew the leases of %s: %r", queue.name, exc)
                failed = True
            finally:
                del queue
