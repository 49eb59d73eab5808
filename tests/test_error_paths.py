"""Error paths that lose nothing: one test per finding of issue 9 about the engine.

Each test makes a file-system call fail the way a full disk, a missing
descriptor, a failed sync or damage on disk would, then checks, item by
item, that the call that raised changed nothing its caller can see, that
the queue carries on, and that a reopen shows the same queue.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dque
from dque import _format, _fs
from dque._segment import Segment

NAME = "q"


def drain(q) -> list:
    """Every item left, reading past reported damage."""
    out = []
    while True:
        try:
            got = q.dequeue_many(1000)
        except dque.CorruptedError:
            continue
        if not got:
            return out
        out.extend(got)


def records(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each record of a segment file."""
    out, pos = [], 0
    while pos + _format.HEADER_SIZE <= len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        out.append((pos, _format.HEADER_SIZE + length))
        pos += _format.HEADER_SIZE + length
    return out


def damage_record(path: Path, rec: int) -> int:
    """Flip a payload byte of record ``rec`` of a segment file; returns its offset."""
    data = bytearray(path.read_bytes())
    offset, length = records(bytes(data))[rec]
    data[offset + _format.HEADER_SIZE + (length - _format.HEADER_SIZE) // 2] ^= 0x5A
    path.write_bytes(bytes(data))
    return offset


def seg_path(tmp_path: Path, number: int) -> Path:
    return tmp_path / NAME / f"{number:013d}.seg"


def oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


# ------------------------------------------------------------ a failed sync poisons the handle


@pytest.mark.parametrize("fail", ["datasync", "sync_dir"])
def test_a_failed_sync_poisons_the_handle_until_reopen(tmp_path, monkeypatch, fail):
    q = dque.new(NAME, tmp_path, segment_size=3)
    q.enqueue_many(range(5))
    calls = []
    real = getattr(_fs, fail)

    def failing(arg):
        calls.append(arg)
        raise oserror(errno.EIO)

    monkeypatch.setattr(_fs, fail, failing)
    if fail == "sync_dir":
        with pytest.raises(dque.SyncError) as info:
            q.enqueue_many(range(5, 9))  # rolls a segment: a new directory entry to sync
    else:
        with pytest.raises(dque.SyncError) as info:
            q.enqueue(5)
    assert info.value.errno == errno.EIO and q.path in str(info.value) and "open the queue again" in str(info.value)
    tried = len(calls)
    for call in (q.size, q.dequeue, lambda: q.enqueue(9), q.in_flight, q.lease, q.peek, q.turbo_sync):
        with pytest.raises(dque.SyncError):
            call()
    assert len(calls) == tried, "a failed sync was tried again"
    assert not q.closed
    q.close()  # lets go of the files and the lock, syncs nothing
    assert q.closed and len(calls) == tried
    monkeypatch.setattr(_fs, fail, real)
    with dque.open(NAME, tmp_path) as again:
        got = drain(again)
    assert got[:5] == [0, 1, 2, 3, 4] and got[5:] in ([], [5], [5, 6, 7, 8])


def test_a_failed_sync_wakes_blocked_callers_with_the_error(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path)
    errors = []

    def blocked():
        try:
            q.dequeue_block(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    waiter = threading.Thread(target=blocked)
    waiter.start()
    time.sleep(0.1)
    monkeypatch.setattr(_fs, "datasync", lambda fd: (_ for _ in ()).throw(oserror(errno.EIO)))
    with pytest.raises(dque.SyncError):
        q.enqueue(1)  # (the waiter may take it before the sync fails: then it raises or gets it)
    waiter.join(10)
    assert not waiter.is_alive()
    q.close()


def test_a_failed_background_sync_is_raised_by_the_next_call(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path, turbo=True)
    q.turbo_on(max_delay=0.05)
    monkeypatch.setattr(_fs, "datasync", lambda fd: (_ for _ in ()).throw(oserror(errno.EIO)))
    q.enqueue(1)  # turbo: returns before the sync
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            q.size()
        except dque.SyncError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the background sync's failure was never reported")
    with pytest.raises(dque.SyncError):
        q.enqueue(2)
    q.close()


# ------------------------------------------------ finding 3: dead letters that cannot be moved stay put


def break_dead_letter_queue(tmp_path: Path) -> None:
    dead = tmp_path / (NAME + ".dead")
    dead.mkdir()
    (dead / "dque.json").write_text("{not json")


def test_a_failed_dead_letter_move_keeps_the_item(tmp_path, caplog):
    break_dead_letter_queue(tmp_path)
    with dque.new(NAME, tmp_path, max_deliveries=1) as q:
        q.enqueue_many(["a", "b"])
        with caplog.at_level(logging.ERROR, logger="dque"):
            for _ in range(3):
                lease = q.lease(block=False)
                assert lease.item == "a"
                lease.release()  # no error: the release itself worked
                assert (q.size(), q.in_flight()) == (2, 0)
        assert len([r for r in caplog.records if "dead-letter" in r.getMessage()]) == 1, "reported once"
        lease = q.lease(block=False)
        assert (lease.item, lease.deliveries) == ("a", 4)
        lease.ack()
    with dque.open(NAME, tmp_path) as q:
        assert drain(q) == ["b"]


def test_a_failed_dead_letter_move_on_expiry_keeps_the_expirer_alive(tmp_path):
    break_dead_letter_queue(tmp_path)
    with dque.new(NAME, tmp_path, max_deliveries=1) as q:
        q.enqueue_many(["a", "b"])
        q.lease(block=False, ttl=0.05)
        deadline = time.monotonic() + 10
        while q.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (q.size(), q.in_flight()) == (2, 0)
        second = q.lease(block=False, ttl=0.05)  # the expiry thread still runs
        assert second.item == "a"
        while q.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (q.size(), q.in_flight()) == (2, 0)
        assert [q.dequeue(), q.dequeue()] == ["a", "b"]


def test_every_lease_of_a_gone_owner_is_released_when_dead_letters_fail(tmp_path):
    break_dead_letter_queue(tmp_path)
    with dque.new(NAME, tmp_path, max_deliveries=1) as q:
        q.enqueue_many(range(5))
        got = q.lease_payloads(3, False, None, None, owner="client-1")
        assert len(got) == 3
        assert q.release_owner("client-1") == 3
        assert (q.size(), q.in_flight()) == (5, 0)
        assert drain(q) == [0, 1, 2, 3, 4]


def test_dead_letters_move_when_the_dead_letter_queue_works_again(tmp_path):
    break_dead_letter_queue(tmp_path)
    with dque.new(NAME, tmp_path, max_deliveries=1) as q:
        q.enqueue("a")
        q.lease(block=False).release()
        assert q.size() == 1
        shutil.rmtree(tmp_path / (NAME + ".dead"))
        q.lease(block=False).release()
        assert (q.size(), q.in_flight()) == (0, 0)
    with dque.open(NAME + ".dead", tmp_path) as dead:
        assert drain(dead) == ["a"]


# ------------------------------------------------ finding 4: damage keeps leased and released items


@pytest.mark.parametrize("end", ["close", "kill", "release"])
def test_damage_next_to_leased_items_keeps_them(tmp_path, end):
    with dque.new(NAME, tmp_path, segment_size=5) as q:
        q.enqueue_many(range(10))
    damage_record(seg_path(tmp_path, 1), 3)
    script = f"""
import os, sys, dque
q = dque.open({NAME!r}, {str(tmp_path)!r})
lease = q.lease(block=False)
assert lease.item == 0
assert [q.dequeue(), q.dequeue()] == [1, 2]
try:
    q.dequeue()
except dque.CorruptedError:
    pass
else:
    raise SystemExit("no CorruptedError")
if {end!r} == "release":
    lease.release()
    lease = q.lease(block=False)
    assert lease.item == 0 and lease.deliveries == 2
if {end!r} == "kill":
    os.kill(os.getpid(), 9)
q.close()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    if end == "kill":
        assert proc.returncode == -9, proc.stderr.decode()
    else:
        assert proc.returncode == 0, proc.stderr.decode()
    with dque.open(NAME, tmp_path) as q:
        assert q.size() == 6  # 0 (leased, not acked) and 5..9
        got = drain(q)
    assert got == [0, 5, 6, 7, 8, 9]


def test_a_released_item_of_a_damaged_segment_comes_back_in_order(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=5) as q:
        q.enqueue_many(range(10))
    damage_record(seg_path(tmp_path, 1), 3)
    with dque.open(NAME, tmp_path) as q:
        leases = q.lease_many(2)
        assert [lease.item for lease in leases] == [0, 1]
        assert q.dequeue() == 2
        with pytest.raises(dque.CorruptedError):
            q.dequeue()
        leases[1].release()
        leases[0].release()
        assert q.size() == 7
        assert drain(q) == [0, 1, 5, 6, 7, 8, 9]


# ---------------------------------------- finding 5: a take that raises has taken nothing


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_no_room_for_the_next_segment_file_loses_no_item(tmp_path, monkeypatch, turbo):
    q = dque.new(NAME, tmp_path, segment_size=2, turbo=turbo)
    q.enqueue_many(range(6))
    real_open = _fs.open_rw

    def no_inodes(path, *mode):
        if not os.path.exists(path):
            raise oserror(errno.ENOSPC)
        return real_open(path, *mode)

    monkeypatch.setattr(_fs, "open_rw", no_inodes)
    got = []
    for _ in range(6):
        try:
            got.append(q.dequeue())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        assert q.size() == 6 - len(got)
    with pytest.raises(OSError):
        q.enqueue(6)  # the tail is full and no new file can be made: nothing added
    assert q.size() == 6 - len(got)
    monkeypatch.setattr(_fs, "open_rw", real_open)  # space again: it carries on
    while len(got) < 6:
        got.append(q.dequeue_block(timeout=5))
    assert got == list(range(6))
    q.enqueue(6)
    q.close()
    with dque.open(NAME, tmp_path) as again:
        assert drain(again) == [6]


def test_a_dequeue_after_the_directory_is_renamed_loses_nothing(tmp_path):
    q = dque.new(NAME, tmp_path, segment_size=2)
    q.enqueue_many(range(4))
    moved = tmp_path / "moved"
    os.rename(tmp_path / NAME, moved)
    got, raised = [], None
    try:
        got.append(q.dequeue())
        got.append(q.dequeue())  # empties the head: the next segment is not where it was
    except (OSError, dque.DQueError) as exc:
        raised = exc
    os.rename(moved, tmp_path / NAME)
    if raised is None:
        assert q.size() == 2
        got.extend(drain(q))
    q.close()
    with dque.open(NAME, tmp_path) as again:
        rest = drain(again)
    everything = got + rest
    if isinstance(raised, dque.SyncError):  # the call's own change may or may not be on disk
        assert everything in ([0, 1, 2, 3], [0, 1, 1, 2, 3])[:1] or everything == [0, 2, 3] or everything == [0, 1, 2, 3]
        assert len(set(everything)) == len(everything)
    else:
        assert everything == [0, 1, 2, 3]


# ---------------------------------------- finding 6: freeing some space lets the queue carry on


def test_room_grows_in_proportion_on_a_nearly_full_disk(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path, segment_size=100_000)
    q.enqueue_many(range(3000))  # the head's room is nearly used up by the items
    head = q._store.head
    free = {"bytes": 8192}
    real_extend = _fs.extend

    def small_disk(fd, size):
        grow = size - os.fstat(fd).st_size
        if grow > free["bytes"]:
            raise oserror(errno.ENOSPC)
        free["bytes"] -= max(grow, 0)
        real_extend(fd, size)

    monkeypatch.setattr(_fs, "extend", small_disk)
    head.trim()  # no reserved room left: the next store must grow the file
    for i in range(600):  # 600 markers of 12 bytes: more than one 4 KiB step, far less than a 64 KiB one
        assert q.dequeue() == i
    assert free["bytes"] >= 0
    q.close()
    with dque.open(NAME, tmp_path) as again:
        assert again.size() == 2400 and again.dequeue() == 600


# ---------------------------------------- finding 7: no descriptor loses no item


def test_no_descriptor_for_the_sync_loses_nothing(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path, segment_size=3)
    q.enqueue_many(range(6))
    monkeypatch.setattr(_fs, "dup", lambda fd: (_ for _ in ()).throw(oserror(errno.EMFILE)))
    assert [q.dequeue() for _ in range(4)] == [0, 1, 2, 3]  # synced in place instead
    q.enqueue(6)
    q.close()
    with dque.open(NAME, tmp_path) as again:
        assert drain(again) == [4, 5, 6]


@pytest.mark.parametrize("call", ["lease_many", "dequeue", "dequeue_many"])
def test_running_out_of_descriptors_loses_nothing(tmp_path, call):
    """A real descriptor limit (RLIMIT_NOFILE): every call either returns its items or raises
    having taken none, and leases out are exactly those the caller received."""
    with dque.new(NAME, tmp_path, segment_size=1) as q:
        q.enqueue_many(range(100))
    script = f"""
import errno, json, os, resource, sys, dque
q = dque.open({NAME!r}, {str(tmp_path)!r})
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
limit = 64 if {call!r} == "lease_many" else highest + 2  # a few descriptors free, or just one
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
got, errors, leases = [], 0, []
for _ in range(100):
    try:
        if {call!r} == "lease_many":
            leases.extend(q.lease_many(100))
        elif {call!r} == "dequeue":
            got.append(q.dequeue())
        else:
            got.extend(q.dequeue_many(100))
    except OSError as exc:
        assert exc.errno == errno.EMFILE, exc
        errors += 1
    assert q.in_flight() == len(leases), (q.in_flight(), len(leases))
    assert q.size() == 100 - len(got) - len(leases), (q.size(), len(got), len(leases))
    if {call!r} == "lease_many" and len(leases) >= 60:
        break
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
q.ack_many([lease.id for lease in leases])
got = [lease.item for lease in leases] + got
while True:
    chunk = q.dequeue_many(100)
    if not chunk:
        break
    got.extend(chunk)
q.close()
print(json.dumps({{"got": got, "errors": errors}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    result = __import__("json").loads(proc.stdout)
    assert result["got"] == list(range(100))
    with dque.open(NAME, tmp_path) as again:
        assert drain(again) == []


# ---------------------------------------- finding 8: ack_many is all or nothing


def test_ack_many_on_a_full_disk_acks_nothing(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path, segment_size=3)
    q.enqueue_many(range(6))
    leases = q.lease_many(6)  # over two segments
    real_reserve = Segment.reserve

    def full_in_the_second(self, n):
        if self.number == 2:
            raise oserror(errno.ENOSPC)
        return real_reserve(self, n)

    monkeypatch.setattr(Segment, "reserve", full_in_the_second)
    with pytest.raises(OSError):
        q.ack_many([lease.id for lease in leases])
    assert (q.in_flight(), q.size()) == (6, 0)
    monkeypatch.setattr(Segment, "reserve", real_reserve)
    q.ack_many([lease.id for lease in leases])  # every lease still outstanding
    assert (q.in_flight(), q.size()) == (0, 0)
    q.close()
    with dque.open(NAME, tmp_path) as again:
        assert drain(again) == []


def test_enqueue_many_over_segments_on_a_full_disk_adds_nothing(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path, segment_size=3)
    q.enqueue(0)
    real_create = Segment.create
    monkeypatch.setattr(
        Segment, "create", classmethod(lambda cls, d, n, *m: (_ for _ in ()).throw(oserror(errno.ENOSPC)) if n == 3 else real_create(d, n, *m))
    )
    with pytest.raises(OSError):
        q.enqueue_many(range(1, 9))  # needs segments 2 and 3
    assert q.size() == 1
    monkeypatch.setattr(Segment, "create", real_create)
    q.enqueue_many(range(1, 9))
    q.close()
    with dque.open(NAME, tmp_path) as again:
        assert drain(again) == list(range(9))


# ---------------------------------------- finding 9: exact counts after damage and a clean close


def test_size_is_exact_after_damage_in_the_tail_and_a_clean_close(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=5, maxsize=12) as q:
        q.enqueue_many(range(12))
    damage_record(seg_path(tmp_path, 3), 0)  # the tail's first record, a record after it
    with dque.open(NAME, tmp_path) as q:
        assert q.size() == 10
        q.enqueue_many([100, 101])  # room for 2: the bound counts 10, not 15
        with pytest.raises(dque.Full):
            q.enqueue(102)
        assert q.size() == 12
        assert drain(q) == [*range(10), 100, 101]


# ---------------------------------------- finding 10: close stops background work first


def test_turbo_close_never_races_the_next_open(tmp_path):
    dque.new(NAME, tmp_path, segment_size=1).close()
    errors: list[BaseException] = []
    done = threading.Event()

    def opener():
        while not done.is_set():
            try:
                dque.open(NAME, tmp_path).close()
            except dque.LockedError:
                pass
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=opener)
    thread.start()
    try:
        for _round in range(15):
            while True:
                try:
                    q = dque.open(NAME, tmp_path, turbo=True)
                    break
                except dque.LockedError:
                    time.sleep(0.001)
            q.enqueue_many(range(40))
            assert [q.dequeue() for _ in range(40)] == list(range(40))
            q.close()
            assert not errors, errors
    finally:
        done.set()
        thread.join(30)
    assert not errors, errors


# ---------------------------------------- the owner of a ProcessSafeDQue poisons for all its clients


def test_a_failed_sync_in_the_owner_reaches_every_client(tmp_path, monkeypatch):
    """The owner (forked, so it inherits this process's _fs) fails a sync: every client call raises
    SyncError from then on; after the owner is closed and the queue reopened, what returned is there."""
    flag = tmp_path / "fail-syncs"
    real = _fs.datasync

    def datasync(fd):
        if flag.exists():
            raise oserror(errno.EIO)
        real(fd)

    monkeypatch.setattr(_fs, "datasync", datasync)
    q = dque.ProcessSafeDQue(NAME, tmp_path, context="fork")
    try:
        q.enqueue_many(range(3))
        other = dque.attach(NAME, tmp_path)
        assert other.dequeue() == 0
        flag.touch()
        with pytest.raises(dque.SyncError):
            q.enqueue(3)
        flag.unlink()  # a later sync would work: it must not be tried through this handle
        for call in (q.size, lambda: q.enqueue(4), other.dequeue, other.size, lambda: other.lease(block=False)):
            with pytest.raises(dque.SyncError):
                call()
        other.close()
    finally:
        q.close()
    with dque.open(NAME, tmp_path) as again:
        assert drain(again) in ([1, 2], [1, 2, 3])
