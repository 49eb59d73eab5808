"""Power-cut simulation for dque's file layer (a test helper, not a test module).

``PowerLayer`` replaces the functions of :mod:`dque._fs` that change files
(``open_append``, ``open_rw``, ``write``, ``extend``, ``map``, ``truncate``,
``datasync``, ``dup``, ``close``, ``unlink``, ``rename``, ``sync_dir``,
``write_file_durably``). Each call is still carried out on the real files, so
the engine sees an ordinary file system, and is also applied to a model of
what a disk would hold. ``map`` hands out a stand-in for a memory map whose
stores (``m[a:b] = data``) are operations too, carried out with ``pwrite``:

* per file (inode): its content as of its last ``datasync`` (``durable``),
  its current content, and the writes/stores/truncates made since that sync;
* per directory: its entries as of its last ``sync_dir`` (or
  ``write_file_durably``, which syncs the directory) and the entry changes
  made since then. A file created in a directory that was never synced does
  not survive a power cut; a file unlinked or renamed away in one that was
  not synced comes back, with its durable content;
* the fd table: fd -> inode, ``dup`` included, so a ``datasync`` on a dup'd
  fd syncs the file of the original fd (even after a rename or unlink).

``write_file_durably`` is one atomic durable step. ``read_file`` and
``listdir`` are not replaced: they read the real files, which is what the
running process sees.

A power cut at I/O operation number ``cut_at`` (counting every replaced call
from 1) raises :class:`PowerCut`, a ``BaseException`` so that the engine's
``except Exception`` does not swallow it. The interrupted call may or may not
have taken effect: a write is recorded as issued (a reboot may find any
prefix of it), a sync/unlink/rename/truncate is applied or not (coin flip).
From then on the power is off: the layer closes every real fd it handed out,
every further call raises ``PowerCut`` except ``close``, which does nothing.

:meth:`PowerLayer.materialize` then writes, under a fresh directory, the
files a reboot could find (the tree under ``root`` mirrored), as often as
wanted, with one of these outcomes per file and per directory:

* ``"durable"``: only what was synced (the strict model);
* ``"live"``: everything the OS had, i.e. the unsynced changes survived fully
  (what a SIGKILL leaves);
* ``"torn"``: the synced state plus a random prefix of the changes made since
  the last sync: a random number of whole operations, then, if the next one is
  a write, a random prefix of it (a torn write). For directories, a random
  prefix of the entry changes;
* ``"random"`` (the default): one of the above, chosen per file and per
  directory.

It can be called at any time, not only after a cut (a snapshot of "what if
the power went out now").
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
from collections.abc import Iterator

import dque._fs as _fs

HOOKS = (
    "pwrite",
    "open_append",
    "open_rw",
    "write",
    "extend",
    "map",
    "truncate",
    "datasync",
    "dup",
    "close",
    "unlink",
    "rename",
    "sync_dir",
    "write_file_durably",
)

OUTCOMES = ("durable", "live", "torn", "random")


class PowerCut(BaseException):
    """The power went out during I/O operation number ``op`` (a call of ``_fs.<name>``)."""

    def __init__(self, op: int, name: str) -> None:
        super().__init__(op, name)
        self.op = op
        self.name = name

    def __str__(self) -> str:
        return f"power cut at I/O operation {self.op} ({self.name})"


_inode_numbers = itertools.count(1)


class _Inode:
    """One file's data: as of its last datasync, now, and the changes in between."""

    __slots__ = ("ino", "durable", "data", "pending")

    def __init__(self, durable: bytes = b"") -> None:
        self.ino = next(_inode_numbers)
        self.durable = durable
        self.data = durable
        self.pending: list[tuple] = []  # ("w", bytes) | ("t", size) | ("p", offset, bytes)

    def write(self, chunk: bytes) -> None:
        self.data += chunk
        self.pending.append(("w", chunk))

    def store(self, offset: int, chunk: bytes) -> None:
        self.data = _put(self.data, offset, chunk)
        self.pending.append(("p", offset, chunk))

    def truncate(self, size: int) -> None:
        self.data = self.data[:size] + b"\0" * max(0, size - len(self.data))
        self.pending.append(("t", size))

    def sync(self) -> None:
        self.durable = self.data
        self.pending = []

    def outcome(self, how: str, rng: random.Random) -> bytes:
        if how == "random":
            how = rng.choice(("durable", "live", "torn", "torn"))
        if how == "durable" or not self.pending:
            return self.durable
        if how == "live":
            return self.data
        if how != "torn":
            raise ValueError(f"unknown outcome {how!r}")
        data = self.durable
        k = rng.randrange(len(self.pending) + 1)
        for op in self.pending[:k]:
            if op[0] == "w":
                data += op[1]
            elif op[0] == "p":
                data = _put(data, op[1], op[2])
            else:
                data = data[: op[1]] + b"\0" * max(0, op[1] - len(data))
        if k < len(self.pending):
            op = self.pending[k]
            if op[0] == "w" and op[1]:
                data += op[1][: rng.randrange(len(op[1]))]
            elif op[0] == "p" and op[2]:
                data = _put(data, op[1], op[2][: rng.randrange(len(op[2]))])
        return data


def _put(data: bytes, offset: int, chunk: bytes) -> bytes:
    """``data`` with ``chunk`` written at ``offset`` (zeros in any gap before it)."""
    if len(data) < offset:
        data += b"\0" * (offset - len(data))
    return data[:offset] + chunk + data[offset + len(chunk) :]


class _Map:
    """Stands in for the ``mmap`` that ``_fs.map`` returns: each store is an operation of the layer."""

    __slots__ = ("layer", "fd", "size")

    def __init__(self, layer: PowerLayer, fd: int, size: int) -> None:
        self.layer = layer
        self.fd = fd  # the engine keeps its fd open while it uses the map
        self.size = size

    def __setitem__(self, where: slice | int, data: bytes | int) -> None:
        if isinstance(where, int):  # one byte
            where, data = slice(where, where + 1), bytes([data])
        if where.stop > self.size or where.stop - where.start != len(data):
            raise IndexError("store outside the map")
        self.layer._store(self.fd, where.start, bytes(data))

    def close(self) -> None:
        pass


class _Dir:
    """One directory's entries: as of its last sync, now, and the changes in between."""

    __slots__ = ("durable", "live", "pending")

    def __init__(self) -> None:
        self.durable: dict[str, _Inode] = {}
        self.live: dict[str, _Inode] = {}
        self.pending: list[tuple] = []  # ("set", name, inode) | ("del", name) | ("mv", src, dst)

    def set(self, name: str, inode: _Inode) -> None:
        self.live[name] = inode
        self.pending.append(("set", name, inode))

    def delete(self, name: str) -> None:
        del self.live[name]
        self.pending.append(("del", name))

    def move(self, src: str, dst: str) -> None:
        self.live[dst] = self.live.pop(src)
        self.pending.append(("mv", src, dst))

    def sync(self) -> None:
        self.durable = dict(self.live)
        self.pending = []

    def outcome(self, how: str, rng: random.Random) -> dict[str, _Inode]:
        if how == "random":
            how = rng.choice(("durable", "live", "torn"))
        if how == "durable" or not self.pending:
            return dict(self.durable)
        if how == "live":
            return dict(self.live)
        entries = dict(self.durable)
        for op in self.pending[: rng.randrange(len(self.pending) + 1)]:
            if op[0] == "set":
                entries[op[1]] = op[2]
            elif op[0] == "del":
                entries.pop(op[1], None)
            elif op[1] in entries:
                entries[op[2]] = entries.pop(op[1])
        return entries


class PowerLayer:
    """A model of stable storage under ``root``, fed by the calls the engine makes through ``dque._fs``.

    ``cut_at``: the number of the I/O operation during which the power goes out
    (None: never). ``seed`` drives every random choice (the coin flips at the
    cut and the outcomes of :meth:`materialize`). Files already under ``root``
    when the layer is created count as durable. ``real_sync`` also calls the
    real fdatasync/fsync (not needed: durability is judged from the model).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, seed: int = 0, cut_at: int | None = None, real_sync: bool = False
    ) -> None:
        self.root = os.path.abspath(root)
        self.rng = random.Random(seed)
        self.cut_at = cut_at
        self.real_sync = real_sync
        self.ops = 0  # I/O operations so far
        self.cut: PowerCut | None = None  # set when the power went out
        self.trace: list[tuple[int, str, str]] = []  # (op number, call, what)
        self.dir_syncs: list[str] = []  # every directory synced, in order
        self.drift: list[str] = []  # places where the model and the real files disagreed
        self._dirs: dict[str, _Dir] = {}
        self._fds: dict[int, tuple[_Inode, str]] = {}
        self._mutex = threading.RLock()
        self._saved: dict[str, object] | None = None
        self._orig = {name: getattr(_fs, name) for name in HOOKS}
        self._adopt_tree(self.root)

    # ------------------------------------------------------------ install

    def install(self) -> PowerLayer:
        if self._saved is not None:
            raise RuntimeError("already installed")
        self._saved = {name: getattr(_fs, name) for name in HOOKS}
        for name in HOOKS:
            setattr(_fs, name, getattr(self, "_" + name))
        return self

    def uninstall(self) -> None:
        if self._saved is None:
            return
        for name, fn in self._saved.items():
            setattr(_fs, name, fn)
        self._saved = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[PowerLayer]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    # ------------------------------------------------------------ the model

    def _dir(self, path: str) -> _Dir:
        d = self._dirs.get(path)
        if d is None:
            d = self._dirs[path] = _Dir()
        return d

    def _adopt_tree(self, top: str) -> None:
        for dirpath, _dirnames, filenames in os.walk(top):
            d = self._dir(os.path.abspath(dirpath))
            for name in filenames:
                self._adopt(d, os.path.join(dirpath, name), name)

    def _adopt(self, d: _Dir, path: str, name: str) -> _Inode | None:
        """A file the layer has not seen made: it predates the layer, so count it as durable."""
        if name in d.live or not os.path.isfile(path) or os.path.islink(path):
            return d.live.get(name)
        with open(path, "rb") as f:
            inode = _Inode(f.read())
        d.live[name] = d.durable[name] = inode
        return inode

    def _locate(self, path: str) -> tuple[str, _Dir, str]:
        p = os.path.abspath(path)
        d = self._dir(os.path.dirname(p))
        name = os.path.basename(p)
        self._adopt(d, p, name)
        return p, d, name

    def _begin(self, call: str, what: str) -> bool:
        """Count one operation; True if the power goes out during it. Raises once it is out."""
        if self.cut is not None:
            raise PowerCut(self.ops, call)
        self.ops += 1
        self.trace.append((self.ops, call, what))
        return self.cut_at is not None and self.ops == self.cut_at

    def _power_off(self, call: str) -> PowerCut:
        self.cut = PowerCut(self.ops, call)
        for fd in list(self._fds):
            with contextlib.suppress(OSError):
                self._orig["close"](fd)
        self._fds.clear()
        return PowerCut(self.ops, call)

    def _coin(self) -> bool:
        return self.rng.random() < 0.5

    def _path_of(self, fd: int) -> str:
        entry = self._fds.get(fd)
        return entry[1] if entry else f"fd {fd} (not opened through the layer)"

    def _check_size(self, fd: int, inode: _Inode, call: str) -> None:
        try:
            real = os.fstat(fd).st_size
        except OSError:
            return
        if real != len(inode.data):
            self.drift.append(
                f"op {self.ops} {call} {self._path_of(fd)}: file has {real} bytes, model {len(inode.data)}"
            )

    # ------------------------------------------------------------ the hooks

    def _open_append(self, path: str, *mode: int) -> int:
        return self._open("open_append", path, *mode)

    def _open_rw(self, path: str, *mode: int) -> int:
        return self._open("open_rw", path, *mode)

    def _open(self, call: str, path: str, *mode: int) -> int:
        with self._mutex:
            p, d, name = self._locate(path)
            if self._begin(call, p):
                raise self._power_off(call)
            fd = self._orig[call](path, *mode)
            inode = d.live.get(name)
            if inode is None:
                inode = _Inode()
                d.set(name, inode)
            self._fds[fd] = (inode, p)
            self._check_size(fd, inode, call)
            return fd

    def _extend(self, fd: int, size: int) -> None:
        with self._mutex:
            cut = self._begin("extend", f"{self._path_of(fd)} to {size}")
            entry = self._fds.get(fd)
            grows = entry is not None and len(entry[0].data) < size
            if cut:
                if grows and self._coin():
                    entry[0].truncate(size)
                raise self._power_off("extend")
            self._orig["extend"](fd, size)
            if grows:
                entry[0].truncate(size)
                self._check_size(fd, entry[0], "extend")

    def _map(self, fd: int, size: int) -> _Map:
        with self._mutex:
            if self.cut is not None:
                raise PowerCut(self.ops, "map")
            return _Map(self, fd, size)

    def _store(self, fd: int, offset: int, data: bytes) -> None:
        with self._mutex:
            cut = self._begin("store", f"{self._path_of(fd)} {len(data)} bytes at {offset}")
            entry = self._fds.get(fd)
            if cut:
                if entry:
                    entry[0].store(offset, bytes(data))  # issued: a reboot may find any prefix of it
                raise self._power_off("store")
            os.pwrite(fd, data, offset)
            if entry:
                entry[0].store(offset, bytes(data))

    def _pwrite(self, fd: int, data: bytes, offset: int) -> None:
        self._store(fd, offset, bytes(data))  # (the same operation as a store into the map)

    def _write(self, fd: int, data: bytes) -> int:
        with self._mutex:
            cut = self._begin("write", f"{self._path_of(fd)} {len(data)} bytes")
            entry = self._fds.get(fd)
            if cut:
                if entry:
                    entry[0].write(bytes(data))  # issued: a reboot may find any prefix of it
                raise self._power_off("write")
            n = self._orig["write"](fd, data)
            if entry:
                entry[0].write(bytes(data[:n]))
                self._check_size(fd, entry[0], "write")
            return n

    def _truncate(self, fd: int, size: int) -> None:
        with self._mutex:
            cut = self._begin("truncate", f"{self._path_of(fd)} to {size}")
            entry = self._fds.get(fd)
            if cut:
                if entry and self._coin():
                    entry[0].truncate(size)
                raise self._power_off("truncate")
            self._orig["truncate"](fd, size)
            if entry:
                entry[0].truncate(size)
                self._check_size(fd, entry[0], "truncate")

    def _datasync(self, fd: int) -> None:
        with self._mutex:
            cut = self._begin("datasync", self._path_of(fd))
            entry = self._fds.get(fd)
            if cut:
                if entry and self._coin():
                    entry[0].sync()
                raise self._power_off("datasync")
            if self.real_sync:
                self._orig["datasync"](fd)
            elif fd not in self._fds:
                os.fstat(fd)  # still fail like fdatasync on a bad fd
            if entry:
                entry[0].sync()

    def _dup(self, fd: int) -> int:
        with self._mutex:
            if self._begin("dup", self._path_of(fd)):
                raise self._power_off("dup")
            new = self._orig["dup"](fd)
            if fd in self._fds:
                self._fds[new] = self._fds[fd]
            return new

    def _close(self, fd: int) -> None:
        with self._mutex:
            if self.cut is not None:
                return  # the power is off: every fd of the layer was closed already
            cut = self._begin("close", self._path_of(fd))
            self._fds.pop(fd, None)
            self._orig["close"](fd)
            if cut:
                raise self._power_off("close")

    def _unlink(self, path: str) -> None:
        with self._mutex:
            p, d, name = self._locate(path)
            if self._begin("unlink", p):
                if name in d.live and self._coin():
                    d.delete(name)
                raise self._power_off("unlink")
            self._orig["unlink"](path)
            if name in d.live:
                d.delete(name)

    def _rename(self, src: str, dst: str) -> None:
        with self._mutex:
            ps, ds, ns = self._locate(src)
            pd, dd, nd = self._locate(dst)
            cut = self._begin("rename", f"{ps} -> {pd}")
            if cut and not self._coin():
                raise self._power_off("rename")
            if not cut:
                self._orig["rename"](src, dst)
            if ns in ds.live:
                if ds is dd:
                    ds.move(ns, nd)
                else:
                    inode = ds.live[ns]
                    ds.delete(ns)
                    dd.set(nd, inode)
            if cut:
                raise self._power_off("rename")

    def _sync_dir(self, path: str) -> None:
        with self._mutex:
            p = os.path.abspath(path)
            cut = self._begin("sync_dir", p)
            if cut:
                if self._coin():
                    self._dir(p).sync()
                    self.dir_syncs.append(p)
                raise self._power_off("sync_dir")
            if self.real_sync:
                self._orig["sync_dir"](path)
            elif not os.path.isdir(path):
                raise FileNotFoundError(2, "No such directory", path)
            self._dir(p).sync()
            self.dir_syncs.append(p)

    def _write_file_durably(self, path: str, data: bytes) -> None:
        with self._mutex:
            p, d, name = self._locate(path)
            cut = self._begin("write_file_durably", p)
            if cut and not self._coin():
                raise self._power_off("write_file_durably")
            if not cut:
                if self.real_sync:
                    self._orig["write_file_durably"](path, data)
                else:
                    tmp = p + ".tmp"
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, p)
            d.set(name, _Inode(bytes(data)))
            d.sync()  # the function fsyncs the directory: every entry change in it is durable
            self.dir_syncs.append(os.path.dirname(p))
            if cut:
                raise self._power_off("write_file_durably")

    # ------------------------------------------------------------ reboot

    def materialize(
        self,
        dest: str | os.PathLike[str],
        *,
        data: str = "random",
        dirs: str = "random",
        rng: random.Random | None = None,
    ) -> dict[str, int]:
        """Write under ``dest`` the files a reboot could find (the tree under ``root``, mirrored).

        ``data`` and ``dirs`` pick the outcome for file contents and for
        directory entries (see the module docstring). Returns
        ``{relative path: size}`` of the files written.
        """
        if data not in OUTCOMES or dirs not in OUTCOMES:
            raise ValueError(f"outcomes are {OUTCOMES}")
        rng = rng or self.rng
        dest = os.path.abspath(dest)
        written: dict[str, int] = {}
        with self._mutex:
            contents: dict[int, bytes] = {}
            for path in sorted(self._dirs):
                rel = os.path.relpath(path, self.root)
                if rel == os.pardir or rel.startswith(os.pardir + os.sep):
                    continue
                target = os.path.normpath(os.path.join(dest, rel))
                os.makedirs(target, exist_ok=True)
                for name, inode in sorted(self._dirs[path].outcome(dirs, rng).items()):
                    if inode.ino not in contents:
                        contents[inode.ino] = inode.outcome(data, rng)
                    with open(os.path.join(target, name), "wb") as f:
                        f.write(contents[inode.ino])
                    written[os.path.normpath(os.path.join(rel, name))] = len(contents[inode.ino])
        return written

    def describe(self, last: int = 25) -> str:
        """The last I/O operations, for failure messages."""
        lines = [f"  #{n} {call} {what}" for n, call, what in self.trace[-last:]]
        head = f"{self.ops} I/O operations" + (f", {self.cut}" if self.cut else "")
        return "\n".join([head, *lines])
