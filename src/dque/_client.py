"""The client side of ProcessSafeDQue: the handle every process uses, and its proxy to the owner.

The creating handle starts the owner (``_owner.py``) as a ``multiprocessing``
manager server and writes its address and random authkey to ``dque.owner``
(mode 0600) in the queue directory; every other handle, children and strangers
alike, connects with them. A handle pickles to just the queue's path and
reconnects that way wherever it is unpickled.

Items cross the connection as serialized bytes: clients serialize and
deserialize, the owner only stores bytes. Every wait of a client has a
deadline: connecting (REPLY_TIMEOUT for the whole handshake) and every reply
(REPLY_TIMEOUT); a blocking call is sent as requests of at most _WAIT_SLICE
seconds of waiting each, re-issued until its timeout, so a stopped or hung
owner gives OwnerGoneError within REPLY_TIMEOUT, never a hang.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.managers
import multiprocessing.util
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from multiprocessing.managers import BaseManager, BaseProxy
from multiprocessing.managers import RemoteError as _RemoteError
from typing import Any, cast

from . import _config
from ._args import check_int, check_options, check_timeout, queue_dir
from ._lease import Lease
from ._lock import DirLock
from ._owner import EXPOSED, OwnerServer, owner_init, served
from ._serializers import Serializer, resolve
from ._wire import _LATE, _NO_KWDS, _WAIT_SLICE, REPLY_TIMEOUT, _monotonic, _Wire, dial, set_timeouts, socket_of
from .errors import ClosedError, Empty, Full, LockedError, OwnerGoneError, SerializationError

OWNER_FILE = "dque.owner"

# Linux abstract socket addresses leave no file behind when an owner is killed; elsewhere (or with
# DQUE_SIMULATE_POSIX=1, to test that path on Linux) a socket file in a private (0700) directory.
_PORTABLE = bool(os.environ.get("DQUE_SIMULATE_POSIX"))
_ABSTRACT = sys.platform.startswith("linux") and not _PORTABLE


class _QueueProxy(BaseProxy):
    """A proxy with connections of its own, and a deadline on every wait for the owner.

    BaseProxy shares one connection per thread among all proxies to an
    address and closes it when the last proxy with that referent id goes; every
    handle here has the same referent, so closing one handle would close the
    others' connection. Each handle gets its own.
    """

    def __init__(
        self,
        token: Any,
        serializer: str,
        manager: Any = None,
        authkey: Any = None,
        exposed: Any = None,
        incref: bool = True,
        manager_owned: bool = False,
    ) -> None:
        super().__init__(token, serializer, manager, authkey, exposed, incref=False, manager_owned=manager_owned)
        self._Client = _client_for_manager  # (incref/decref, with a deadline too)
        self._tls = multiprocessing.util.ForkAwareLocal()
        self._idset = cast(Any, multiprocessing.managers).ProcessLocalSet()
        if incref:
            self._incref()

    _exposed_ = EXPOSED
    # Set by BaseProxy.__init__, or BaseProxy's own (not in typeshed's stub of BaseProxy).
    _id: str
    _token: Any
    _authkey: bytes
    _incref: Callable[[], None]
    _info: dict[str, Any]

    def _callmethod(self, methodname: str, args: tuple[Any, ...] = (), kwds: dict[str, Any] | None = None) -> Any:
        # BaseProxy._callmethod through a _Wire, with a lost or silent owner reported as OwnerGoneError.
        try:
            wire = self._tls.wire
        except AttributeError:
            wire = self._open()
        try:
            wire.send((self._id, methodname, args, kwds or _NO_KWDS, _monotonic() + _LATE))
            kind, result = wire.recv()
        except BlockingIOError:  # the socket's deadline (REPLY_TIMEOUT) passed
            reply = self._give_up(wire)
            if reply is None:
                raise OwnerGoneError(
                    f"the owner of the queue (at {self._token.address!r}) did not answer within {REPLY_TIMEOUT:g} s: "
                    "it is stopped, hung or overloaded. It will not carry out this call later, but may have stopped "
                    "in the middle of it. Check the owner process (the pid in dque.owner); the next call reconnects"
                ) from None
            kind, result = reply
        except (OSError, EOFError) as exc:
            self._disconnect()
            raise OwnerGoneError(f"lost the owner of the queue: {exc!r}") from None
        if kind == "#RETURN":
            return result
        try:
            if kind == "#ERROR":
                raise result
            raise _RemoteError(result)
        finally:
            del result  # no cycle through the traceback keeping this proxy alive

    def _give_up(self, wire: _Wire) -> tuple[str, Any] | None:
        """Hang up on an owner that did not answer in time; the reply if it came all the same.

        After the shutdown the owner can write nothing more (it learns that the
        reply was not delivered, and puts taken items back); what it wrote before
        is read here, so a reply is either received or known undelivered by both.
        """
        try:
            socket_of(wire.fd, socket.socket.shutdown, socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            reply = cast(tuple[str, Any], wire.recv())  # (never blocks once shut down)
        except Exception:
            reply = None
        self._disconnect()
        return reply

    def _open(self) -> _Wire:
        """Connect this thread to the owner and introduce its process, within REPLY_TIMEOUT.

        Sets ``self._info`` to the owner's ``check()``; OwnerGoneError if the
        owner cannot be reached, does not authenticate, or does not answer in time.
        """
        address = self._token.address
        deadline = time.monotonic() + REPLY_TIMEOUT
        try:
            conn = dial(address, bytes(self._authkey), deadline)
        except (OSError, EOFError, multiprocessing.AuthenticationError) as exc:
            raise OwnerGoneError(_unreachable(address, exc)) from None
        self._tls.connection = conn
        wire = _Wire(conn)
        try:
            name = f"{os.getpid()}|{threading.current_thread().name}"
            wire.send((None, "accept_connection", (name,), _NO_KWDS))  # (the two requests in one round trip)
            wire.send((self._id, "hello", (_process_id(), os.getpid()), _NO_KWDS, _monotonic() + _LATE))
            accepted, _ = wire.recv()
            kind, result = wire.recv()
            if accepted != "#RETURN":
                raise OSError("the owner refused the connection")
            set_timeouts(wire.fd, REPLY_TIMEOUT)
        except (OSError, EOFError) as exc:
            self._disconnect()
            raise OwnerGoneError(_unreachable(address, exc)) from None
        if kind != "#RETURN":
            self._disconnect()
            if kind == "#ERROR":
                raise result
            raise _RemoteError(result)
        self._info = result
        self._tls.wire = wire
        return wire

    def _disconnect(self) -> None:
        conn = getattr(self._tls, "connection", None)
        if conn is not None:
            del self._tls.connection
            vars(self._tls).pop("wire", None)
            conn.close()


def _unreachable(address: str, exc: BaseException) -> str:
    if isinstance(exc, (BlockingIOError, TimeoutError)):
        why = f"it did not answer within {REPLY_TIMEOUT:g} s (stopped, hung or overloaded?)"
    else:
        why = repr(exc)
    return f"cannot reach the owner of the queue at {address!r}: {why}; check the owner process (the pid in dque.owner)"


def _client_for_manager(address: str, authkey: bytes | None = None) -> Any:
    """``multiprocessing.connection.Client`` with deadlines: for the manager's own requests (create, incref, shutdown)."""
    return dial(address, bytes(authkey or b""), time.monotonic() + REPLY_TIMEOUT)


_PROCESS_ID: list[str] = []


def _process_id() -> str:
    """This process's id for the owner (new in a forked child)."""
    if not _PROCESS_ID or not _PROCESS_ID[0].startswith(f"{os.getpid()}-"):
        _PROCESS_ID[:] = [f"{os.getpid()}-{secrets.token_hex(8)}"]
    return _PROCESS_ID[0]


class DQueManager(BaseManager):
    """The manager whose server is a queue's owner process."""

    _Server = OwnerServer
    queue: Callable[[], _QueueProxy]  # (made by register below)
    _process: Any  # the owner process (BaseManager's, not in typeshed's stub)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._Client = _client_for_manager


DQueManager.register("queue", callable=served, proxytype=_QueueProxy)


def _new_address() -> tuple[str, str | None]:
    """A fresh address for an owner, and the private directory holding it (None for an abstract one)."""
    if _ABSTRACT:  # a Linux abstract socket: no file to leave behind when the owner is killed
        return f"\0dque-{os.getpid()}-{secrets.token_hex(8)}", None
    sockdir = tempfile.mkdtemp(prefix="dque-")  # mode 0700: only this user reaches the socket
    return os.path.join(sockdir, "owner"), sockdir


def _write_owner_file(qdir: str, info: dict[str, Any]) -> None:
    path = os.path.join(qdir, OWNER_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps(info).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_owner_file(qdir: str) -> dict[str, Any]:
    try:
        fd = os.open(os.path.join(qdir, OWNER_FILE), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        if not _config.exists(qdir):
            raise FileNotFoundError(f"no queue at {qdir}") from None
        raise OwnerGoneError(f"no owner process is serving queue {qdir}") from None
    try:
        return cast(dict[str, Any], json.loads(os.read(fd, 1 << 16)))
    except ValueError as exc:
        raise OwnerGoneError(f"unreadable owner file in {qdir}: {exc}") from None
    finally:
        os.close(fd)


class ProcessSafeDQue:
    """A durable queue shared by many processes through one owner process.

    Creating one starts the owner, which opens the queue ``dirpath/name``
    (new-or-open) and holds its lock for as long as it runs. The handle
    offers the whole DQue API with the same semantics and exception types,
    is picklable (to Pool workers, ``Process`` targets, under every start
    method), and is safe to use from many threads.

    ``close()`` on the creating handle syncs, releases the lock and stops the
    owner; on any other handle it only disconnects. If the owner dies, every
    call (including one blocked waiting) raises OwnerGoneError; so does every
    call the owner does not answer within REPLY_TIMEOUT (it is stopped or hung),
    blocking calls too, whatever their timeout: no call waits forever on an
    owner that cannot answer.

    ``if_locked="attach"`` attaches to a live owner instead of raising
    LockedError when the queue is already held by one.
    """

    path: str
    dirpath: str
    name: str
    _proxy: _QueueProxy | None  # None until the first call of a handle unpickled here
    _token: str | None  # the owner's token in dque.owner: a new owner has another
    _manager: DQueManager | None  # on the creating handle only
    _finalizer: weakref.finalize[..., ProcessSafeDQue] | None
    _pid: int
    _closed: bool

    def __init__(
        self,
        name: str,
        dirpath: str | os.PathLike[str],
        segment_size: int | None = None,
        turbo: bool = False,
        serializer: str | Serializer | None = None,
        maxsize: int | None = None,
        max_deliveries: int | None = None,
        *,
        context: str | Any | None = None,
        if_locked: str = "raise",
        group_access: bool = False,
        segment_bytes: int | None = None,
    ) -> None:
        qdir = queue_dir(name, dirpath)
        check_options(segment_size, maxsize, max_deliveries, serializer)
        if not isinstance(group_access, bool):
            raise TypeError(f"group_access must be True or False, not {type(group_access).__name__}")
        if segment_bytes is not None:
            check_int(segment_bytes, "segment_bytes", 0)
        if if_locked not in ("raise", "attach"):
            raise ValueError("if_locked must be 'raise' or 'attach'")
        self._closed = True
        try:
            options = {
                "segment_size": segment_size,
                "turbo": bool(turbo),
                "serializer": serializer,
                "maxsize": maxsize,
                "max_deliveries": max_deliveries,
                "group_access": group_access,
                "segment_bytes": segment_bytes,
            }
            self._start_owner(name, os.fspath(dirpath), qdir, options, context)
        except LockedError as locked:
            if if_locked == "raise":
                raise
            try:
                self._connect(qdir, wait=5.0)
            except OwnerGoneError:
                raise locked from None  # held, but by no owner process (a plain DQue, say)

    def _start_owner(self, name: str, dirpath: str, qdir: str, options: dict[str, Any], context: Any) -> None:
        if _config.exists(qdir):  # refuse at once if someone holds it, before starting a process
            probe = DirLock(qdir)
            probe.acquire()
            probe.release()
        ctx = multiprocessing.get_context(context) if context is None or isinstance(context, str) else context
        authkey = os.urandom(32)
        address, sockdir = _new_address()
        manager = DQueManager(address=address, authkey=authkey, ctx=ctx)
        try:
            manager.start(owner_init, (name, dirpath, options, sockdir))
        except BaseException:
            _remove_sockdir(sockdir)
            raise
        try:
            proxy = manager.queue()
            proxy._open()
            info = proxy._info
            token = secrets.token_hex(8)
            _write_owner_file(
                qdir,
                {
                    "address": address,
                    "authkey": authkey.hex(),
                    "pid": manager._process.pid,
                    "token": token,
                    "ident": proxy._id,
                },
            )
        except BaseException:
            manager.shutdown()
            _remove_sockdir(sockdir)
            raise
        self._setup(qdir, proxy, info, token, manager, sockdir)

    def _connect(self, qdir: str, wait: float = 0.0) -> None:
        """Connect to the owner named in the queue's owner file (retrying for ``wait`` seconds).

        Each attempt takes at most REPLY_TIMEOUT; OwnerGoneError or FileNotFoundError.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                owner = _read_owner_file(qdir)
                try:
                    token = multiprocessing.managers.Token("queue", owner["address"], owner["ident"])
                    authkey = bytes.fromhex(owner["authkey"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise OwnerGoneError(f"unusable owner file in {qdir}: {exc!r}") from None
                proxy = _QueueProxy(token, "pickle", authkey=authkey, incref=False)
                proxy._open()
                info = proxy._info
                break
            except (OwnerGoneError, FileNotFoundError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self._setup(qdir, proxy, info, owner["token"], None)

    def _setup(
        self, qdir: str, proxy: _QueueProxy, info: dict[str, Any], token: str, manager: Any, sockdir: str | None = None
    ) -> None:
        self.path = qdir
        self.dirpath, self.name = os.path.split(qdir)
        self._segment_size: int = info["segment_size"]
        _, ser = resolve(info["serializer"])
        self._dumps = ser.dumps
        self._loads = ser.loads
        self._proxy = proxy
        self._token = token
        self._manager = manager  # set on the creating handle only
        self._pid = os.getpid()
        self._closed = False
        self._finalizer = None
        if manager is not None:
            self._finalizer = weakref.finalize(self, _stop_owner, proxy, manager, qdir, self._pid, sockdir)

    @property
    def segment_size(self) -> int:
        """The queue's segment size (from its config)."""
        self._ensure_connected()
        return self._segment_size

    # ---------------------------------------------------------- plumbing

    @classmethod
    def _unconnected(cls, qdir: str) -> ProcessSafeDQue:
        """A handle that connects to the queue's owner at its first call (see _reattach)."""
        handle = cls.__new__(cls)
        handle.path = qdir
        handle.dirpath, handle.name = os.path.split(qdir)
        handle._proxy = None
        handle._token = None
        handle._manager = None
        handle._finalizer = None
        handle._pid = os.getpid()
        handle._closed = False
        return handle

    def _ensure_connected(self) -> None:
        if self._closed:
            raise ClosedError(f"queue handle {self.path} is closed")
        if self._proxy is None:
            self._connect(self.path)  # OwnerGoneError/FileNotFoundError here, in the caller

    def _call(self, method: str, *args: Any) -> Any:
        proxy = self._proxy
        if self._closed or proxy is None:
            self._ensure_connected()
            proxy = cast(_QueueProxy, self._proxy)
        try:
            return proxy._callmethod(method, args)
        except (ClosedError, OwnerGoneError) as exc:
            if self._closed:  # this handle was closed while the call waited: as DQue says it
                raise ClosedError(f"queue handle {self.path} was closed") from None
            if isinstance(
                exc, ClosedError
            ):  # the handle is open: the owner's queue closed (its creator closed or died)
                raise OwnerGoneError(f"the owner of queue {self.path} has closed it") from None
            raise

    def _wait(self, timeout: float | None, method: str, *args: Any, tail: tuple[Any, ...] = ()) -> Any:
        """``self._call(method, *args, True, wait, *tail)`` in waits of at most _WAIT_SLICE, until ``timeout`` (None: forever).

        The owner answers each request within its wait (Empty or Full when
        nothing came), so every reply has the same deadline, REPLY_TIMEOUT, and a
        stopped owner is noticed even by a call that waits forever.
        """
        if timeout is not None and timeout <= _WAIT_SLICE:
            return self._call(method, *args, True, timeout, *tail)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _WAIT_SLICE if deadline is None else max(0.0, min(_WAIT_SLICE, deadline - time.monotonic()))
            try:
                return self._call(method, *args, True, wait, *tail)
            except (Empty, Full):
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def _serialize(self, item: Any) -> bytes:
        if self._closed or self._proxy is None:
            self._ensure_connected()  # for the serializer
        try:
            payload = self._dumps(item)
        except Exception as exc:
            raise SerializationError(f"cannot serialize {type(item).__name__} item: {exc!r}") from exc
        if not isinstance(payload, bytes):
            if not isinstance(payload, (bytearray, memoryview)):
                raise SerializationError(f"serializer returned {type(payload).__name__}, not bytes")
            payload = bytes(payload)
        return payload

    def _serialize_all(self, items: Iterable[Any]) -> list[bytes]:
        """``[self._serialize(item) for item in items]``, without per-item Python when every payload is bytes."""
        if self._closed or self._proxy is None:
            self._ensure_connected()  # for the serializer
        if not isinstance(items, (list, tuple)):
            items = list(items)  # (read once: the fallback below reads it again)
        try:
            payloads = list(map(self._dumps, items))
        except Exception:
            payloads = []  # the item that fails is found below
        else:
            if all(type(p) is bytes for p in payloads):
                return payloads
        return [self._serialize(item) for item in items]

    def _deserialize(self, payload: bytes) -> Any:
        try:
            return self._loads(payload)
        except Exception as exc:
            err = SerializationError(f"cannot deserialize an item taken from {self.path}: {exc!r}")
            vars(err)["payload"] = payload  # the item's bytes: it has left the queue
            raise err from exc

    def __reduce__(self) -> tuple[Callable[[str], ProcessSafeDQue], tuple[str]]:
        return (_reattach, (self.path,))

    # ---------------------------------------------------------- the API

    def enqueue(self, item: Any) -> None:
        """Add ``item`` without blocking; Full at ``maxsize``. Durable on return in safe mode."""
        payload = self._serialize(item)
        self._call("put", [payload], False, None)

    def enqueue_many(self, items: Iterable[Any]) -> None:
        """Add all ``items``, in order, all or nothing; one round trip and one sync."""
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError("enqueue_many takes an iterable of items")
        self._call("put", self._serialize_all(items), False, None)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``queue.Queue.put``: waits for room while at ``maxsize`` (Full on timeout or if not ``block``)."""
        if not block:
            self._call("put", [self._serialize(item)], False, None)
            return
        check_timeout(timeout)
        self._wait(timeout, "put", [self._serialize(item)])

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def dequeue(self) -> Any:
        """Remove and return the head item without blocking; Empty if none."""
        payloads = self._call("take", 1, False, None)
        if not payloads:
            raise Empty
        return self._deserialize(payloads[0])

    def dequeue_many(self, max_items: int) -> list[Any]:
        """Remove and return up to ``max_items`` items (maybe none); one round trip and one sync."""
        check_int(max_items, "max_items", 0)
        if max_items == 0:
            self._call("call", "size")
            return []
        payloads: list[bytes] = self._call("take", max_items, False, None)
        try:
            return list(map(self._loads, payloads))  # (the common case, without per-item Python here)
        except Exception:
            return [self._deserialize(p) for p in payloads]  # the item that fails, as SerializationError

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: waits up to ``timeout`` (None: forever) if ``block``; Empty if none."""
        if not block:
            return self.dequeue()
        check_timeout(timeout)
        if timeout is not None and timeout <= _WAIT_SLICE:  # (_wait's first case, inline: the common one)
            return self._deserialize(self._call("take", 1, True, timeout)[0])
        return self._deserialize(self._wait(timeout, "take", 1)[0])

    def get_nowait(self) -> Any:
        return self.dequeue()

    def dequeue_block(self, timeout: float | None = None) -> Any:
        """Remove and return the head item, waiting up to ``timeout`` seconds; Empty on timeout."""
        return self.get(True, timeout)

    def peek(self) -> Any:
        """The head item, not removed; Empty if none."""
        return self._deserialize(self._call("peek", False, None))

    def peek_block(self, timeout: float | None = None) -> Any:
        """The head item, not removed, waiting up to ``timeout`` seconds; Empty on timeout."""
        check_timeout(timeout)
        return self._deserialize(self._wait(timeout, "peek"))

    def lease(self, block: bool = True, timeout: float | None = None, ttl: float | None = None) -> Lease:
        """Take the head item under a lease (see ``DQue.lease``); Empty on timeout or if not ``block``.

        The lease belongs to this process (any thread may ack it): when the
        process dies, the owner releases it at once. An item that cannot be
        deserialized here is released and SerializationError raised.
        """
        if block:
            check_timeout(timeout)
            got = self._wait(timeout, "lease", 1, tail=(ttl,))
        else:
            got = self._call("lease", 1, False, None, ttl)
        if not got:
            raise Empty
        return self._make_leases(got)[0]

    def lease_many(self, max_items: int, ttl: float | None = None) -> list[Lease]:
        """Lease up to ``max_items`` ready items without blocking (maybe none); one round trip and one sync."""
        check_int(max_items, "max_items", 0)
        if max_items == 0:
            self._call("call", "size")
            return []
        return self._make_leases(self._call("lease", max_items, False, None, ttl))

    def _make_leases(self, got: list[tuple[int, bytes, int]]) -> list[Lease]:
        leases = []
        for lease_id, payload, deliveries in got:
            try:
                item = self._loads(payload)
            except Exception as exc:
                self._call("call", "release_many", [lid for lid, _, _ in got])  # all back, in order
                raise SerializationError(f"cannot deserialize an item leased from {self.path}: {exc!r}") from exc
            leases.append(Lease(self, lease_id, item, deliveries))
        return leases

    def ack(self, lease_id: int) -> None:
        """Delete a leased item for good (durable on return in safe mode); LeaseError if not outstanding."""
        self._call("call", "ack_many", [lease_id])

    def ack_many(self, lease_ids: Iterable[int]) -> None:
        """Ack several leases, all or nothing, with one round trip and one sync."""
        self._call("call", "ack_many", list(lease_ids))

    def release(self, lease_id: int) -> None:
        """Put a leased item back at the head, in its original order; LeaseError if not outstanding."""
        self._call("call", "release_many", [lease_id])

    def release_many(self, lease_ids: Iterable[int]) -> None:
        self._call("call", "release_many", list(lease_ids))

    def in_flight(self) -> int:
        """The number of items leased (by any process) and not yet acked or released."""
        return int(self._call("call", "in_flight"))

    def size(self) -> int:
        """The number of items in the queue."""
        return int(self._call("call", "size"))

    qsize = size

    def __len__(self) -> int:
        return self.size()

    def empty(self) -> bool:
        return bool(self._call("call", "empty"))

    def full(self) -> bool:
        return bool(self._call("call", "full"))

    @property
    def maxsize(self) -> int:
        return int(self._call("get_maxsize"))

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self._call("set_maxsize", value)

    def task_done(self) -> None:
        """Mark one taken item as processed; ValueError if called too often."""
        self._call("call", "task_done")

    def join(self) -> None:
        """Block until every item put has been taken and marked done, by any process."""
        while not self._call("join", _WAIT_SLICE):
            pass

    def shutdown(self, immediate: bool = False) -> None:
        """``DQue.shutdown`` for every process: a shutdown by any handle is seen by all (it is the owner's)."""
        self._call("call", "shutdown", bool(immediate))

    @property
    def is_shutdown(self) -> bool:
        """True once any handle called :meth:`shutdown` (until the owner stops)."""
        return bool(self._call("get_attr", "is_shutdown"))

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done, counted by the owner for every process."""
        return int(self._call("get_attr", "unfinished_tasks"))

    def segment_numbers(self) -> tuple[int, int]:
        return tuple(self._call("call", "segment_numbers"))

    @property
    def turbo(self) -> bool:
        return bool(self._call("get_turbo"))

    def turbo_on(self, max_delay: float | None = None) -> None:
        self._call("call", "turbo_on", max_delay)

    def turbo_off(self) -> None:
        self._call("call", "turbo_off")

    def turbo_sync(self) -> None:
        self._call("call", "turbo_sync")

    @property
    def is_owner(self) -> bool:
        """True on the handle that created the owner (in the process that created it)."""
        return self._manager is not None and self._pid == os.getpid()

    def close(self) -> None:
        """Creating handle: sync, release the lock, stop the owner. Others: disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.is_owner and self._finalizer is not None:
            self._finalizer()
        else:
            if self._proxy is not None:
                self._proxy._disconnect()
            if self._finalizer is not None:
                self._finalizer.detach()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ProcessSafeDQue:
        if self._closed:
            raise ClosedError(f"queue handle {self.path} is closed")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        role = "owner" if self.is_owner else "client"
        return f"<ProcessSafeDQue {getattr(self, 'path', '?')!r} {role}{' closed' if self._closed else ''}>"


def _remove_sockdir(sockdir: str | None) -> None:
    if sockdir is not None:
        shutil.rmtree(sockdir, ignore_errors=True)


def _stop_owner(proxy: _QueueProxy, manager: Any, qdir: str, creator_pid: int, sockdir: str | None = None) -> None:
    if os.getpid() != creator_pid:
        return  # a forked child dropping its copy of the creating handle stops nothing
    try:
        proxy._callmethod("close")
    except Exception:
        pass
    try:
        path = os.path.join(qdir, OWNER_FILE)
        with open(path) as f:
            if json.load(f).get("pid") == manager._process.pid:
                os.unlink(path)
    except (OSError, ValueError):
        pass
    try:
        manager.shutdown()
    finally:
        _remove_sockdir(sockdir)


_attached: dict[tuple[int, str], ProcessSafeDQue] = {}
_attached_lock = threading.Lock()


def _reattach(qdir: str) -> ProcessSafeDQue:
    """Unpickle a handle: reuse this process's connection to the queue's owner, or make one."""
    # Never connect here: an exception while a Pool worker unpickles its task is taken for a
    # broken pipe when it is an OSError (OwnerGoneError is a ConnectionError): the worker exits,
    # the task is lost and map() waits forever. The handle connects at its first call instead.
    key = (os.getpid(), qdir)
    with _attached_lock:
        handle = _attached.get(key)
        if handle is not None and not handle._closed and handle._proxy is not None:
            try:
                token = _read_owner_file(qdir).get("token")
            except (OwnerGoneError, FileNotFoundError):
                token = None
            if token != handle._token:  # its owner has been replaced, or is gone
                handle.close()
        if handle is None or handle._closed:
            handle = ProcessSafeDQue._unconnected(qdir)
            _attached[key] = handle
        return handle


def attach(name: str, dirpath: str | os.PathLike[str], *, create: bool = False, **options: Any) -> ProcessSafeDQue:
    """Connect to the owner already serving queue ``dirpath/name``, from any process of the same user.

    Raises OwnerGoneError if no owner is running (FileNotFoundError if there
    is no queue at all), unless ``create`` is true: then a new owner is
    started with ``options`` (the ProcessSafeDQue arguments) and returned.
    """
    qdir = queue_dir(name, dirpath)
    handle = ProcessSafeDQue.__new__(ProcessSafeDQue)
    handle._closed = True
    try:
        handle._connect(qdir)
    except (OwnerGoneError, FileNotFoundError):
        if not create:
            raise
        return ProcessSafeDQue(name, dirpath, if_locked="attach", **options)
    return handle
