"""The owner process of a ProcessSafeDQue: one thread, one event loop, every client.

The owner is a ``multiprocessing`` manager server whose ``serve_forever`` is
replaced by :class:`OwnerServer`'s loop: one ``poll`` loop on the
listener, every client connection and the pidfd of every client process (no
thread per client). Each turn of the loop

1. accepts new connections and authenticates each with the manager's authkey
   handshake (``deliver_challenge``/``answer_challenge``) under a deadline of
   _HANDSHAKE seconds;
2. reads every request that is ready and carries them out in order (a request
   read more than _LATE seconds after it was sent is refused: its client may
   have given up already);
3. in safe mode carries them out (and the parked calls they make servable)
   in turbo, then makes **one sync for all of them** before answering any
   (group commit across processes: a put and the take it wakes share a sync,
   and the requests that arrive during a sync share the next);
4. answers each (a reply is written without blocking; what does not fit waits
   for the socket to drain).

A blocking call (``get``, ``lease(timeout)``, ``put`` on a full queue,
``peek_block``, ``join``) that cannot be served at once is **parked** with its
deadline: after every request that may have made an item or room appear (and
every _SLICE seconds, for leases that expire) the parked callers are retried
in the order they came, and at its deadline a parked caller is answered
Empty/Full (False for ``join``). A client that hangs up while parked is
forgotten; a reply carrying items that cannot be delivered gives them back
(see :func:`_undeliverable`).

Leases belong to client processes: the loop watches each client's pidfd (or
polls its pid every _POLL_PIDS seconds where there is no pidfd) and releases
its leases the moment it dies. A thread (the only other one) watches the
creating process and closes the queue and exits when it dies.

What the loop serves (the open queue, its start and end) is in ``_served.py``;
blocking calls as attempts to retry, in ``_parking.py``; the bytes on the
wire, in ``_wire.py``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.managers import Server
from traceback import format_exc
from typing import Any, cast

from ._parking import BLOCKING, NOT_BLOCKING, NOT_YET, Parked, blocking_call
from ._queue import DQue
from ._served import EXPOSED, OWNER, owner_init, served, undeliverable
from ._wire import _LATE, Frames, frame, timeval
from .errors import ClosedError, OwnerGoneError, SyncError

__all__ = ["EXPOSED", "OWNER", "OwnerServer", "owner_init", "served"]

_HANDSHAKE = 1.0  # seconds a new connection has to authenticate (the loop waits for it: keep it short)
_SLICE = 0.1  # seconds between retries of parked callers while nothing happens (leases expiring)
_POLL_PIDS = 0.5  # seconds between checks of the client pids, without pidfd
_PIDFD = hasattr(os, "pidfd_open") and not os.environ.get("DQUE_SIMULATE_POSIX")


# Requests that change nothing a parked caller waits for (no retry of the parked after them).
_READ_ONLY = frozenset({"check", "hello", "get_maxsize", "get_turbo", "get_attr"})
_READ_ONLY_CALLS = frozenset({"size", "full", "empty", "segment_numbers", "in_flight"})
# Requests that see or change the sync mode: a group sync in progress ends before them.
_UNGROUPED_CALLS = frozenset({"turbo_on", "turbo_off", "turbo_sync"})
_GONE: Any = object()  # (an event of a descriptor closed earlier in the same turn)
_READ = select.POLLIN
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR  # (a hang-up is read as end of file)


# ------------------------------------------------------------------ connections


class _Conn:
    """One client connection of the loop: its bytes in and out, and who is at the other end."""

    __slots__ = ("conn", "fd", "frames", "inbox", "outbox", "process", "accepted", "parked", "closed")

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        self.frames = Frames()
        self.inbox: deque[object] = deque()  # requests read and not yet carried out (behind a parked one)
        self.outbox: deque[_Reply] = deque()  # replies not yet (wholly) written
        self.process: str | None = None  # the client process's id (from its hello)
        self.accepted = False  # past the manager's first request (accept_connection)
        self.parked: Parked | None = None
        self.closed = False


class _Reply:
    """A reply to write, and what it answers (to give back items it carries if it cannot be delivered)."""

    __slots__ = ("data", "method", "args", "msg")

    def __init__(self, data: bytes | memoryview, method: str, args: tuple[Any, ...], msg: tuple[str, Any]) -> None:
        self.data, self.method, self.args, self.msg = data, method, args, msg


# ------------------------------------------------------------------ the loop


class OwnerServer(Server):
    """The manager server of an owner: ``serve_forever`` runs the event loop described in the module docstring."""

    # Set by Server.__init__ (not in typeshed's stub of Server).
    listener: Any
    authkey: bytes
    public: list[str]

    def serve_forever(self) -> None:
        self.stop_event = threading.Event()
        cast(Any, multiprocessing.current_process())._manager_server = self  # (as Server.serve_forever does)
        try:
            _Loop(self).run()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            sys.exit(0)


class _Loop:
    """The owner's single thread: accepts, reads, carries out, parks, syncs, answers (see the module docstring)."""

    def __init__(self, server: OwnerServer) -> None:
        self.server = server
        self.poller = select.poll()
        self.handlers: dict[int, _Conn | str | None] = {}  # fd -> its connection, client process id, None: listener
        self.lsock = cast(socket.socket, server.listener._listener._socket)
        self.lsock.setblocking(False)
        self._register(self.lsock.fileno(), None)
        self.parked: list[Parked] = []  # in the order they came
        self.unparked: list[_Conn] = []  # connections whose parked call was just answered
        self.changed = False  # something a parked call may wait for happened since they were last retried
        self.next_retry = 0.0  # the next retry of the parked calls even if nothing changed (_SLICE)
        self.held: list[tuple[_Conn, str, tuple[Any, ...], tuple[str, Any]]] | None = None  # replies awaiting a sync
        self.watched: dict[str, int] = {}  # client process id -> pid (pidfd or polled)
        self.pidfds: dict[int, str] = {}
        self.next_poll = 0.0

    def run(self) -> None:
        stop = self.server.stop_event
        poll, handlers = self.poller.poll, self.handlers
        while not stop.is_set():
            events = poll(self._timeout() * 1000.0)
            ready: list[_Conn] = []
            for fd, mask in events:
                data = handlers.get(fd, _GONE)
                if data is None:
                    self._accept()
                elif isinstance(data, str):
                    self._died(fd, data)
                elif isinstance(data, _Conn):
                    if mask & select.POLLOUT:
                        self._flush(data)
                    if mask & _READABLE and not data.closed and self._read(data):
                        ready.append(data)
            if ready:
                self._carry_out(ready)
            if self.parked:
                if time.monotonic() >= self.next_retry:  # (leases expire in the engine, unseen by the loop)
                    self.next_retry = time.monotonic() + _SLICE
                    self.changed = True
                self._serve_parked()
                self._expire_parked()
            if self.watched and time.monotonic() >= self.next_poll:
                self._poll_pids()

    def _timeout(self) -> float:
        timeout = 1.0  # (a stop asked from outside the loop is seen within this)
        if self.parked:
            first = min(self.next_retry, min(p.deadline for p in self.parked))
            timeout = max(0.0, first - time.monotonic())
        if len(self.watched) > len(self.pidfds):
            timeout = min(timeout, max(0.0, self.next_poll - time.monotonic()))
        return timeout

    # ---------------------------------------------------------- connections

    def _accept(self) -> None:
        """Accept every pending connection and authenticate it, each within _HANDSHAKE seconds."""
        while True:
            try:
                sock, _ = self.lsock.accept()
            except OSError:  # (BlockingIOError: none left)
                return
            try:
                sock.setblocking(True)
                value = timeval(_HANDSHAKE)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
                conn = multiprocessing.connection.Connection(sock.detach())
            finally:
                sock.close()
            try:
                authkey = self.server.authkey
                multiprocessing.connection.deliver_challenge(conn, authkey)
                multiprocessing.connection.answer_challenge(conn, authkey)
            except Exception:  # a stranger, or too slow: hung up on
                conn.close()
                continue
            os.set_blocking(conn.fileno(), False)
            client = _Conn(conn)
            self._register(client.fd, client)

    def _read(self, conn: _Conn) -> bool:
        """Read what ``conn`` sent into its inbox; False if it hung up (it is closed then)."""
        try:
            data = os.read(conn.fd, 1 << 16)
            if data:
                conn.inbox.extend(conn.frames.feed(data))
                return True
        except BlockingIOError:
            return True
        except Exception:
            pass  # reset, or a message that does not unpickle: hang up
        self._close(conn)
        return False

    def _close(self, conn: _Conn) -> None:
        """Forget a connection: its parked call goes, replies not yet written are undeliverable."""
        if conn.closed:
            return
        conn.closed = True
        if conn.parked is not None:
            self.parked.remove(conn.parked)
            conn.parked = None
        self._unregister(conn.fd)
        conn.conn.close()
        for reply in conn.outbox:
            undeliverable(reply.method, reply.args, reply.msg)
        conn.outbox.clear()

    def _send(self, conn: _Conn, method: str, args: tuple[Any, ...], msg: tuple[str, Any]) -> None:
        if self.held is not None:
            self.held.append((conn, method, args, msg))
            return
        if conn.closed:
            undeliverable(method, args, msg)
            return
        try:
            data: bytes | memoryview = frame(msg)
        except Exception:  # the reply cannot be pickled
            data = frame(("#UNSERIALIZABLE", format_exc()))
        if not conn.outbox:  # (the common case: written at once, whole)
            try:
                written = os.write(conn.fd, data)
            except BlockingIOError:
                written = 0
            except OSError:  # the client is gone (or gave up and shut the socket down)
                undeliverable(method, args, msg)
                self._close(conn)
                return
            if written == len(data):
                return
            data = memoryview(data)[written:]
            self.poller.modify(conn.fd, _READ | select.POLLOUT)
        conn.outbox.append(_Reply(data, method, args, msg))

    def _flush(self, conn: _Conn) -> None:
        """Write what ``conn``'s outbox holds, as far as the socket takes it without blocking."""
        outbox = conn.outbox
        try:
            while outbox:
                reply = outbox[0]
                written = os.write(conn.fd, reply.data)
                if written < len(reply.data):
                    reply.data = memoryview(reply.data)[written:]
                    break
                outbox.popleft()
        except BlockingIOError:
            pass
        except OSError:  # the client is gone (or gave up and shut the socket down)
            self._close(conn)
            return
        if not outbox:
            self.poller.modify(conn.fd, _READ)

    def _register(self, fd: int, handler: _Conn | str | None) -> None:
        self.handlers[fd] = handler
        self.poller.register(fd, _READ)

    def _unregister(self, fd: int) -> None:
        del self.handlers[fd]
        self.poller.unregister(fd)

    # ---------------------------------------------------------- requests

    def _carry_out(self, ready: list[_Conn]) -> None:
        """Carry out every request read, in order, and serve the parked; in safe mode one sync for all of them.

        The sync comes before any answer: a reply to a write still means "durable".
        """
        q = OWNER.queue
        if q is not None and not q.turbo:
            self._begin_group(q)
        try:
            for conn in ready:
                while conn.inbox and conn.parked is None and not conn.closed:
                    self._request(conn, conn.inbox.popleft())
            if self.parked:
                self._serve_parked()
        finally:
            self._end_group()

    def _begin_group(self, q: DQue) -> None:
        try:
            q.turbo_on(float("inf"))  # (no syncer thread: the sync is _end_group's)
        except Exception:
            return  # closed, or poisoned: every request says so itself
        self.held = []

    def _end_group(self) -> None:
        """Sync what the group wrote, then send its replies (the error of a failed sync to each write)."""
        held, self.held = self.held, None
        if held is None:
            return
        failed: BaseException | None = None
        q = OWNER.queue
        try:
            if q is not None and not q.closed:
                q.turbo_off()  # (syncs everything written)
        except (SyncError, ClosedError) as exc:  # (closed: by the watchdog, its creator having died)
            failed = exc
        except OSError as exc:
            failed = SyncError(q.path if q is not None else "?", exc)
        for conn, method, args, msg in held:
            if failed is not None and method not in _READ_ONLY and msg[0] == "#RETURN":
                undeliverable(method, args, msg)  # (gives leases back; a failed sync refuses everything later)
                msg = ("#ERROR", failed)
            self._send(conn, method, args, msg)

    def _request(self, conn: _Conn, request: object) -> None:
        if not conn.accepted:
            self._first_request(conn, request)
            return
        method, args = "?", ()
        try:
            ident, method, args, kwds, expires = cast(tuple[str, str, tuple[Any, ...], dict[str, Any], float], request)
            obj, exposed, _ = self.server.id_to_obj[ident]
        except Exception:
            self._send(conn, method, args, ("#TRACEBACK", format_exc()))
            return
        if time.monotonic() > expires:
            late = time.monotonic() - expires + _LATE
            error = OwnerGoneError(
                f"the owner read this {method} request {late:.1f} s after it was sent (it was stopped or "
                "overloaded) and did not carry it out"
            )
            self._send(conn, method, args, ("#ERROR", error))
            return
        if method not in exposed:
            self._send(conn, method, args, self._fallback(conn, ident, obj, method, args, kwds))
            return
        if self.held is not None and (
            method in ("get_turbo", "close") or (method == "call" and args[:1] and args[0] in _UNGROUPED_CALLS)
        ):
            self._end_group()
        try:
            if method in BLOCKING:
                self._blocking(conn, method, args)
                return
            if method == "hello":
                result: Any = self._hello(conn, *cast(tuple[str, int], args))
            else:
                result = getattr(obj, method)(*args, **kwds)
            msg: tuple[str, Any] = ("#RETURN", result)
        except Exception as exc:
            msg = ("#ERROR", exc)
        self._send(conn, method, args, msg)
        if method not in _READ_ONLY and not (method == "call" and args[:1] and args[0] in _READ_ONLY_CALLS):
            self.changed = True
            if self.parked:
                self._serve_parked()

    def _first_request(self, conn: _Conn, request: object) -> None:
        """A connection's first request is the manager's: ``accept_connection`` (a client), or create, incref, shutdown..."""
        server = self.server
        try:
            _, funcname, args, kwds = cast(tuple[Any, str, tuple[Any, ...], dict[str, Any]], request)
            if funcname not in server.public:
                raise ValueError(f"{funcname!r} unrecognized")
            if funcname == "accept_connection":
                conn.accepted = True
                self._send(conn, funcname, (), ("#RETURN", None))
                return
            if funcname == "shutdown":
                server.stop_event.set()
                result = None
            else:
                result = getattr(server, funcname)(conn.conn, *args, **kwds)
            msg: tuple[str, Any] = ("#RETURN", result)
        except Exception:
            msg = ("#TRACEBACK", format_exc())
        held, self.held = self.held, None  # (answered at once: the manager's client closes right after)
        self._send(conn, "?", (), msg)
        self.held = held
        if not conn.outbox:
            self._close(conn)

    def _fallback(
        self, conn: _Conn, ident: str, obj: object, method: str, args: tuple[Any, ...], kwds: dict[str, Any]
    ) -> tuple[str, Any]:
        """The reply to a request for a method not exposed: ``__repr__`` and the like, or a traceback."""
        try:
            fallbacks = cast(dict[str, Callable[..., Any]], self.server.fallback_mapping)
            fallback = fallbacks.get(method)
            if fallback is None:
                raise AttributeError(f"method {method!r} of {type(obj)!r} object is not exposed")
            return ("#RETURN", fallback(self.server, conn.conn, ident, obj, *args, **kwds))
        except Exception:
            return ("#TRACEBACK", format_exc())

    def _hello(self, conn: _Conn, process: str, pid: int) -> dict[str, Any]:
        """A client connection introduces itself (the id and pid of its process); the answer of ``check``."""
        conn.process = process
        self._watch(process, pid)
        return OWNER.check()

    # ---------------------------------------------------------- blocking calls

    def _blocking(self, conn: _Conn, method: str, args: tuple[Any, ...]) -> None:
        """Carry out a possibly blocking call: answer it now, or park it until it can be served or its deadline."""
        q = OWNER.q()
        kind, attempt, block, timeout, expired = blocking_call(q, method, args, conn.process)
        if block and any(p.kind == kind for p in self.parked):  # first come, first served: behind them
            self._serve_parked()  # (if anything changed since they were last retried)
            result = NOT_YET if any(p.kind == kind for p in self.parked) else attempt()
        else:
            result = attempt()
        if result is NOT_YET:
            if not block:
                result = NOT_BLOCKING[method]()
            elif timeout > 0:
                parked = Parked(conn, method, args, kind, attempt, time.monotonic() + timeout, expired)
                conn.parked = parked
                self.parked.append(parked)
                return
            else:
                self._send(conn, method, args, expired)
                return
        self._send(conn, method, args, ("#RETURN", result))
        if method != "peek" and method != "join":
            self.changed = True
            if self.parked:
                self._serve_parked()

    def _serve_parked(self) -> None:
        """Retry the parked calls in the order they came (FIFO within each kind: takes, puts, peeks, joins).

        Does nothing unless something changed since the last retry (``self.changed``:
        a request that may have made an item or room appear, a release, or the
        _SLICE tick for leases expiring in the engine).
        """
        if not self.changed:
            return
        self.changed = False
        while True:
            stuck: set[str] = set()
            served: set[str] = set()
            for parked in list(self.parked):
                if parked.kind in stuck or parked.conn.closed:
                    continue
                try:
                    result = parked.attempt()
                except Exception as exc:
                    msg: tuple[str, Any] = ("#ERROR", exc)
                else:
                    if result is NOT_YET:
                        stuck.add(parked.kind)
                        continue
                    msg = ("#RETURN", result)
                self._unpark(parked)
                self._send(parked.conn, parked.method, parked.args, msg)
                served.add(parked.kind)
            if served:
                self._resume_inboxes()
            # Once more only if what was served may unblock what is stuck: room for a put, an item for a take.
            if not (("take" in served and "put" in stuck) or ("put" in served and stuck & {"take", "peek"})):
                return

    def _expire_parked(self) -> None:
        now = time.monotonic()
        due = [p for p in self.parked if p.deadline <= now]
        for parked in due:
            self._unpark(parked)
            self._send(parked.conn, parked.method, parked.args, parked.expired)
        if due:
            self._resume_inboxes()

    def _unpark(self, parked: Parked) -> None:
        self.parked.remove(parked)
        parked.conn.parked = None
        self.unparked.append(parked.conn)

    def _resume_inboxes(self) -> None:
        """Carry out the requests that waited behind a call that was parked (a client that sent ahead)."""
        conns, self.unparked = self.unparked, []
        for conn in conns:
            while conn.inbox and conn.parked is None and not conn.closed:
                self._request(conn, conn.inbox.popleft())

    # ---------------------------------------------------------- client processes

    def _watch(self, process: str, pid: int) -> None:
        """Release ``process``'s leases once it dies (at once by pidfd, else within _POLL_PIDS)."""
        if process in self.watched:
            return
        if _PIDFD:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                self._release(process)  # dead already
                return
            except OSError:
                pass
            else:
                self.watched[process] = pid
                self.pidfds[fd] = process
                self._register(fd, process)
                return
        self.watched[process] = pid
        self.next_poll = min(self.next_poll or time.monotonic() + _POLL_PIDS, time.monotonic() + _POLL_PIDS)

    def _died(self, fd: int, process: str) -> None:
        self._unregister(fd)
        os.close(fd)
        del self.pidfds[fd]
        self.watched.pop(process, None)
        self._release(process)

    def _poll_pids(self) -> None:
        self.next_poll = time.monotonic() + _POLL_PIDS
        polled = set(self.watched) - set(self.pidfds.values())
        for process in polled:
            if not _alive(self.watched[process]):
                del self.watched[process]
                self._release(process)

    def _release(self, process: str) -> None:
        q = OWNER.queue
        if q is not None:
            try:
                q.release_owner(process)
            except Exception:
                pass  # closing: the leases go back when it reopens
        self.changed = True
        if self.parked:
            self._serve_parked()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # (not ours to signal: it exists)
    return True
