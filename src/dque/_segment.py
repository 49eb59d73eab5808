"""One segment file: its counts, its write handle and, for the head, its unread items.

A segment holds up to ``segment_size`` item records plus the records that
delete, lease and acknowledge them. Only the head segment keeps its unread
payloads in memory (``pending``), and an older segment while one of its items
is leased (the queue calls it lingering); the tail only keeps a write handle
and counts; the segments in between are just numbers until they become the
head.

Methods here do I/O for one file and keep no locks: the queue calls them
with its mutex held.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

from . import _fs
from ._format import CHECKSUM_MISMATCH, TYPE_OFFSET, Damage, encode_seal, scan, uncommitted

SUFFIX = ".seg"
_GROW_MIN = 64 << 10  # bytes of room reserved at least, when a segment needs more
_GROW_MAX = 8 << 20  # ... and at most (otherwise the room doubles)
_PWRITE_MIN = 64 << 10  # a body this large is written with pwrite, not stored into the map (see _fs.pwrite)
_GROW_LEAST = 4 << 10  # on a disk too full for a step: the room needed, rounded up to this
CORRUPT_SUFFIX = ".corrupt"


def segment_path(qdir: str, number: int) -> str:
    return os.path.join(qdir, f"{number:013d}{SUFFIX}")


def segment_numbers_on_disk(qdir: str) -> list[int]:
    """Sorted numbers of the segment files in ``qdir``."""
    numbers = []
    for name in _fs.listdir(qdir):
        stem, dot, ext = name.partition(".")
        if dot and "." + ext == SUFFIX and stem.isdigit() and stem.isascii():
            numbers.append(int(stem))
    numbers.sort()
    return numbers


class Segment:
    __slots__ = (
        "number",
        "path",
        "fd",
        "map",
        "end",
        "cap",
        "added",
        "removed",
        "pending",
        "out",
        "deliveries",
        "dirty",
        "damage",
    )

    def __init__(self, qdir: str, number: int) -> None:
        self.number = number
        self.path = segment_path(qdir, number)
        self.fd = -1  # read-write handle, opened on first write
        self.map: Any = None  # shared map of the file's first ``cap`` bytes, made on first write
        self.end = 0  # where the next record goes: just past the last one (valid while fd >= 0)
        self.cap = 0  # bytes reserved for records (the file's length while it is open)
        self.added = 0  # item records in the file
        self.removed = 0  # deletions (DELETE and ACK records) in the file
        self.pending: deque[tuple[int, bytes]] = deque()  # (index, payload) never taken (head only)
        self.out = 0  # items taken but not deleted: leased, or released and waiting to be taken again
        self.deliveries: dict[int, int] = {}  # item index -> times handed out under a lease
        self.dirty = False  # written since its last datasync
        self.damage: Damage | None = None  # not appendable; reported when the reader reaches it

    @classmethod
    def create(cls, qdir: str, number: int, mode: int = _fs.FILE_MODE) -> Segment:
        """A new empty segment file, permissions ``mode`` (the caller makes the directory entry durable)."""
        seg = cls(qdir, number)
        seg.fd = _fs.open_rw(seg.path, mode)
        try:
            _fs.truncate(seg.fd, 0)  # a leftover of the same name would be stale
        except BaseException:
            seg.drop()
            raise
        return seg

    @classmethod
    def load(cls, qdir: str, number: int, *, last: bool, head: bool = False) -> Segment:
        """Read a segment file back.

        A torn final record is crash debris: the file is cut back to its last
        good record. Any other damage is kept in ``damage`` for the reader to
        report when it gets there; loaded as the ``head`` (records are about to
        be appended to it), the file is first cut at the damage, the bytes from
        there kept aside in ``<file>.corrupt``.
        """
        seg = cls(qdir, number)
        seg.read_back(last=last, head=head)
        return seg

    @classmethod
    def written(cls, qdir: str, number: int, payloads: list[bytes], end: int, trimmed: bool) -> Segment:
        """A closed segment this handle wrote, untouched since, whose items are ``payloads`` and whose
        records end at ``end``: what ``load`` would read back, without reading it (every item appended
        is there, none deleted or leased), opened for the records that follow.

        ``trimmed``: its file was cut at ``end`` when it was closed, and it ends there or after a
        turbo seal appended since (only ever to a file that ends at ``end``): the next record goes at
        the file's end. Else a failed trim left zeros of reserved room after ``end`` (and no seal):
        the next record goes at ``end``, over them, never after them, where a scan would not reach it.
        OSError (no descriptor): nothing changed.
        """
        seg = cls(qdir, number)
        seg.open()
        if not trimmed:
            seg.end = seg.cap = end  # (the first store reserves room, and maps it)
        seg.added = len(payloads)
        seg.pending = deque(zip(range(len(payloads)), payloads, strict=True))
        return seg

    def read_back(self, *, last: bool, head: bool = False) -> None:
        data = _fs.read_file(self.path)
        if self.fd >= 0:
            data = data[: self.end]  # the rest is room reserved for records: zeros
        found = scan(data)
        self.added, self.removed = found.added, found.removed
        self.pending = deque(found.items)
        self.deliveries = found.deliveries
        damage = found.damage
        # A torn last write is crash debris: in the last segment an item or
        # marker whose call never returned; in an earlier one also the unsynced
        # end of a full segment that turbo mode had not synced yet when the
        # power failed (a prefix of a record, or zeros: a whole record with a
        # bad checksum there is damage). Cut it off. A segment ending early is
        # not damage either. (Zeros after the last record are also what a
        # crash leaves of the room reserved for records.)
        if damage is not None and damage.torn and (last or damage.reason != CHECKSUM_MISMATCH):
            self.open()
            self.trim(found.end)
            _fs.datasync(self.fd)
            damage = None
        elif damage is not None and head:
            # Records appended after the damage would never be read back (a scan
            # stops there): a delete marker written there would be lost, and its
            # item come back after a restart. Move the damaged end aside first.
            _fs.write_file_durably(free_name(self.path + CORRUPT_SUFFIX), data[damage.offset :])
            self.open()
            self.trim(damage.offset)
            _fs.datasync(self.fd)
        elif damage is None and head and os.path.exists(self.path + CORRUPT_SUFFIX):
            # Its damaged end was moved aside at an earlier open, and not reported yet.
            damage = Damage(found.end, f"damaged end moved aside to {self.path + CORRUPT_SUFFIX}", torn=False)
        self.damage = damage

    def open(self) -> None:
        if self.fd < 0:
            fd = _fs.open_rw(self.path)
            try:
                size = _fs.file_size(fd)
            except BaseException:
                close_fd(fd)
                raise
            self.fd, self.end, self.cap = fd, size, size

    def reserve(self, n: int) -> None:
        """Make room for ``n`` more bytes after ``end`` (opening the file if needed).

        The room grows in steps (doubling, from 64 KiB to 8 MiB at a time);
        when the disk cannot give a whole step, just the ``n`` bytes asked
        for (rounded up to 4 KiB) will do, so freeing a little space lets the
        queue carry on. Raises OSError (a full disk, say) having changed nothing.
        """
        self.open()
        need = self.end + n
        if need <= self.cap:
            return
        cap = max(need, self.cap + min(max(self.cap, _GROW_MIN), _GROW_MAX))
        try:
            _fs.extend(self.fd, cap)
        except OSError as exc:
            least = -(-need // _GROW_LEAST) * _GROW_LEAST
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or least >= cap:
                raise
            cap = least
            _fs.extend(self.fd, cap)
        old, self.map = self.map, _fs.map(self.fd, cap)
        self.cap = cap
        if old is not None:
            old.close()

    def append(self, data: bytes) -> None:
        """Append records ``data``: in the OS when this returns. On failure nothing changed."""
        self.store(uncommitted(data), data[TYPE_OFFSET])

    def store(self, records: bytes, rtype: int, body: bytes = b"") -> None:
        """Append ``records`` whose first type byte is 0 (then ``body``, the rest of the last record), then
        write that byte, ``rtype``.

        Until that last write the record reads as a store never finished (see
        _format.TYPE_OFFSET), whatever part of the rest a kill let through. In
        the OS when this returns; on failure (a full disk) nothing changed.
        (``body`` lets a large item's payload be copied once, straight into the file.)
        """
        if body:
            self._store_with_body(records, rtype, body)
            return
        pos = self.end
        end = pos + len(records)
        if end > self.cap:  # (always so while the file is not open: see close and drop)
            self.reserve(len(records))
            pos = self.end
            end = pos + len(records)
        m = self.map
        m[pos:end] = records
        m[pos + TYPE_OFFSET] = rtype
        self.end = end
        self.dirty = True

    def _store_with_body(self, head: bytes, rtype: int, body: bytes) -> None:
        """``store`` of one record given as its first bytes (type 0) and its body."""
        n = len(head) + len(body)
        if self.end + n > self.cap:
            self.reserve(n)
        pos = self.end
        mid, end = pos + len(head), pos + n
        m = self.map
        m[pos:mid] = head
        if len(body) >= _PWRITE_MIN:
            _fs.pwrite(self.fd, body, mid)  # (an OSError here leaves a type-0 record past end: nothing)
        else:
            m[mid:end] = body
        m[pos + TYPE_OFFSET] = rtype
        self.end = end
        self.dirty = True

    def trim(self, size: int | None = None) -> None:
        """Unmap and cut the file to ``size`` bytes (default: ``end``, dropping the reserved room)."""
        if self.map is not None:
            self.map.close()
            self.map = None
        if self.fd >= 0:
            size = self.end if size is None else size
            cap, self.end, self.cap = self.cap, size, size  # (if the truncate fails, reserve maps again)
            if cap != size:
                _fs.truncate(self.fd, size)
                self.dirty = True

    def close(self) -> None:
        """Trim the file and close it."""
        if self.fd >= 0:
            try:
                self.trim()
            finally:
                fd, self.fd = self.fd, -1
                close_fd(fd)

    def drop(self) -> None:
        """Close this process's handles without touching the file (a forked child's copy, or a file that goes)."""
        if self.map is not None:
            self.map.close()
            self.map = None
        self.cap = 0
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            close_fd(fd)


def close_fd(fd: int) -> None:
    """Close a descriptor; an error from close (EIO: a write-back failed) is ignored.

    The descriptor is released either way (Linux, POSIX.1-2024); whether the data
    reached the disk is what a sync says, and every durable step syncs.
    """
    try:
        _fs.close(fd)
    except OSError:
        pass


def free_name(path: str) -> str:
    """``path``, or ``path.2``, ``path.3``, ... whichever does not exist yet."""
    target, n = path, 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.{n}"
    return target


def by_segment(entries: list[Any]) -> Iterator[tuple[Segment, list[Any]]]:
    """``(segment, entries)`` for each run of consecutive entries whose first field is the same segment."""
    start = 0
    while start < len(entries):
        seg = entries[start][0]
        stop = start + 1
        while stop < len(entries) and entries[stop][0] is seg:
            stop += 1
        yield seg, entries[start:stop]
        start = stop


def seal_closed(path: str, mode: int, items: int, end: int) -> None:
    """Append the seal of ``items`` records to the closed segment file at ``path`` if it ends at ``end``.

    Through a descriptor of its own (turbo mode seals a full segment once it
    is synced, after it was closed). Never raises: a seal is a hint, and
    without it an open after a crash reads the segment.
    """
    if not os.path.exists(path):
        return
    try:
        fd = _fs.open_append(path, mode)
    except OSError:
        return
    try:
        if _fs.file_size(fd) == end:
            _fs.write(fd, encode_seal(items, end))
    except OSError:
        pass
    finally:
        close_fd(fd)
