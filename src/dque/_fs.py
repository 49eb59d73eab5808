"""Every file-system call the engine makes, in one place.

The engine calls these through the module (``_fs.datasync(...)``), never by
importing the names, so a test can replace them with a layer that records
what reached stable storage and simulates a power cut (see
``tests/powercut.py``). Plain ``os`` functions are bound by assignment so the
hot path pays no extra call. Nothing here buffers: a call that returns has
handed its bytes to the operating system.

Segments are written through a shared memory map of the file (``map``): a
store into it is in the kernel's page cache, the same place a ``write``
puts its bytes, so a process killed right after it loses nothing, and
``datasync`` puts it on stable storage like any other write. The map only
covers room already reserved on disk (``extend``), so a full disk is an
``OSError`` from ``extend``, never a fault during a store.

Portability: the calls that differ between systems are chosen once, at
import. ``datasync`` is ``fcntl(fd, F_FULLFSYNC)`` where that exists (macOS:
there a plain ``fsync`` does not reach stable storage), else
``os.fdatasync`` (Linux), else ``os.fsync`` (the BSDs); ``sync_dir`` likewise
with ``fsync``; ``extend`` reserves blocks with ``os.posix_fallocate`` where
that exists, else makes the file longer with ``ftruncate``. Setting the
environment variable ``DQUE_SIMULATE_POSIX=1`` before dque is imported makes
it choose as on a POSIX system without Linux's extras (no ``fdatasync``, no
``posix_fallocate``; ``_process`` honours it too: no ``pidfd_open``), so
that the portable paths can be tested on Linux.

Permissions: the files dque creates are owner-only (``FILE_MODE``, 0600) unless
the queue was created with group access (``GROUP_FILE_MODE``, 0660); its
directory likewise (0700 / 0770). The modes are set exactly, whatever the
umask.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Callable
from types import ModuleType
from typing import Any

_fcntl_module: ModuleType | None
try:
    import fcntl as _fcntl_module
except ImportError:  # pragma: no cover - not POSIX (dque/__init__.py refuses to import there)
    _fcntl_module = None

SIMULATE_POSIX_ENV = "DQUE_SIMULATE_POSIX"
SIMULATE_POSIX = os.environ.get(SIMULATE_POSIX_ENV, "") == "1"

FILE_MODE = 0o600  # files of a private queue (the default)
GROUP_FILE_MODE = 0o660  # files of a queue created with group_access=True
DIR_MODE = 0o700
GROUP_DIR_MODE = 0o770

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_RW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW
# Errors of F_FULLFSYNC meaning "not on this file system" (a network one, say): plain fsync then.
_NO_FULLFSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS})


def pick_datasync(os_module: Any = os, fcntl_module: ModuleType | None = _fcntl_module) -> Callable[[int], None]:
    """The call that puts a file's data (and length) on stable storage here.

    ``fcntl(fd, F_FULLFSYNC)`` (falling back to ``fsync`` where the file
    system refuses it) if ``fcntl`` has ``F_FULLFSYNC``; else ``fdatasync``
    if ``os`` has it; else ``fsync``.
    """
    full = getattr(fcntl_module, "F_FULLFSYNC", None) if fcntl_module is not None else None
    if full is not None:
        return _full_fsync(fcntl_module, full, os_module.fsync)
    fdatasync: Callable[[int], None] | None = getattr(os_module, "fdatasync", None)
    fsync: Callable[[int], None] = os_module.fsync
    return fdatasync if fdatasync is not None else fsync


def pick_fsync(os_module: Any = os, fcntl_module: ModuleType | None = _fcntl_module) -> Callable[[int], None]:
    """The call that makes a directory's entries (or a whole file) durable: F_FULLFSYNC or fsync."""
    full = getattr(fcntl_module, "F_FULLFSYNC", None) if fcntl_module is not None else None
    if full is not None:
        return _full_fsync(fcntl_module, full, os_module.fsync)
    fsync: Callable[[int], None] = os_module.fsync
    return fsync


def _full_fsync(fcntl_module: Any, command: int, fsync: Callable[[int], None]) -> Callable[[int], None]:
    fcntl = fcntl_module.fcntl

    def full_fsync(fd: int) -> None:
        try:
            fcntl(fd, command)
        except OSError as exc:
            if exc.errno not in _NO_FULLFSYNC:
                raise
            fsync(fd)

    full_fsync.__qualname__ = full_fsync.__name__ = "full_fsync"
    return full_fsync


def _without_linux_extras() -> Any:
    """``os`` as on a POSIX system without Linux's extras (for DQUE_SIMULATE_POSIX)."""

    class _Posix:
        def __getattr__(self, name: str) -> Any:
            if name in ("fdatasync", "posix_fallocate", "pidfd_open"):
                raise AttributeError(name)
            return getattr(os, name)

    return _Posix()


_os_here: Any = _without_linux_extras() if SIMULATE_POSIX else os
_fcntl_here = None if SIMULATE_POSIX else _fcntl_module


def os_call(name: str) -> Callable[..., Any] | None:
    """``os.<name>``, or None where this system lacks it or ``DQUE_SIMULATE_POSIX=1`` hides it.

    For optional extras used elsewhere, e.g. ``_fs.os_call("pidfd_open")`` in ``_process``.
    """
    return getattr(_os_here, name, None)


_datasync = pick_datasync(_os_here, _fcntl_here)
_fsync = pick_fsync(_os_here, _fcntl_here)

# write(fd, data) -> count: append data at the end of a file opened with open_append.
# (The engine stores into maps instead; these two are the plain calls through which
# tests/test_powercut.py checks the power-cut layer's model of a file.)
write = os.write
# truncate(fd, size): cut the file back to size bytes.
truncate = os.ftruncate
# datasync(fd): put the file's data (and its length) on stable storage (see pick_datasync).
datasync = _datasync
dup = os.dup
close = os.close
unlink = os.unlink
rename = os.replace
listdir = os.listdir


def file_size(fd: int) -> int:
    return os.fstat(fd).st_size


def file_mode(group_access: bool) -> int:
    """The permission bits of a queue's files: 0600, or 0660 with group access."""
    return GROUP_FILE_MODE if group_access else FILE_MODE


def dir_mode(group_access: bool) -> int:
    """The permission bits of a queue's directory: 0700, or 0770 with group access."""
    return GROUP_DIR_MODE if group_access else DIR_MODE


def mode_of_dir(path: str) -> int:
    """The file mode that goes with the directory ``path``: 0660 if its group may enter and write it, else 0600.

    For files written where the caller does not pass a mode (``dque.json``,
    ``dque.clean``, ``*.corrupt``, a lock file re-made at open): they follow
    the queue's directory, which ``make_dir`` gave the queue's mode.
    """
    group = os.stat(path).st_mode & stat.S_IRWXG
    return GROUP_FILE_MODE if group == stat.S_IRWXG else FILE_MODE


def make_dir(path: str, mode: int = DIR_MODE) -> None:
    """Create the directory ``path`` (its missing parents with default permissions) with exactly ``mode``.

    An existing directory is given ``mode`` too if this user may change it
    (else it keeps its own: a mount point owned by someone else, say); a
    set-group-ID bit on it is kept. Raises FileExistsError if ``path`` or a
    parent is a file.
    """
    os.makedirs(path, mode=mode, exist_ok=True)
    st = os.stat(path)
    want = mode | (st.st_mode & stat.S_ISGID)
    if stat.S_IMODE(st.st_mode) != want:
        try:
            os.chmod(path, want)
        except PermissionError:
            pass


def open_append(path: str, mode: int = FILE_MODE) -> int:
    """Open (creating if needed, with permissions ``mode``) ``path`` for appending with ``write``; returns the fd."""
    return _open_creating(path, _APPEND_FLAGS, mode)


def open_rw(path: str, mode: int = FILE_MODE) -> int:
    """Open ``path`` for reading and writing (and mapping); returns the fd.

    A file that is not there is created with exactly the permissions ``mode``
    (whatever the umask): 0600 by default, ``GROUP_FILE_MODE`` (0660) for a
    queue with group access. An existing file keeps its own.
    """
    return _open_creating(path, _RW_FLAGS, mode)


def _open_creating(path: str, flags: int, mode: int) -> int:
    try:
        fd = os.open(path, flags | os.O_EXCL, mode)
    except FileExistsError:
        return os.open(path, flags, mode)  # (should it vanish meanwhile: created with mode less the umask)
    try:
        os.fchmod(fd, mode)  # exactly: the umask took bits off
    except BaseException:
        os.close(fd)
        raise
    return fd


def _extend_allocating(fd: int, size: int) -> None:
    """Make the file at least ``size`` bytes long, the new bytes zeros, their disk blocks reserved.

    Raises OSError (ENOSPC, ...) having changed nothing, if it cannot.
    """
    try:
        _fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        _extend_sparse(fd, size)  # not on this file system


def _no_fallocate(fd: int, offset: int, size: int) -> None:
    raise OSError(errno.ENOSYS, "posix_fallocate is not available")


def _extend_sparse(fd: int, size: int) -> None:
    """Make the file at least ``size`` bytes long, the new bytes zeros (no blocks reserved: no posix_fallocate)."""
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)


_fallocate: Callable[[int, int, int], None] = getattr(_os_here, "posix_fallocate", None) or _no_fallocate
# extend(fd, size): make the file at least size bytes long, the new bytes zeros, their disk
# blocks reserved where the system can (posix_fallocate); OSError (ENOSPC, ...) having changed nothing.
extend = _extend_allocating if _fallocate is not _no_fallocate else _extend_sparse


def map(fd: int, size: int) -> mmap.mmap:  # noqa: A001 - the module's verb for it
    """A shared, writable map of the first ``size`` bytes of the file (which has at least that many).

    ``m[a:b] = data`` writes ``data`` at offset ``a``; ``m.close()`` unmaps.
    """
    return mmap.mmap(fd, size)


def read_file(path: str) -> bytes:
    """The whole content of ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def pwrite(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of the file (into room already reserved: no new blocks).

    For large payloads: a store into the map of fresh pages costs a page fault
    per 4 KiB (395 MB/s here), a ``pwrite`` none (4 GB/s); both land in the
    same page cache, so the map and the file stay one.
    """
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def read_tail(path: str, n: int) -> tuple[int, bytes]:
    """``(size, last n bytes)`` of the file ``path`` (fewer bytes if it is shorter)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        return size, os.pread(fd, min(n, size), max(0, size - n))
    finally:
        os.close(fd)


def sync_dir(path: str) -> None:
    """Make the directory's entries (created, renamed, removed files) durable."""
    _fsync_dir(path)


def write_file_durably(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, datasync, rename, directory fsync.

    The file gets exactly the permissions ``mode``; None: those that go with
    its directory (``mode_of_dir``). One durable step as far as a
    fault-injection layer is concerned: it calls the chosen syncs directly,
    not the hooks above.
    """
    if mode is None:
        mode = mode_of_dir(os.path.dirname(path) or ".")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | _NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # exactly, whatever the umask (and a stale temp file's own)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _datasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _fsync(fd)
    finally:
        os.close(fd)
