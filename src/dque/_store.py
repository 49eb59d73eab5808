"""``SegmentStore``: the items of one open queue, in its segment files from head to tail.

The storage half of ``DQue``, as ``queue.Queue``'s ``_put``/``_get`` are the
storage of ``queue.Queue``: what is stored where, in what order, and the
counts; the files, their syncs (in safe mode, a full segment's), their seals
and their deletion. It knows nothing of threads, waiting or leases: its
owner (``DQue``) calls it holding its mutex (the store has no lock of its
own), and hears of what it cannot see through a small interface, the
:class:`StoreHost`. Records are built by ``_format`` and written only by the
segments (``Segment.store``/``append``: the store protocol, in one place).

Its error rule is the queue's (see ``_queue.py``): every method that changes
something does first what can fail (reserving room, creating or opening the
next segment file) and raises OSError having changed nothing; then it
stores, which cannot fail.

The small items of the segments it wrote itself stay in memory (up to
_CACHE_MAX bytes) until each segment is the head, so that a handle does not
read back what it just wrote; a reopen reads everything from the files.

Why one class of ~860 lines: head, middle and tail are one state machine.
Its invariant (the counts below) spans every method here, and each method
keeps it on every path, including the error paths; split, the invariant
would have no single home.
"""

from __future__ import annotations

import errno
import heapq
import json
import os
from collections import deque
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import islice
from typing import Any, Protocol

from . import _config, _fs
from ._format import (
    ACK,
    DELETE,
    DELETE_MARKER,
    ITEM,
    LEASE,
    SEAL_SIZE,
    SMALL,
    UNCOMMITTED_DELETE_MARKER,
    encode_index_record,
    encode_seal,
    read_seal,
    uncommitted,
)
from ._segment import Segment, by_segment, close_fd, seal_closed, segment_numbers_on_disk, segment_path
from .errors import CorruptedError, Empty, SerializationError, SyncError

CLEAN_NAME = "dque.clean"  # present while no handle has the queue open and the last one closed it
# Turbo mode syncs full segments and deletes used ones in the background; this
# many waiting wake the background thread (or, with no thread, are done at once).
_BACKGROUND_BATCH = 4
_BACKGROUND_MAX = 256

# The items of segments this handle wrote stay in memory, up to this many payload bytes, until
# each segment is the head: then it is not read back (see _next_head). Small items only (a large
# one costs little to read back, and much memory to keep).
_CACHE_MAX = 8 << 20
# What a kept item and a kept segment cost in memory beyond their record bytes (a bytes object's
# header and a list slot; a list, a tuple and a dict entry), counted against _CACHE_MAX.
_ITEM_COST = 40
_SEGMENT_COST = 256

Decode = Callable[[bytes], Any] | None  # what a take makes of a payload (None: the payload itself)
Entry = tuple[Segment, int, bytes, Any, bool]  # an item taken out: (segment, index, payload, item, in_order)


class StoreHost(Protocol):
    """What the store tells its owner (``DQue``), holding the owner's mutex."""

    def recounted(self, delta: int) -> None:
        """A segment turned out to hold ``delta`` more ready items than counted (``size`` is corrected)."""

    def sync_failed(self, exc: OSError) -> SyncError:
        """A sync the store made failed: poison the handle; returns the error to raise."""

    def dead_letter(self, seg: Segment, index: int, payload: bytes) -> bool:
        """Move an item out of the queue (it is out: see ``remove_out``) to the dead-letter queue; False if not now."""


def by_number(seg: Segment) -> int:
    return seg.number


class SegmentStore:
    """The segments of one open queue and the ready items in them, in order (see the module docstring)."""

    # Why one class of ~860 lines: see the module docstring (one state machine, one invariant).

    def __init__(self, qdir: str, config: _config.Config, host: StoreHost, turbo: bool) -> None:
        self.path = qdir
        self.host = host  # (a weak proxy of its owner: no reference cycle, see DQue.__init__)
        self.segment_size = config.segment_size
        self.max_deliveries = config.max_deliveries
        self.byte_cap = config.segment_bytes or 1 << 62  # a segment rolls once its records reach it
        self.seals = config.seals  # format 2: full segments get a seal (see _seal)
        self.file_mode = config.file_mode  # of the segment files it creates
        self.turbo = turbo  # (the owner's mode: safe mode syncs a full segment as it rolls)
        self.wake_syncer: Any = None  # turbo: the Event that wakes the owner's background thread, if it runs

        # Invariants between calls:
        #   size (the ready items) == len(returned) + len(head.pending)
        #            + sum of the live items of the middle segments
        #            + (0 if tail is head else tail.added - tail.removed - tail_uncounted)
        #   head.pending is empty only if the queue is empty or head.damage is set.
        #   seg.out == items of seg taken out and not yet deleted (in returned or leased);
        #   a segment before the head stays open in lingering while seg.out > 0.
        self.head: Segment
        self.tail: Segment
        self.size = 0
        self.middle: deque[int] = deque()  # numbers of the segments between head and tail
        self.middle_live: dict[int, int] = {}  # middle segments not holding segment_size live items
        self.tail_uncounted = 0  # items of the tail found at open to go to the dead-letter queue
        self.lingering: dict[int, Segment] = {}
        self.returned: list[tuple[int, int, bytes, Segment]] = []  # heap of released items
        self.write_seq = 0  # counts writes, for group commit
        self.dir_dirty = False
        self.rolled: list[str] = []  # full segment files not synced yet (turbo)
        self.doomed: list[str] = []  # used segment files not deleted yet (turbo)
        self.unsealed: dict[str, tuple[int, int]] = {}  # rolled, not synced yet: path -> (items, end) for its seal
        # Segments this handle wrote, between head and tail, untouched: their items, kept in memory so
        # that the head moving on to one does not read it back. Bounded by cache_max bytes of memory,
        # counted as a segment's record bytes (``Segment.end``, kept by every store anyway) plus
        # _ITEM_COST an item and _SEGMENT_COST a segment. (Payloads only, in order from index 0:
        # bytes are not tracked by the garbage collector, where (index, payload) tuples made every
        # enqueue 20% slower.)
        # number -> (its payloads, where its records end, whether its file was cut there, its cost)
        self.cache: dict[int, tuple[list[bytes], int, bool, int]] = {}
        self.cache_max = min(_CACHE_MAX, config.segment_bytes or _CACHE_MAX)
        self.cached_bytes = 0  # the cost of the segments in cache
        self.tail_fresh = False  # the tail is one this handle created, and tail_payloads holds all of its items
        self.tail_payloads: list[bytes] = []  # (while the tail is not the head)
        self.tail_cap = 0  # the tail's items are kept while their cost is under this (see _fresh_tail)

    def drop_all(self) -> None:
        """(A failed open.) Let go of every segment opened so far, now. Never raises."""
        for seg in (getattr(self, "head", None), getattr(self, "tail", None), *self.lingering.values()):
            if seg is not None:
                try:
                    seg.drop()
                except BaseException:
                    pass

    def load(self) -> None:
        qdir, size = self.path, self.segment_size
        numbers = segment_numbers_on_disk(qdir)
        if not numbers:
            self.head = self.tail = Segment.create(qdir, 1, self.file_mode)
            self._fresh_tail()
            _fs.sync_dir(qdir)
            self.size = 0
            return
        last = numbers[-1]
        tail = Segment.load(qdir, last, last=True)
        damaged_tail_live = None
        if tail.damage is not None:  # never append after damage: start a fresh tail
            damaged_tail_live = self._live_of(tail)  # (its items before the damage: exact, not assumed)
            tail.close()
            numbers.append(last + 1)
            tail = Segment.create(qdir, last + 1, self.file_mode)
            self._fresh_tail()
            _fs.sync_dir(qdir)
        tail.open()
        self.tail = tail
        if len(numbers) == 1:
            self.head = tail
        else:
            self.head = Segment.load(qdir, numbers[0], last=False, head=True)
            self.middle.extend(numbers[1:-1])
        # Count the live items of the segments between head and tail. After a
        # clean close only the first ones can hold fewer than segment_size:
        # those that were the head before (the head only moves forward), up to
        # the first untouched one. After a crash any of them may (turbo mode
        # may lose the unsynced end of a full segment), so all are read.
        marker = self._was_closed_cleanly()
        clean = marker is not None
        # After a clean close the marker has the counts (format 2): only the segments up to
        # the head it names are read. Otherwise a format-2 queue's full segments end with a
        # seal (written once all before it was synced: see docs/format.md) that gives the
        # count without reading the file; segments may hold fewer than segment_size items
        # (segment_bytes), so each is counted. A segment with neither is read.
        short = marker.get("short") if marker else None
        old_head = marker.get("head") if marker else None
        if not (self.seals and isinstance(short, dict) and isinstance(old_head, int)):
            short, old_head = {}, None  # (a format-1 queue, or an older version's empty marker)
        for number in self.middle:
            if number == last:
                break  # the damaged old tail, counted above
            live = None
            if old_head is not None and number > old_head:
                live = short.get(str(number), size)
                if not isinstance(live, int) or live < 0:
                    live = None
            if live is None and self.seals:
                live = self._sealed_count(number)
            untouched = True
            if live is None:
                found = Segment.load(qdir, number, last=False)
                found.close()
                live = self._live_of(found)
                untouched = not (found.removed or found.deliveries)
            if live != size:
                self.middle_live[number] = live
            elif clean and untouched and not self.seals:
                break
        if damaged_tail_live is not None and self.middle and self.middle[-1] == last:
            if damaged_tail_live != size:
                self.middle_live[last] = damaged_tail_live
        head = self.head
        self.size = len(head.pending) + size * len(self.middle) - sum(size - live for live in self.middle_live.values())
        if tail is not head:
            if self.max_deliveries and tail.deliveries:  # dead letters once it is the head
                self.tail_uncounted = sum(tail.deliveries.get(i, 0) >= self.max_deliveries for i, _ in tail.pending)
            self.size += tail.added - tail.removed - self.tail_uncounted
        self.settle_head()
        if self.dir_dirty:
            _fs.sync_dir(qdir)
            self.dir_dirty = False

    def _sealed_count(self, number: int) -> int | None:
        """The item count in the seal that ends segment ``number``; None if it does not end with one."""
        try:
            size, tail = _fs.read_tail(segment_path(self.path, number), SEAL_SIZE)
        except OSError:
            return None  # (read it instead)
        return read_seal(tail, size)

    def _live_of(self, seg: Segment) -> int:
        """The items of a loaded segment that will be handed out (not those due to the dead-letter queue)."""
        live = len(seg.pending)
        if self.max_deliveries and seg.deliveries:
            live -= sum(seg.deliveries.get(i, 0) >= self.max_deliveries for i, _ in seg.pending)
        return live

    def _was_closed_cleanly(self) -> dict[str, Any] | None:
        """What the last handle wrote when it closed the queue cleanly (None: it did not; {}: an older
        version's empty marker); from now on the queue is open (not clean) until close()."""
        path = os.path.join(self.path, CLEAN_NAME)
        if not os.path.exists(path):
            return None
        try:
            counts = json.loads(_fs.read_file(path) or b"{}")
        except (OSError, ValueError):
            counts = {}
        _fs.unlink(path)
        _fs.sync_dir(self.path)
        return counts if isinstance(counts, dict) else {}

    def clean_marker(self) -> bytes:
        """What close() leaves for the next open: the counts of the segments between head and tail.

        ``head``: the head's number (segments up to it may hold deleted or leased items: read at
        open); ``short``: the live items of those after it that hold fewer than segment_size.
        """
        short = {str(n): live for n, live in self.middle_live.items()}
        return json.dumps({"head": self.head.number, "short": short}).encode()

    # --------------------------------------------------------------- internals

    def _next_head(self, old: Segment) -> Segment:
        """Open (or, after the tail, create) the segment that follows ``old`` as the head.

        May raise OSError (no descriptor, no room for a file): nothing changed then.
        """
        if old is self.tail:
            return Segment.create(self.path, old.number + 1, self.file_mode)
        if self.middle:  # numbers may skip: a segment emptied while an older one lingered is gone
            number = self.middle[0]
            cached = self.cache.get(number)
            if cached is not None:  # (written by this handle, untouched since: its items are these)
                payloads, end, trimmed, cost = cached
                seg = Segment.written(self.path, number, payloads, end, trimmed)  # (OSError: nothing changed)
                del self.cache[number]
                self.cached_bytes -= cost
                self.tail_cap += cost
                return seg
            return Segment.load(self.path, number, last=False, head=True)
        tail = self.tail
        if self.tail_fresh:  # (all its items are in tail_payloads)
            tail.pending = deque(zip(range(len(self.tail_payloads)), self.tail_payloads, strict=True))
            self.tail_payloads = []
            return tail
        tail.read_back(last=True, head=True)  # (reads the file again: the counts it sets are the same)
        return tail

    def _advance_head(self, old: Segment, nxt: Segment) -> None:
        """Make ``nxt`` (from _next_head_locked) the head after ``old``. Cannot fail."""
        if old is self.tail:
            self.head = self.tail = nxt
            self._fresh_tail()
            self.dir_dirty = True
            return
        if nxt is self.tail:
            counted = nxt.added - nxt.removed - self.tail_uncounted
            self.tail_uncounted = 0
            self._recount(len(nxt.pending) - counted)
            if nxt.damage is not None:  # changed under us: stop appending to it
                try:
                    self.roll()
                except Exception:
                    pass  # the next enqueue rolls it
        else:
            self.middle.popleft()
            self._recount(len(nxt.pending) - self.middle_live.pop(nxt.number, self.segment_size))
        self.head = nxt

    def _recount(self, delta: int) -> None:
        """Correct the counts when a segment turns out to hold ``delta`` more live items than assumed."""
        if delta:
            self.size += delta
            self.host.recounted(delta)

    def _head_done(self) -> bool:
        head = self.head
        return not head.pending and head.damage is None and (head is not self.tail or head.added >= self.segment_size)

    def settle_head(self) -> None:
        """Move past heads with nothing left to hand out, and screen a new head for dead letters.

        Raises OSError if the next segment cannot be opened: the head is then
        left as it was (moving on is retried by the next call that needs it).
        """
        while True:
            head = self.head
            if self.max_deliveries and head.deliveries:
                self._screen(head)
            if not self._head_done():
                return  # (a head before the tail is finished when empty, full or not)
            nxt = self._next_head(head)  # first: if this fails, nothing changed
            if head.out:
                self.lingering[head.number] = head  # open until its last item out is acked
            else:
                self._unlink(head)
            self._advance_head(head, nxt)

    def settle_after(self) -> None:
        """Settle the head after a change was made: a failure is left to the next call that needs the head."""
        try:
            self.settle_head()
        except Exception:
            pass  # (OSError: _first_locked tries again, before that call changes anything, and reports it)

    def settle(self, seg: Segment) -> None:
        """Delete a segment before the head once every item in it is deleted."""
        if seg.out or seg is self.head or self.lingering.get(seg.number) is not seg:
            return
        del self.lingering[seg.number]
        self._unlink(seg)

    def _unlink(self, seg: Segment) -> None:
        """Delete a used segment file. Never raises: a failed delete is retried with the next sync."""
        seg.drop()  # (not trimmed: it goes)
        self.doomed.append(seg.path)  # a used segment found again after a crash is deleted at open
        if self.turbo:
            self._background()
        else:
            self.dir_dirty = True
            try:
                self.doomed.extend(finish_background_files([], self._doomed_now())[1])
            except OSError:  # (no sync ran: only unlinks)
                pass

    def _doomed_now(self) -> list[str]:
        doomed, self.doomed = self.doomed, []
        return doomed

    def _background(self) -> None:
        """Hand turbo mode's deferred work to the background thread, or do it now if there is none."""
        waiting = len(self.rolled) + len(self.doomed)
        wake = self.wake_syncer
        if waiting >= _BACKGROUND_MAX or (wake is None and waiting >= _BACKGROUND_BATCH):
            self.finish_background()
        elif wake is not None and waiting >= _BACKGROUND_BATCH:
            wake.set()

    def take_background(self) -> tuple[list[str], list[str]]:
        rolled, self.rolled = self.rolled, []
        doomed, self.doomed = self.doomed, []
        return rolled, doomed

    def requeue_background(self, rolled: list[str], doomed: list[str], synced: Sequence[str] = ()) -> None:
        """After finish_background_files: seal what it synced, keep what it could not do for the next time."""
        if synced:
            self.seal_synced(synced)
        self.rolled[:0] = rolled
        self.doomed[:0] = doomed
        if doomed:
            self.dir_dirty = True

    def finish_background(self) -> None:
        """Sync the rolled files and delete the doomed ones now; a failed sync poisons the handle."""
        try:
            left = finish_background_files(*self.take_background())
        except FailedSync as failed:
            raise self.host.sync_failed(failed.error) from failed.error
        self.requeue_background(*left)
        self.dir_dirty = True

    def open_segments(self) -> list[Segment]:
        """The segments with an open file, oldest first, each once."""
        segs = [self.lingering[n] for n in sorted(self.lingering)]
        segs.append(self.head)
        if self.tail is not self.head:
            segs.append(self.tail)
        return segs

    def quarantine_head(self) -> None:
        """Report the damage of the head, whose items are all out or taken, go on with the next segment.

        The damaged end of the head's file was moved aside to ``*.corrupt``
        when it became the head (Segment.read_back), so its file holds only
        good records: it stays while items of it are out (leased or released),
        like any used head. Raises CorruptedError (or OSError, nothing changed,
        if the next segment cannot be opened).
        """
        head = self.head
        damage = head.damage
        assert damage is not None
        head.damage = None
        try:
            nxt = self._next_head(head)
        except BaseException:
            head.damage = damage
            raise
        if head.out:
            self.lingering[head.number] = head
        else:
            self._unlink(head)
        self._advance_head(head, nxt)
        self.settle_after()
        raise CorruptedError(head.path, damage.offset, damage.reason)

    def roll(self, new: Segment | None = None) -> None:
        """Start a new tail segment (``new``, made beforehand, or made here first) after a full one.

        Safe mode syncs the full one (a failed sync poisons the handle).
        Turbo mode syncs it in the background, within ``max_delay`` (at once
        when a batch is waiting).
        """
        old = self.tail
        if new is None:
            new = Segment.create(self.path, old.number + 1, self.file_mode)  # first: if this fails, nothing changed
        self.dir_dirty = True
        # A seal counts every item record before it as live: only a segment that holds nothing else gets
        # one (a tail that was the head before a reopen, the head going back to an older segment whose
        # lease came back, holds deletes and delivery counts).
        sealable = old is not self.head and self.seals and not old.removed and not old.deliveries
        if old.fd >= 0 and old.dirty and not self.turbo:
            try:
                _fs.datasync(old.fd)
            except OSError as exc:
                new.drop()
                raise self.host.sync_failed(exc) from exc
            old.dirty = False
        if sealable and not self.turbo:
            self._seal(old)  # after the sync of everything before it (turbo: once it is synced)
        trimmed = False
        if old is not self.head:
            try:
                old.trim()  # drop its reserved room
                trimmed = True
            except OSError:
                pass  # the room stays (zeros after the last record); the next open cuts it
        if old.fd >= 0 and old.dirty and self.turbo:
            self.rolled.append(old.path)
            if sealable:
                self.unsealed[old.path] = (old.added, old.end)
            old.dirty = False
            self._background()
        if old is not self.head:
            try:
                old.close()
            except OSError:
                pass  # its fd is closed either way
            self.middle.append(old.number)
            live = old.added - old.removed - self.tail_uncounted
            self.tail_uncounted = 0
            if live != self.segment_size:
                self.middle_live[old.number] = live
            if self.tail_fresh:
                cost = old.end + _ITEM_COST * old.added + _SEGMENT_COST
                self.cache[old.number] = (self.tail_payloads, old.end, trimmed, cost)
                self.cached_bytes += cost
        self.tail = new
        self._fresh_tail()

    def _seal(self, seg: Segment) -> None:
        """Store the seal of a full segment that holds only items, all synced (safe mode's roll). Never raises.

        No seal (no room left, say) only means an open after a crash reads the segment.
        """
        if seg.removed or seg.deliveries or seg.fd < 0:
            return
        try:
            seg.reserve(SEAL_SIZE)
        except OSError:
            return
        seg.append(encode_seal(seg.added, seg.end))

    def seal_synced(self, synced: Sequence[str]) -> None:
        """(Turbo.) Seal the rolled segments that are now synced and still untouched between head and tail.

        Appended through a descriptor of its own, only where the file ends
        where the segment's records ended. Never raises: a seal is a hint.
        """
        for path in synced:
            sealing = self.unsealed.pop(path, None)
            number = int(os.path.basename(path).partition(".")[0])
            if sealing is None or not self.middle or not self.middle[0] <= number <= self.middle[-1]:
                continue  # (not to be sealed, or it is the head or before it by now)
            items, end = sealing
            seal_closed(path, self.file_mode, items, end)

    def append(self, records: list[bytes], payloads: list[bytes]) -> None:
        """Write item records at the tail, rolling segments as they fill: all or nothing.

        First the room in the tail and every new segment the records need
        (OSError, nothing changed, if there is none), then the stores.
        (enqueue keeps its own copy for one item.)
        """
        total = len(records)
        tail = self.tail
        cuts = self._cuts(records)
        first = cuts[0]
        chunks: list[
            tuple[Segment | None, int, int, bytes]
        ] = []  # (new segment or None for the tail, start, stop, bytes)
        if first:
            chunks.append((None, 0, first, records[0] if first == 1 else b"".join(records[:first])))
        number = tail.number
        try:
            if first:
                tail.reserve(len(chunks[0][3]))
            for start, stop in zip(cuts, cuts[1:], strict=False):
                number += 1
                new = Segment.create(self.path, number, self.file_mode)
                chunks.append((new, start, stop, b"".join(records[start:stop])))
                new.reserve(len(chunks[-1][3]))
        except BaseException:
            for made, _, _, _ in chunks:
                if made is not None:
                    made.drop()
                    try:
                        _fs.unlink(made.path)
                    except OSError:
                        pass  # an empty segment file after the tail holds nothing
            raise
        # The point of no return: stores, and the syncs of rolled segments (safe mode).
        for made, start, stop, chunk in chunks:
            if made is not None:
                self.roll(made)
            tail = self.tail
            tail.append(chunk)
            room = stop - start
            if tail is not self.head:
                if self.tail_fresh:
                    self._keep(tail, payloads[start:stop])
            elif room == 1:
                tail.pending.append((tail.added, payloads[start]))
            else:
                tail.pending.extend(zip(range(tail.added, tail.added + room), payloads[start:stop], strict=True))
            tail.added += room
        self.size += total
        self.write_seq += 1

    def _keep(self, tail: Segment, payloads: list[bytes]) -> None:
        """(A fresh tail, not the head, just appended to.) Keep its new items in memory too, within cache_max."""
        if tail.end + _ITEM_COST * tail.added > self.tail_cap or max(map(len, payloads)) >= SMALL:
            self._forget_tail()
        else:
            self.tail_payloads += payloads

    def _forget_tail(self) -> None:
        """Stop keeping the tail's items in memory (over the budget, or a large item): it will be read back."""
        self.tail_payloads = []
        self.tail_fresh = False

    def _fresh_tail(self) -> None:
        """The tail is a segment just created by this handle: keep its items, within the budget."""
        self.tail_fresh, self.tail_payloads = True, []
        self.tail_cap = self.cache_max - self.cached_bytes - _SEGMENT_COST

    def _cuts(self, records: list[bytes]) -> list[int]:
        """Where ``records`` go: the end index of each segment's run, the current tail's first (maybe empty).

        A segment takes records while it holds fewer than ``segment_size`` and
        its records take fewer than ``segment_bytes`` bytes (so a new one
        takes at least one), as a single enqueue rolls over.
        """
        size, cap, n = self.segment_size, self.byte_cap, len(records)
        tail = self.tail
        added, used, i = tail.added, tail.end, 0
        cuts = []
        if used + sum(map(len, records)) < cap:  # (the common case: the byte bound is far)
            i = min(max(size - added, 0), n) if used < cap else 0
            cuts.append(i)
            while i < n:
                i = min(i + size, n)
                cuts.append(i)
            return cuts
        while True:
            while i < n and added < size and used < cap:
                used += len(records[i])
                added += 1
                i += 1
            cuts.append(i)
            if i >= n:
                return cuts
            added = used = 0

    def first(self) -> tuple[Segment, int, bytes] | None:
        """The next item to hand out, not taken: released items first, then the head's.

        Moves the head on first if it is used up (OSError, nothing changed, if it cannot).
        """
        if self.returned:
            _, index, payload, seg = self.returned[0]
            return seg, index, payload
        head = self.head
        if not head.pending:
            if not self.size or not self._head_done():
                return None
            self.settle_head()
            if self.returned:
                return self.first()
            head = self.head
            if not head.pending:
                return None
        index, payload = head.pending[0]
        return head, index, payload

    def pop(self, limit: int, decode: Decode) -> list[tuple[Segment, int, bytes, Any, bool]]:
        """Take up to ``limit`` ready items out of the ready set (at least one, or raise).

        Returns ``(segment, index, payload, item, in_order)`` each; ``item`` is
        the deserialized item (the payload if ``raw``); ``in_order`` says a
        plain DELETE record deletes it (it is its segment's lowest live item
        once the entries before it are deleted). The items are "out" until the
        caller deletes or leases them (or puts them back with _unpop_locked).
        """
        taken: list[tuple[Segment, int, bytes, Any, bool]] = []
        batch_out: dict[Segment, int] = {}
        while len(taken) < limit:
            try:
                first = self.first()
            except Exception:
                if taken:
                    break  # the next call reports it
                raise
            if first is None:
                if not taken and self.head.damage is not None:
                    self.quarantine_head()
                break
            seg, index, payload = first
            if decode is None:
                item: Any = payload
            else:
                try:
                    item = decode(payload)
                except Exception as exc:
                    if taken:
                        break  # the next call reports it
                    raise SerializationError(
                        f"cannot deserialize the item at the head of {self.path}: {exc!r}"
                    ) from exc
            if self.returned:
                heapq.heappop(self.returned)
                in_order = False
            else:
                seg.pending.popleft()
                in_order = seg.out == batch_out.get(seg, 0)
                batch_out[seg] = batch_out.get(seg, 0) + 1
                seg.out += 1
            self.size -= 1
            taken.append((seg, index, payload, item, in_order))
        if not taken:
            raise Empty
        return taken

    def unpop(self, entries: list[tuple[Segment, int, bytes, Any, bool]]) -> None:
        """Put taken entries back among the ready items, in their order (a write failed)."""
        for seg, index, payload, _, _ in entries:
            heapq.heappush(self.returned, (seg.number, index, payload, seg))
        self.size += len(entries)

    def store_grouped(self, groups: list[tuple[Segment, bytes]]) -> None:
        """Append records to segments, all or nothing: room is reserved in every one before any store.

        Raises OSError (a full disk, no descriptor) having stored nothing.
        """
        need: dict[Segment, int] = {}
        for seg, records in groups:
            need[seg] = need.get(seg, 0) + len(records)
        for seg, n in need.items():
            seg.reserve(n)
        for seg, records in groups:
            seg.append(records)  # (cannot fail now: the room is there)
        self.write_seq += 1

    def write_grouped(self, entries: list[Any], record_of: Any) -> None:
        """Write one record per taken entry, one store per segment, all or nothing.

        If there is no room, the entries are put back among the ready items and the error raised.
        """
        groups = [(seg, b"".join([record_of(entry) for entry in group])) for seg, group in by_segment(entries)]
        try:
            self.store_grouped(groups)
        except BaseException:
            self.unpop(entries)
            raise

    def delete(self, entries: list[tuple[Segment, int, bytes, Any, bool]]) -> list[Any]:
        """Delete taken entries for good (all or nothing); returns their items."""
        self.write_grouped(entries, lambda e: DELETE_MARKER if e[4] else encode_index_record(ACK, e[1]))
        for seg, _, _, _, _ in entries:
            seg.removed += 1
            seg.out -= 1
        for seg in sorted({e[0] for e in entries}, key=by_number):
            self.settle(seg)
        self.settle_after()
        return [e[3] for e in entries]

    def take(self, limit: int, decode: Decode) -> list[Any]:
        """Remove and return up to ``limit`` items (payload bytes if ``raw``): at least one, or raise.

        The common case, a head with nothing out and nobody waiting to put, takes a run of
        the head's items with one store of their delete markers: ``dequeue_many(100)`` gives
        1.33x (1.30-1.43) the items/s of the general path below (stress/ab.py, 5 rounds, this
        commit against the one before), 1.4-1.7x single dequeues where it gave 1.04x; what
        is left per item is unpickling and the scan of each segment as it becomes the head. A
        run ends at the end of the head segment; the next segment's run follows, each one
        committed on its own: a failure after the first run ends the batch early (the next
        call reports it), never undoes a run.
        """
        head = self.head
        if self.returned or head.out or not head.pending:
            return self.delete(self.pop(limit, decode))
        out: list[Any] = []
        while True:
            pending = head.pending
            payloads = [payload for _, payload in islice(pending, limit - len(out))]
            if decode is None:
                items: list[Any] = payloads
            else:
                items = []
                try:
                    for payload in payloads:
                        items.append(decode(payload))
                except Exception:
                    if not items and not out:
                        return self.delete(self.pop(limit, decode))  # raises SerializationError
                    # (the item that does not deserialize stays at the head: the next call reports it)
            n = len(items)
            if n:
                try:
                    head.store(_delete_markers(n), DELETE)  # (OSError if there is no room: nothing changed)
                except OSError:
                    if out:
                        return out
                    raise
                for _ in range(n):
                    pending.popleft()
                head.removed += n
                self.size -= n
                self.write_seq += 1
                out.extend(items)
            if len(out) >= limit or pending or n < len(payloads):
                return out
            try:
                self.settle_head()  # the head is used up: on to the next segment
            except Exception:
                return out  # (the next call reports it)
            head = self.head
            if self.returned or head.out or not head.pending:
                return out

    def take_one(self, decode: Decode) -> Any:
        """``_take_locked(1, raw)[0]``, the common case (no leases, nobody waiting) kept short."""
        head = self.head
        pending = head.pending
        if not pending or head.out or self.returned:
            return self.take(1, decode)[0]
        if decode is None:
            item = pending[0][1]
        else:
            try:
                item = decode(pending[0][1])
            except Exception:
                return self.take(1, decode)[0]  # raises SerializationError with the details
        head.store(UNCOMMITTED_DELETE_MARKER, DELETE)  # (OSError if there is no room: nothing changed)
        pending.popleft()
        head.removed += 1
        self.size -= 1
        self.write_seq += 1
        if not pending:
            self.settle_after()
        return item

    def peek(self, decode: Decode) -> Any:
        first = self.first()
        if first is None:
            if self.head.damage is not None:
                self.quarantine_head()
            raise Empty
        if decode is None:
            return first[2]
        try:
            return decode(first[2])
        except Exception as exc:
            raise SerializationError(f"cannot deserialize the item at the head of {self.path}: {exc!r}") from exc

    # ------------------------------------------------------- closing

    def close_files(self) -> None:
        """Close's work on the files: the last syncs and the clean-close marker. SyncError if a sync fails."""
        try:
            rolled, doomed = self.take_background()
            try:
                left_rolled, _, synced = finish_background_files(rolled, doomed)
            except FailedSync as failed:
                raise failed.error from None
            self.seal_synced(synced)
            for seg in self.open_segments():
                try:
                    seg.trim()  # drop the room reserved for records
                except OSError:
                    pass  # zeros after the last record: the next open cuts them
                if seg.dirty and seg.fd >= 0:
                    _fs.datasync(seg.fd)
                    seg.dirty = False
            if self.dir_dirty or doomed:
                _fs.sync_dir(self.path)
                self.dir_dirty = False
            if left_rolled:  # (a full segment that could not be opened to be synced)
                raise OSError(errno.EMFILE, f"could not open {left_rolled[0]} to sync it")
        except OSError as exc:
            raise self.host.sync_failed(exc) from exc
        try:
            _fs.write_file_durably(os.path.join(self.path, CLEAN_NAME), self.clean_marker())
        except OSError:
            pass  # no marker: the next open reads every segment to count the items

    # ------------------------------------------------------- one item (the hot paths)

    def append_one(self, record: bytes, payload: bytes, body: bytes) -> None:
        """``append([record + body], [payload])`` for one item, kept short (see DQue.enqueue). OSError: nothing changed."""
        tail = self.tail
        if tail.added >= self.segment_size or tail.end >= self.byte_cap:
            self.roll()
            tail = self.tail
        tail.store(record, ITEM, body)
        if tail is self.head:
            tail.pending.append((tail.added, payload))
        elif self.tail_fresh:
            if body or tail.end + _ITEM_COST * tail.added > self.tail_cap:
                self._forget_tail()
            else:
                self.tail_payloads.append(payload)
        tail.added += 1
        self.size += 1
        self.write_seq += 1

    # ------------------------------------------------------- items out (leases)

    def lease(self, entries: list[Entry]) -> list[int]:
        """Count the hand-out of taken entries (a LEASE record each); returns their deliveries.

        All or nothing: OSError (no room) puts the entries back among the ready items.
        """
        self.write_grouped(entries, lambda e: encode_index_record(LEASE, e[1]))
        counts = []
        for seg, index, _, _, _ in entries:
            deliveries = seg.deliveries[index] = seg.deliveries.get(index, 0) + 1
            counts.append(deliveries)
        self.settle_after()
        return counts

    def lease_one(self, decode: Callable[[bytes], Any]) -> tuple[Any, Segment, int, bytes, int] | None:
        """``(item, segment, index, payload, deliveries)`` of the head's next item, leased; None if that is not the
        common case (released items first, an empty head, an item that does not deserialize): then use pop/lease.

        OSError if there is no room for the LEASE record: nothing changed.
        """
        head = self.head
        pending = head.pending
        if not pending or self.returned:
            return None
        index, payload = pending[0]
        try:
            item = decode(payload)
        except Exception:
            return None  # (the general path reports it)
        head.store(UNCOMMITTED_LEASES[index], LEASE)
        pending.popleft()
        head.out += 1
        self.size -= 1
        self.write_seq += 1
        if not pending:
            self.settle_after()
        # (head.deliveries gets the new count when the lease ends without an ack)
        return item, head, index, payload, head.deliveries.get(index, 0) + 1

    def ack_one(self, seg: Segment, index: int) -> None:
        """``ack([(seg, index)])``, the common case kept short. OSError (no room): nothing changed."""
        seg.store(UNCOMMITTED_ACKS[index], ACK)
        self.write_seq += 1
        seg.removed += 1
        seg.out -= 1
        if not seg.out and seg is not self.head:
            self.settle(seg)

    def ack(self, items: list[tuple[Segment, int]]) -> None:
        """Delete items that are out (leased) for good, all or nothing: an ACK record each.

        OSError (no room): nothing changed.
        """
        groups = by_segment(sorted(items, key=lambda i: (i[0].number, i[1])))
        self.store_grouped(
            [(seg, b"".join([encode_index_record(ACK, index) for _, index in group])) for seg, group in groups]
        )
        segs = set()
        for seg, _ in items:
            seg.removed += 1
            seg.out -= 1
            segs.add(seg)
        for seg in sorted(segs, key=by_number):
            self.settle(seg)

    def give_back(self, seg: Segment, index: int, payload: bytes) -> None:
        """An item that is out (a lease ended without an ack) is ready again, ahead of the head's, in its order."""
        heapq.heappush(self.returned, (seg.number, index, payload, seg))
        self.size += 1

    def remove_out(self, seg: Segment, record: bytes) -> None:
        """Delete an item that is out with ``record`` (an ACK, its room reserved in ``seg`` beforehand). Cannot fail."""
        seg.append(record)
        self.write_seq += 1
        seg.removed += 1
        seg.out -= 1
        self.settle(seg)

    def _screen(self, seg: Segment) -> None:
        """Move the items of a newly loaded head that were handed out max_deliveries times (see StoreHost)."""
        keep: deque[tuple[int, bytes]] = deque()
        for index, payload in seg.pending:
            if seg.deliveries.get(index, 0) >= self.max_deliveries:
                seg.out += 1
                self.size -= 1
                if self.host.dead_letter(seg, index, payload):
                    continue
                seg.out -= 1
                self.size += 1
            keep.append((index, payload))
        seg.pending = keep


@lru_cache(maxsize=64)
def _delete_markers(n: int) -> bytes:
    """``n`` delete markers as a store writes them first (the first one's type byte 0)."""
    return UNCOMMITTED_DELETE_MARKER + DELETE_MARKER * (n - 1)


class _IndexRecords(dict[int, bytes]):
    """Item index -> the LEASE or ACK record naming it, as a store writes it first (type 0)."""

    def __init__(self, rtype: int) -> None:
        super().__init__()
        self.rtype = rtype

    def __missing__(self, index: int) -> bytes:
        record = uncommitted(encode_index_record(self.rtype, index))
        if index < 65536:  # (a bound on the memory kept, as encode_index_record's)
            self[index] = record
        return record


UNCOMMITTED_LEASES = _IndexRecords(LEASE)
UNCOMMITTED_ACKS = _IndexRecords(ACK)


class FailedSync(Exception):
    """A sync in finish_background failed (OSError ``error``), as against an open or unlink that failed."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def finish_background_files(rolled: list[str], doomed: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Sync the rolled files, then delete the doomed ones (with or without the mutex).

    A rolled file is synced through a new descriptor (fdatasync flushes the
    file, whichever descriptor wrote it); one already moved aside or deleted
    needs nothing. Returns the paths it could not get to (no descriptor free,
    a delete that failed), for later, and the rolled ones it synced. Raises
    FailedSync if a sync failed.
    """
    left_rolled: list[str] = []
    left_doomed: list[str] = []
    synced: list[str] = []
    for path in rolled:
        if not os.path.exists(path):
            continue
        try:
            fd = _fs.open_rw(path)
        except FileNotFoundError:
            continue
        except OSError:
            left_rolled.append(path)
            continue
        try:
            _fs.datasync(fd)
        except OSError as exc:
            raise FailedSync(exc) from exc
        finally:
            close_fd(fd)
        synced.append(path)
    for path in doomed:
        try:
            _fs.unlink(path)
        except FileNotFoundError:
            pass  # already gone (a crash between the unlink and the list, or deleted by hand)
        except OSError:
            left_doomed.append(path)
    return left_rolled, left_doomed, synced
