"""How ``RedisQueue`` runs its Lua scripts: EVALSHA on a connection of its own, one round trip.

This is the hot path of every put, take, ack and release, so it skips the
layers of ``redis.Redis.execute_command`` that a queue call does not use
(retries, which ``RedisQueue`` turns off anyway; per-command metrics; the
pool's checkout bookkeeping): the command, with its keys and script digest
encoded once, is written on a connection this handle keeps (taken from the
client's pool, given back at ``close``), and the reply read back. The contract
is redis-py's: the reply as ``read_response`` parses it, a server error raised
as ``redis.ResponseError``, a lost connection as ``redis.ConnectionError`` /
``TimeoutError`` (that connection is then dropped, never reused with a reply
unread). A server that forgot the scripts (restarted without them, or
``SCRIPT FLUSH``) gets them loaded again and the call is sent once more (it
had not run). Thread-safe: each call takes a connection of its own.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

__all__ = ["ScriptRunner"]


class ScriptRunner:
    """Runs the scripts ``sources`` (name -> Lua source) on ``client`` with the keys ``keys``."""

    def __init__(self, client: redis.Redis, sources: Mapping[str, str], keys: Sequence[str]) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._sources = dict(sources)
        head = (len(keys), *(key.encode() for key in keys))
        self._heads = {
            name: (b"EVALSHA", hashlib.sha1(src.encode()).hexdigest().encode(), *head) for name, src in sources.items()
        }
        self._spares: list[Any] = []  # idle connections of this handle (list append/pop are atomic)
        self._keep = True  # False once the handle closes: connections go back to the pool after use
        self._pid = os.getpid()
        # redis-py 5.0 wants a command name here; later versions deprecate passing one
        wanted = inspect.signature(self._pool.get_connection).parameters.get("command_name")
        self._checkout_args = ("EVALSHA",) if wanted is not None and wanted.default is inspect.Parameter.empty else ()
        # a single-connection client shares its one connection under its own lock: use its API
        self._direct = getattr(client, "connection", None) is None

    def run(self, name: str, args: Sequence[Any]) -> Any:
        """The script's reply (NoScriptError handled: loaded and sent again)."""
        command = (*self._heads[name], *args)
        try:
            return self._send(command)
        except NoScriptError:
            self._send((b"SCRIPT", b"LOAD", self._sources[name]))
            return self._send(command)

    def _send(self, command: tuple[Any, ...]) -> Any:
        if not self._direct:
            return self._client.execute_command(*command)  # type: ignore[no-untyped-call]
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
            self.forget_connections()
        try:
            conn = self._spares.pop()
        except IndexError:
            conn = self._pool.get_connection(*self._checkout_args)
        try:
            conn.send_command(*command)
            reply = conn.read_response()
        except redis.ResponseError:
            self._put_back(conn)  # the reply was read whole: the connection is fine
            raise
        except BaseException:
            self._drop(conn)  # maybe a reply half read, or none: never reuse it
            raise
        self._put_back(conn)
        return reply

    def _put_back(self, conn: Any) -> None:
        if self._keep:
            self._spares.append(conn)
        else:  # (a call that ended after close(): its connection goes back to the pool)
            self._pool.release(conn)

    def forget_connections(self) -> None:
        """In a forked child: leave the parent's connections alone (never used, never closed here)."""
        self._spares = []
        self._pid = os.getpid()

    def _drop(self, conn: Any) -> None:
        try:
            conn.disconnect()
        finally:
            self._pool.release(conn)

    def close(self, release: bool) -> None:
        """The handle closes: keep no connection from now on; give the idle ones back (``release``) or drop them."""
        self._keep = False
        self.drop_spares(release)

    def drop_spares(self, release: bool = False) -> None:
        """Disconnect this handle's idle connections (after a connection error), or give them back (``release``)."""
        while True:
            try:
                conn = self._spares.pop()
            except IndexError:
                return
            if release:
                self._pool.release(conn)
            else:
                self._drop(conn)
