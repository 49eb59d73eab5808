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

import os
from collections import deque
from collections.abc import Iterator
from typing import Any

from . import _fs
from ._format import CHECKSUM_MISMATCH, Damage, scan

SUFFIX = ".seg"
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
    __slots__ = ("number", "path", "fd", "added", "removed", "pending", "out", "deliveries", "dirty", "damage")

    def __init__(self, qdir: str, number: int) -> None:
        self.number = number
        self.path = segment_path(qdir, number)
        self.fd = -1  # append handle, opened on first write
        self.added = 0  # item records in the file
        self.removed = 0  # deletions (DELETE and ACK records) in the file
        self.pending: deque[tuple[int, bytes]] = deque()  # (index, payload) never taken (head only)
        self.out = 0  # items taken but not deleted: leased, or released and waiting to be taken again
        self.deliveries: dict[int, int] = {}  # item index -> times handed out under a lease
        self.dirty = False  # written since its last datasync
        self.damage: Damage | None = None  # not appendable; reported when the reader reaches it

    @classmethod
    def create(cls, qdir: str, number: int) -> Segment:
        """A new empty segment file (the caller makes the directory entry durable)."""
        seg = cls(qdir, number)
        seg.fd = _fs.open_append(seg.path)
        _fs.truncate(seg.fd, 0)  # a leftover of the same name would be stale
        return seg

    @classmethod
    def load(cls, qdir: str, number: int, *, last: bool, segment_size: int) -> Segment:
        """Read a segment file back.

        A torn final record is crash debris: the file is cut back to its last
        good record. Any other damage is kept in ``damage`` for the reader to
        report when it gets there.
        """
        seg = cls(qdir, number)
        seg.read_back(last=last)
        return seg

    def read_back(self, *, last: bool) -> None:
        found = scan(_fs.read_file(self.path))
        self.added, self.removed = found.added, found.removed
        self.pending = deque(found.items)
        self.deliveries = found.deliveries
        damage = found.damage
        # A torn last write is crash debris: in the last segment an item or
        # marker whose call never returned; in an earlier one also the unsynced
        # end of a full segment that turbo mode had not synced yet when the
        # power failed (a prefix of a record, or zeros: a whole record with a
        # bad checksum there is damage). Cut it off. A segment ending early is
        # not damage either.
        if damage is not None and damage.torn and (last or damage.reason != CHECKSUM_MISMATCH):
            self.open()
            _fs.truncate(self.fd, found.end)
            _fs.datasync(self.fd)
            damage = None
        self.damage = damage

    def open(self) -> None:
        if self.fd < 0:
            self.fd = _fs.open_append(self.path)

    def append(self, data: bytes) -> None:
        """Append ``data`` with one write; on failure the file is cut back and nothing changed."""
        if self.fd < 0:
            self.open()
        written = _fs.write(self.fd, data)  # raises only when it wrote nothing
        if written != len(data):
            self.finish_write(data, written)
        self.dirty = True

    def finish_write(self, data: bytes, written: int) -> None:
        """Complete a short write of ``data``, or cut the file back to before it and raise.

        (A write that fails outright writes nothing: only a short one leaves
        part of a record behind.)
        """
        start = _fs.file_size(self.fd) - written
        try:
            while written < len(data):
                more = _fs.write(self.fd, data[written:])
                if more <= 0:
                    raise OSError(f"could not append to {self.path}")
                written += more
        except BaseException:
            try:
                _fs.truncate(self.fd, start)
            except OSError:
                pass
            raise

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            _fs.close(fd)


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
