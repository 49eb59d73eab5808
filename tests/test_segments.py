"""Segments sized by bytes as well as items, and seals: an open after a crash counts without reading.

A segment rolls over at ``segment_size`` items or once its records take
``segment_bytes`` bytes, whichever comes first, so what a process holds of a
queue in memory is bounded whatever the item size. A full segment of a
format-2 queue ends with a seal, written only once everything before it is
synced; an open (after a crash too) takes the count from it instead of
reading the segment. Every test checks the items one by one.
"""

from __future__ import annotations

import json
import pickle
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import dque
from dque import _format
from dque._segment import Segment


def segment_files(qdir: Path) -> list[Path]:
    return sorted(qdir.glob("*.seg"))


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_segments_roll_over_by_bytes(tmp_path, turbo):
    big = b"x" * 3000
    with dque.new("q", tmp_path, segment_size=1000, segment_bytes=10_000, serializer="bytes", turbo=turbo) as q:
        for i in range(10):
            q.enqueue(big + bytes([i]))
        q.enqueue_many([big + bytes([10 + i]) for i in range(10)])
        assert q.size() == 20
    files = segment_files(tmp_path / "q")
    assert len(files) >= 5  # 4 records of ~3 KB reach 10,000 bytes
    for path in files[:-1]:
        assert path.stat().st_size <= 10_000 + 3012 + _format.SEAL_SIZE
    with dque.open("q", tmp_path) as q:
        assert q.size() == 20
        assert [q.dequeue()[-1] for _ in range(20)] == list(range(20))


def test_memory_stays_bounded_with_large_items(tmp_path):
    """Distinct 1 MB items, 128 MB through the queue in rounds of 64: with 4 MB segments the process's
    peak RSS grows by about 10 MB (with no byte bound a 64-item head segment held 64 MB: 74 MB here)."""
    script = f"""
import resource, dque
q = dque.new("q", {str(tmp_path)!r}, serializer="bytes", segment_bytes=4 << 20, turbo=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for round_ in range(2):
    for i in range(64):
        q.enqueue(bytes([i]) * (1 << 20))
    for i in range(64):
        item = q.dequeue()
        assert len(item) == 1 << 20 and item[0] == i and item[-1] == i
q.close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    growth_kb = int(proc.stdout.strip())
    assert growth_kb < 32 * 1024, f"peak RSS grew by {growth_kb} KB moving 128 MB of items"


def _fill_and_kill(tmp_path: Path, turbo: bool, count: int, segment_size: int) -> None:
    script = f"""
import os, signal, time, dque
q = dque.new("q", {str(tmp_path)!r}, segment_size={segment_size}, turbo={turbo})
for start in range(0, {count}, 100):
    q.enqueue_many(range(start, min(start + 100, {count})))
q.dequeue_many(3)
if {turbo}:
    q.turbo_sync()  # (a SIGKILL loses nothing anyway; this lets the background seals land)
    time.sleep(0.3)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_an_open_after_sigkill_counts_sealed_segments_without_reading_them(tmp_path, monkeypatch, turbo):
    _fill_and_kill(tmp_path, turbo, count=1000, segment_size=50)
    loaded: list[int] = []
    real_load = Segment.load.__func__

    def counting_load(cls, qdir, number, **kw):
        loaded.append(number)
        return real_load(cls, qdir, number, **kw)

    monkeypatch.setattr(Segment, "load", classmethod(counting_load))
    with dque.open("q", tmp_path) as q:
        read_at_open = sorted(set(loaded))
        assert q.size() == 997
        assert len(read_at_open) <= 3, f"an open after a crash read segments {read_at_open}"
        got = []
        while chunk := q.dequeue_many(500):
            got.extend(chunk)
    assert got == list(range(3, 1000))


def test_a_torn_or_missing_seal_only_means_the_segment_is_read(tmp_path):
    with dque.new("q", tmp_path, segment_size=5) as q:
        q.enqueue_many(range(20))
    files = segment_files(tmp_path / "q")
    middle = files[1]
    data = middle.read_bytes()
    assert _format.read_seal(data[-_format.SEAL_SIZE :], len(data)) == 5
    middle.write_bytes(data[:-_format.SEAL_SIZE] + data[-_format.SEAL_SIZE :][:14] + b"\0" * 6)  # a torn seal
    other = files[2]
    other.write_bytes(other.read_bytes()[: -_format.SEAL_SIZE])  # no seal at all
    (tmp_path / "q" / "dque.clean").unlink()  # as after a crash
    with dque.open("q", tmp_path) as q:
        assert q.size() == 20
        assert q.dequeue_many(100) == list(range(20))


def test_a_seal_that_lies_about_its_place_is_not_trusted(tmp_path):
    with dque.new("q", tmp_path, segment_size=5) as q:
        q.enqueue_many(range(15))
    middle = segment_files(tmp_path / "q")[1]
    data = middle.read_bytes()
    middle.write_bytes(data + _format.encode_seal(99, 0))  # a whole seal, but not where the records end
    (tmp_path / "q" / "dque.clean").unlink()
    with dque.open("q", tmp_path) as q:
        assert q.size() == 15 or q.dequeue_many(100)[:5] == list(range(5))


def test_a_format_1_queue_opens_unchanged_and_writes_no_seals(tmp_path):
    with dque.new("q", tmp_path, segment_size=5) as q:
        pass
    config_path = tmp_path / "q" / "dque.json"
    config = json.loads(config_path.read_text())
    config["format"] = 1
    del config["segment_bytes"]
    config_path.write_text(json.dumps(config))
    with dque.open("q", tmp_path) as q:
        assert q.segment_bytes == 0
        q.enqueue_many(range(12))
    for path in segment_files(tmp_path / "q"):
        data = path.read_bytes()
        assert _format.read_seal(data[-_format.SEAL_SIZE :], len(data)) is None
        assert _format.scan(data).damage is None
    assert json.loads(config_path.read_text())["format"] == 1
    with dque.open("q", tmp_path) as q:
        assert q.dequeue_many(100) == list(range(12))


def test_segment_bytes_is_checked_and_stored(tmp_path):
    with pytest.raises(ValueError):
        dque.new("q", tmp_path, segment_bytes=-1)
    with pytest.raises(TypeError):
        dque.new("q", tmp_path, segment_bytes="big")
    dque.new("q", tmp_path, segment_bytes=12345).close()
    assert json.loads((tmp_path / "q" / "dque.json").read_text())["segment_bytes"] == 12345
    with dque.open("q", tmp_path) as q:
        assert q.segment_bytes == 12345
    assert os.path.exists(tmp_path / "q")


def test_a_clean_open_counts_short_segments_without_reading_them(tmp_path, monkeypatch):
    """Byte-bounded segments hold fewer than segment_size items; after a clean close the marker
    has their counts: the open reads no segment between head and tail, and the count is exact."""
    with dque.new("q", tmp_path, segment_size=1000, segment_bytes=2000, serializer="bytes") as q:
        q.enqueue_many([bytes([i]) * 300 for i in range(60)])  # about 6 items a segment
        assert [q.dequeue()[0] for _ in range(4)] == [0, 1, 2, 3]
    read: list[str] = []
    real_load, real_tail = Segment.load.__func__, dque._fs.read_tail

    def counting_load(cls, qdir, number, **kw):
        read.append(f"load {number}")
        return real_load(cls, qdir, number, **kw)

    def counting_tail(path, n):
        read.append(f"tail {path}")
        return real_tail(path, n)

    monkeypatch.setattr(Segment, "load", classmethod(counting_load))
    monkeypatch.setattr(dque._fs, "read_tail", counting_tail)
    with dque.open("q", tmp_path) as q:
        assert q.size() == 56
        assert len(read) <= 2, read  # the head (and nothing between head and tail)
        assert [item[0] for item in q.dequeue_many(100)] == list(range(4, 60))


# ---------------------------------------------------------------- segments this handle wrote


def _reads_of_segments(monkeypatch) -> list[str]:
    """Count the segment files read back from now on (Segment.read_back reads the whole file)."""
    from dque import _fs

    reads: list[str] = []
    real = _fs.read_file

    def counting(path):  # noqa: ANN001, ANN202
        if str(path).endswith(".seg"):
            reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(_fs, "read_file", counting)
    return reads


@pytest.mark.parametrize("turbo", [False, True])
def test_the_head_moves_on_to_a_segment_this_handle_wrote_without_reading_it(tmp_path, monkeypatch, turbo):
    """Items of segments written by this handle are in memory until each is the head: nothing is read
    back, and every item comes out once, in order, through every kind of take."""
    reads = _reads_of_segments(monkeypatch)
    with dque.new("q", tmp_path, segment_size=7, turbo=turbo) as q:
        q.enqueue_many(range(100))
        for i in range(100, 200):
            q.enqueue(i)
        q.put_payloads([pickle.dumps(i) for i in range(200, 230)])
        got = [q.dequeue(), q.get()]
        got += q.dequeue_many(50)
        lease = q.lease()
        lease.release()
        leases = q.lease_many(20)
        q.ack_many([lease.id for lease in leases])
        got += [lease.item for lease in leases]
        got += [pickle.loads(p) for p in q.take_payloads(30)]
        while q.size():
            got += q.dequeue_many(9)
        assert got == list(range(230))
    assert reads == []


def test_over_its_budget_the_segments_are_read_back_and_nothing_changes(tmp_path, monkeypatch):
    from dque import _store

    monkeypatch.setattr(_store, "_CACHE_MAX", 3000)  # a few segments' worth of small items
    reads = _reads_of_segments(monkeypatch)
    items = [{"i": i, "pad": "x" * (i % 50)} for i in range(400)]
    items[150] = {"i": 150, "pad": "y" * 10_000}  # a large item: its segment is read back too
    with dque.new("q", tmp_path, segment_size=10) as q:
        for item in items[:200]:
            q.enqueue(item)
        q.enqueue_many(items[200:])
        assert q.dequeue_many(1000) == items
    assert reads, "some segments had to be read back"
    assert len(reads) < 40  # and the first ones were not


def test_a_reopen_after_sigkill_reads_what_the_killed_handle_kept_in_memory(tmp_path):
    """What a handle keeps in memory is only a copy: killed, its items are all on disk for the next open."""
    script = (
        "import dque, os, signal\n"
        f"q = dque.new('q', {str(tmp_path)!r}, segment_size=5, turbo=True)\n"
        "q.enqueue_many(range(60))\n"
        "for i in range(60, 120): q.enqueue(i)\n"
        "assert q.dequeue_many(12) == list(range(12))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with dque.open("q", tmp_path) as q:
        assert q.size() == 108
        assert q.dequeue_many(200) == list(range(12, 120))


def test_records_after_a_failed_trim_go_where_a_reopen_reads_them(tmp_path, monkeypatch):
    """A rolled segment whose trim failed keeps its zero room; when it is the head, its LEASE and DELETE
    records must go right after its items, not after the room (where a scan stops): after a reopen the
    delivery counts and the deletes are all there. (Found by the fault sweep.)"""
    from dque import _fs

    real = _fs.truncate
    failed: list[int] = []

    def failing(fd, size):  # noqa: ANN001, ANN202
        if size and not failed:  # the trim of the first full segment as it rolls
            failed.append(size)
            raise OSError(24, "Too many open files (injected)")
        return real(fd, size)

    with dque.new("q", tmp_path, segment_size=3) as q:
        q.enqueue(0)
        q.dequeue()  # the head moves on past segment 1 once it is full
        monkeypatch.setattr(_fs, "truncate", failing)
        q.enqueue_many([1, 2])
        for i in range(3, 9):
            q.enqueue(i)  # segment 2 ({3, 4, 5}) rolls: its trim fails, its room stays
        monkeypatch.setattr(_fs, "truncate", real)
        assert failed
        assert q.dequeue_many(2) == [1, 2]
        lease = q.lease()  # item 3, from segment 2, now the head: a LEASE record there
        assert lease.item == 3
        lease.release()
        assert q.dequeue() == 3  # a DELETE record there
    with dque.open("q", tmp_path) as q:
        lease = q.lease()
        assert (lease.item, lease.deliveries) == (4, 1)
        lease.release()
        assert q.dequeue_many(10) == [4, 5, 6, 7, 8]


def test_a_tail_that_was_the_head_before_a_reopen_gets_no_seal(tmp_path):
    """After a reopen the head can be an older segment again (a lease that was out comes back), and the
    tail one that was the head before, with items deleted: when it rolls it must not get a seal (a seal
    counts every item record as live), or an open after a crash counts the deleted items. Turbo mode
    seals in the background; safe mode checked this already. (Found by stress/power_cut.py.)"""
    script = (
        "import dque, os, signal\n"
        f"d = {str(tmp_path)!r}\n"
        "q = dque.new('q', d, segment_size=3, turbo=True)\n"
        "q.enqueue_many(range(5))\n"  # segment 1: 0 1 2; segment 2: 3 4
        "q.lease()\n"  # 0, out: segment 1 stays
        "assert q.dequeue_many(3) == [1, 2, 3]\n"  # segment 2 is the head: a DELETE in it
        "q.close()\n"
        "q = dque.open('q', d, turbo=True)\n"  # the head is segment 1 again (0 is back); the tail segment 2
        "q.enqueue(5)\n"  # into segment 2, full now
        "q.enqueue(6)\n"  # segment 2 rolls, between head and tail now
        "q.turbo_sync()\n"  # synced: a seal would be written now
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with dque.open("q", tmp_path) as q:
        assert q.size() == 4
        assert q.dequeue_many(10) == [0, 4, 5, 6]
