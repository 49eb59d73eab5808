"""The wire between a ProcessSafeDQue client and its owner: framing, deadlines, dialing.

A message is a pickle framed as ``multiprocessing.connection.Connection``
frames it (a 4-byte big-endian length, or -1 and an 8-byte length, then the
body), so either end may use a ``Connection`` or this module. A request is
``(ident, method, args, kwds, expires)``; a reply ``("#RETURN", result)``,
``("#ERROR", exception)`` (raised by the client as it is) or
``("#TRACEBACK", text)``. A request read after ``expires`` (a system-wide
``time.monotonic()``) is refused: its client may have given up already.

Constants both ends agree on live here: REPLY_TIMEOUT, _WAIT_SLICE, _LATE.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import pickle
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

REPLY_TIMEOUT = 5.0
"""Seconds a client waits for any reply of the owner (and for connecting to it) before OwnerGoneError."""
_WAIT_SLICE = 1.0  # seconds of waiting asked of the owner per request: a blocking call re-issues until its timeout
# A request is carried out only if the owner reads it within _LATE seconds of its sending: later, its client
# may have given up already (a stopped owner), so the owner refuses it and a call that raised OwnerGoneError
# for want of an answer changed nothing. _LATE + _WAIT_SLICE + 1 s of work fit in REPLY_TIMEOUT.
_LATE = REPLY_TIMEOUT - _WAIT_SLICE - 1.0

_dumps, _loads, _read, _write, _monotonic = pickle.dumps, pickle.loads, os.read, os.write, time.monotonic
_PROTOCOL = pickle.DEFAULT_PROTOCOL  # what ForkingPickler uses
_SIZE, _BIG_SIZE = struct.Struct("!i"), struct.Struct("!Q")
_MAX_SIZE = 0x7FFFFFFF
_SMALL_MESSAGE = 16384  # larger: header and body written apart, as Connection does
_READ_SIZE = 1 << 16
_NO_KWDS: dict[str, Any] = {}


def frame(obj: object) -> bytes:
    """``obj`` pickled and framed: the bytes of ``Connection.send(obj)``."""
    body = _dumps(obj, _PROTOCOL)
    n = len(body)
    if n <= _MAX_SIZE:
        return _SIZE.pack(n) + body
    return _SIZE.pack(-1) + _BIG_SIZE.pack(n) + body


class Frames:
    """An incremental reader of framed messages (for a non-blocking socket): feed bytes, get messages."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[object]:
        """The messages completed by ``data``, in order. OSError on a bad length."""
        buf = self.buf
        buf += data
        out: list[object] = []
        start = 0
        while len(buf) - start >= 4:
            size = _SIZE.unpack_from(buf, start)[0]
            head = 4
            if size == -1:
                if len(buf) - start < 12:
                    break
                size, head = _BIG_SIZE.unpack_from(buf, start + 4)[0], 12
            elif size < 0:
                raise OSError(f"bad message length {size}")
            end = start + head + size
            if end > len(buf):
                break
            out.append(_loads(memoryview(buf)[start + head : end]))
            start = end
        if start:
            del buf[:start]
        return out


class _Wire:
    """The messages of one connection, sent and received straight on its (blocking) socket.

    It pickles without ForkingPickler (whose per-message copy of its dispatch
    table costs more than the pickling; no message here needs its reducers)
    and reads a small message with one system call.
    """

    __slots__ = ("fd", "rest")

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.fd = conn.fileno()
        self.rest = b""  # bytes read past the last message (a peer that sent ahead)

    def send(self, obj: object) -> None:
        body = _dumps(obj, _PROTOCOL)
        n = len(body)
        if n <= _SMALL_MESSAGE:
            _write_all(self.fd, _SIZE.pack(n) + body)
        else:
            _write_all(self.fd, _SIZE.pack(n) if n <= _MAX_SIZE else _SIZE.pack(-1) + _BIG_SIZE.pack(n))
            _write_all(self.fd, body)

    def recv(self) -> Any:
        """The next message; EOFError if the peer has hung up between messages."""
        data = self.rest or _read(self.fd, _READ_SIZE)
        if len(data) > 4:
            end = 4 + _SIZE.unpack_from(data)[0]
            if 4 <= end <= len(data):
                self.rest = data[end:]
                return _loads(memoryview(data)[4:end])
        return _loads(self._recv_slow(data))

    def _recv_slow(self, data: bytes) -> bytearray:
        """The body of the message starting with ``data``: large, split, or of a peer that sent ahead."""
        buf = bytearray(data)
        start, end = 4, None
        while True:
            if end is None and len(buf) >= 4:
                size = _SIZE.unpack_from(buf)[0]
                if size < -1:
                    raise OSError(f"bad message length {size}")
                if size != -1:
                    end = 4 + size
                elif len(buf) >= 12:
                    start, end = 12, 12 + _BIG_SIZE.unpack_from(buf, 4)[0]
            if end is not None and len(buf) >= end:
                self.rest = bytes(buf[end:])
                del buf[end:]
                del buf[:start]
                return buf
            more = _read(self.fd, max(_READ_SIZE, (end or 0) - len(buf)))
            if not more:
                if buf:
                    raise OSError("got end of file during message")
                raise EOFError
            buf += more


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = _write(fd, data)
    while written < len(data):
        data = memoryview(data)[written:]
        written = _write(fd, data)


# ------------------------------------------------------------------ deadlines on sockets


def timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (at least 1 ms: 0 would mean no deadline at all)."""
    seconds = max(seconds, 0.001)
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1e6))


def socket_of(fd: int, method: Callable[..., Any], *args: Any) -> Any:
    """``method(sock, *args)`` on a socket object lent the connection's fd (which stays open)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
    try:
        return method(sock, *args)
    finally:
        sock.detach()


def set_timeouts(fd: int, seconds: float) -> None:
    """Every later read and write on ``fd`` raises BlockingIOError after ``seconds`` without progress."""
    value = timeval(seconds)

    def set_both(sock: socket.socket) -> None:
        if socket.getdefaulttimeout() is not None:
            sock.setblocking(True)  # (a socket object made with a default timeout set O_NONBLOCK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)

    socket_of(fd, set_both)


def left(deadline: float) -> float:
    """Seconds until ``deadline``; TimeoutError if none are left."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no time left")
    return remaining


def dial(address: str, authkey: bytes, deadline: float) -> multiprocessing.connection.Connection:
    """An authenticated ``Connection`` to the owner at ``address``, by ``deadline``.

    Raises OSError (BlockingIOError or TimeoutError when the deadline passed),
    EOFError, or AuthenticationError. The connection's reads and writes are
    left with the time remaining as their deadline.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(left(deadline))
        sock.connect(address)  # (a stopped owner's listener still accepts: the reads below time out)
        sock.setblocking(True)
        value = timeval(left(deadline))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        conn = multiprocessing.connection.Connection(sock.detach())
    finally:
        sock.close()
    try:
        multiprocessing.connection.answer_challenge(conn, authkey)
        set_timeouts(conn.fileno(), left(deadline))
        multiprocessing.connection.deliver_challenge(conn, authkey)
        set_timeouts(conn.fileno(), left(deadline))
    except BaseException:
        conn.close()
        raise
    return conn
