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
"""

from __future__ import annotations

import errno
import mmap
import os

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_RW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW

# write(fd, data) -> count: append data at the end of a file opened with open_append.
# (The engine stores into maps instead; these two are the plain calls through which
# tests/test_powercut.py checks the power-cut layer's model of a file.)
write = os.write
# truncate(fd, size): cut the file back to size bytes.
truncate = os.ftruncate
# datasync(fd): put the file's data (and its length) on stable storage.
datasync = os.fdatasync
dup = os.dup
close = os.close
unlink = os.unlink
rename = os.replace
listdir = os.listdir


def file_size(fd: int) -> int:
    return os.fstat(fd).st_size


def open_append(path: str) -> int:
    """Open (creating if needed) ``path`` for appending with ``write``; returns the fd."""
    return os.open(path, _APPEND_FLAGS, 0o644)


def open_rw(path: str) -> int:
    """Open (creating if needed) ``path`` for reading and writing (and mapping); returns the fd."""
    return os.open(path, _RW_FLAGS, 0o644)


def extend(fd: int, size: int) -> None:
    """Make the file at least ``size`` bytes long, the new bytes zeros, their disk blocks reserved.

    Raises OSError (ENOSPC, ...) having changed nothing, if it cannot.
    """
    try:
        _fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        if os.fstat(fd).st_size < size:  # no fallocate here: a sparse extension
            os.ftruncate(fd, size)


def _no_fallocate(fd: int, offset: int, length: int) -> None:
    raise OSError(errno.ENOSYS, "posix_fallocate is not available")


_fallocate = getattr(os, "posix_fallocate", _no_fallocate)


def map(fd: int, size: int) -> mmap.mmap:  # noqa: A001 - the module's verb for it
    """A shared, writable map of the first ``size`` bytes of the file (which has at least that many).

    ``m[a:b] = data`` writes ``data`` at offset ``a``; ``m.close()`` unmaps.
    """
    return mmap.mmap(fd, size)


def read_file(path: str) -> bytes:
    """The whole content of ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def sync_dir(path: str) -> None:
    """Make the directory's entries (created, renamed, removed files) durable."""
    _fsync_dir(path)


def write_file_durably(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, rename, directory fsync.

    One durable step as far as a fault-injection layer is concerned: it calls
    ``os`` directly, not the hooks above.
    """
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | _NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
