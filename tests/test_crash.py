"""Crashes for real: SIGKILL of a process using the queue, torn last records, damage in the middle.

The SIGKILL tests run tests/crash_worker.py in a subprocess that logs every
call before it starts and after it returns (the ledger survives the kill:
one ``os.write`` per line). The test kills it at a random moment once it has
done some work, always reaps it, reopens the queue and checks, item by item,
that no acknowledged enqueue was lost, no acknowledged dequeue came back,
nothing is duplicated and the order holds, in safe and in turbo mode (a
killed process loses nothing in either: its bytes are in the OS).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_worker import ident, item

import dque
from dque import _format

NAME = "q"
WORKER = str(Path(__file__).with_name("crash_worker.py"))
SEGMENT_SIZE = 5
PATIENCE = 60.0  # seconds before a worker that makes no progress is a failure (never reached when all is well)


# --------------------------------------------------------------------------- subprocess plumbing


@contextlib.contextmanager
def worker(tmp_path: Path, mode: str, *, turbo: bool = False, seed: int = 0):
    """Run crash_worker.py in MODE on tmp_path/q; always killed (if still running) and reaped on exit."""
    logdir = tmp_path / "logs"
    logdir.mkdir(exist_ok=True)
    out_path = tmp_path / "worker.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, WORKER, mode, str(tmp_path), NAME, "1" if turbo else "0", str(seed), str(logdir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, logdir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def output(tmp_path: Path) -> str:
    return (tmp_path / "worker.out").read_text(errors="replace")


def wait_until(ready, proc: subprocess.Popen, tmp_path: Path, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) before {what}:\n{output(tmp_path)}")
        if time.monotonic() > deadline:
            pytest.fail(f"worker made no progress in {PATIENCE} s ({what}):\n{output(tmp_path)}")
        time.sleep(0.001)


def kill(proc: subprocess.Popen, tmp_path: Path) -> None:
    assert proc.poll() is None, f"worker exited ({proc.returncode}) before the kill:\n{output(tmp_path)}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, output(tmp_path)
    assert output(tmp_path) == "", f"the worker reported errors:\n{output(tmp_path)}"


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------- the ledger


class Log:
    """What a worker's ledger file says: acknowledged and interrupted calls."""

    def __init__(self, path: Path, *, preloaded: int = 0) -> None:
        self.acked_enq = preloaded  # ids 0..acked_enq-1 were enqueued and acknowledged
        self.pending_enq: list[int] = []  # the enqueue call in progress at the kill
        self.acked_deq: list[int] = []  # ids returned by dequeue calls, in order
        self.pending_deq = 0  # max items of the dequeue call in progress at the kill
        if not path.exists():
            return
        text = path.read_text()
        for line in text.split("\n")[:-1]:  # a line without its newline was never complete
            w = line.split()
            if w[:2] == ["b", "e"]:
                first, n = int(w[2]), int(w[3])
                assert first == self.acked_enq and not self.pending_enq, f"bad ledger line {line!r}"
                self.pending_enq = list(range(first, first + n))
            elif w[0] == "e":
                first, n = int(w[1]), int(w[2])
                assert self.pending_enq == list(range(first, first + n)), f"bad ledger line {line!r}"
                self.acked_enq, self.pending_enq = first + n, []
            elif w[:2] == ["b", "d"]:
                self.pending_deq = int(w[2])
            elif w[0] == "d":
                self.acked_deq.extend(int(x) for x in w[1:])
                self.pending_deq = 0
            else:
                raise AssertionError(f"bad ledger line {line!r}")


def check_after_kill(enq: Log, deq: Log, got: list[int]) -> None:
    """``got`` (the queue drained after the kill) against the producer's and consumer's ledgers.

    Everything acknowledged survives a SIGKILL, in both modes. The interrupted
    enqueue may have added a prefix of its batch; the interrupted dequeue may
    have removed up to its max items from the head.
    """
    taken = deq.acked_deq
    a = len(taken)
    assert taken == list(range(a)), f"dequeues returned {taken[:50]}...: out of order, duplicated or skipped"
    top = enq.acked_enq + len(enq.pending_enq)
    assert a <= top, f"dequeued {a} items, only {top} were enqueued"
    allowed = [
        list(range(a + m, enq.acked_enq + i))
        for m in range(deq.pending_deq + 1)
        for i in range(len(enq.pending_enq) + 1)
    ]
    assert got in allowed, (
        f"after the kill the queue holds {summary(got)}; {a} items were dequeued (acknowledged), "
        f"{enq.acked_enq} enqueued (acknowledged), interrupted: enqueue of {enq.pending_enq}, "
        f"dequeue of up to {deq.pending_deq}\n"
        f"lost: {sorted(set(range(a + deq.pending_deq, enq.acked_enq)) - set(got))[:20]}, "
        f"came back: {sorted(set(got) & set(taken))[:20]}"
    )


def summary(ids: list[int]) -> str:
    return f"{ids[:8]}...{ids[-8:]} ({len(ids)} items)" if len(ids) > 16 else str(ids)


def drain(q: dque.DQue) -> list[int]:
    got = []
    while True:
        try:
            got.append(ident(q.dequeue()))
        except dque.Empty:
            return got


def reopen_and_check(tmp_path: Path, enq: Log, deq: Log) -> list[int]:
    """Open right after the kill (the lock must be free), drain, check, and check the queue still works."""
    with dque.open(NAME, tmp_path) as q:
        size = q.size()
        got = drain(q)
        check_after_kill(enq, deq, got)
        assert size == len(got), f"size() said {size} at open, {len(got)} items came out"
        q.enqueue(item(10**6))
    with dque.open(NAME, tmp_path) as q:
        assert drain(q) == [10**6]
    return got


# --------------------------------------------------------------------------- SIGKILL during work

MODES = ("enq", "deq", "mixed", "threads")


@pytest.mark.parametrize("rep", range(3))
@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
@pytest.mark.parametrize("mode", MODES)
def test_sigkill_loses_nothing_acknowledged(tmp_path, mode, turbo, rep):
    rng = random.Random(f"{mode}-{turbo}-{rep}")
    preloaded = 0
    # Small segments put many kills across segment boundaries (roll, unlink of the consumed
    # head); a larger one keeps many kills inside a head segment with delete markers.
    segment_size = (3, SEGMENT_SIZE, 40)[rep]
    with dque.new(NAME, tmp_path, segment_size=segment_size) as q:
        if mode == "deq":
            preloaded = 800
            q.turbo_on()
            for start in range(0, preloaded, 100):
                q.enqueue_many([item(i) for i in range(start, start + 100)])
    logs = {"enq": "enq.log", "deq": "deq.log", "mixed": "mixed.log", "threads": "deq.log"}
    want = rng.randint(10, 400)  # ledger lines before the kill: a random point
    with worker(tmp_path, mode, turbo=turbo, seed=rep) as (proc, logdir):
        wait_until(lambda: lines(logdir / logs[mode]) >= want, proc, tmp_path, f"{want} ledger lines")
        time.sleep(rng.random() * 0.005)
        kill(proc, tmp_path)
    if mode == "mixed":
        enq = deq = Log(logdir / "mixed.log")
    else:
        enq = Log(logdir / "enq.log", preloaded=preloaded)
        deq = Log(logdir / "deq.log")
    assert enq.acked_enq + len(deq.acked_deq) > 0
    reopen_and_check(tmp_path, enq, deq)


# --------------------------------------------------------------------------- the lock


def test_sigkill_releases_the_lock(tmp_path):
    dque.new(NAME, tmp_path, segment_size=SEGMENT_SIZE).close()
    with worker(tmp_path, "hold") as (proc, logdir):
        wait_until((logdir / "ready").exists, proc, tmp_path, "opening the queue")
        with pytest.raises(dque.LockedError):
            dque.open(NAME, tmp_path)
        kill(proc, tmp_path)
    with dque.open(NAME, tmp_path) as q:  # right after reaping, no retry
        q.enqueue(item(1))
        assert ident(q.dequeue()) == 1


def _subreaper(on: bool) -> bool:
    """Make this process adopt orphaned descendants (Linux), so that a worker's child can be reaped here."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(36, int(on), 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER


def test_sigkill_releases_the_lock_while_a_forked_child_lives(tmp_path):
    """The owner forked a child (which inherited its fds) and was killed: the lock dies with the owner."""
    if not _subreaper(True):
        pytest.skip("needs PR_SET_CHILD_SUBREAPER to reap the orphaned child")
    child = None
    try:
        dque.new(NAME, tmp_path, segment_size=SEGMENT_SIZE).close()
        with worker(tmp_path, "forkhold") as (proc, logdir):
            wait_until((logdir / "ready").exists, proc, tmp_path, "opening the queue and forking")  # (by the child)
            child = int((logdir / "ready").read_text())
            kill(proc, tmp_path)
        os.kill(child, 0)  # still alive, holding copies of the owner's fds
        with dque.open(NAME, tmp_path) as q:
            q.enqueue(item(2))
            assert ident(q.dequeue()) == 2
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        _subreaper(False)


# --------------------------------------------------------------------------- torn last record


def records(data: bytes) -> list[tuple[int, int]]:
    """``(offset, length)`` of each record of a segment file's bytes."""
    out, pos = [], 0
    while pos < len(data):
        length = _format.HEADER_SIZE + int.from_bytes(data[pos + 4 : pos + 8], "little")
        out.append((pos, length))
        pos += length
    assert pos == len(data)
    return out


def segment_files(qdir: Path) -> list[Path]:
    return sorted(qdir.glob("*.seg"))


# What a crash leaves after the last record: nothing, or zeros (room reserved for records).
RESERVED = [0, 4096]


@pytest.mark.parametrize("reserved", RESERVED, ids=["end", "zeros"])
@pytest.mark.parametrize("n_items", [9, 11])
def test_torn_last_record_at_every_byte(tmp_path, n_items, reserved):
    """The last record cut at every length from nothing to all but one byte: dropped, the rest intact."""
    src = tmp_path / "src"
    with dque.new(NAME, src, segment_size=4) as q:
        for i in range(n_items):
            q.enqueue(item(i))
    last = segment_files(src / NAME)[-1]
    data = last.read_bytes()
    start = records(data)[-1][0]
    for cut in range(start, len(data)):
        copy = tmp_path / f"cut{cut}"
        shutil.copytree(src, copy)
        (copy / NAME / last.name).write_bytes(data[:cut] + bytes(reserved))
        with dque.open(NAME, copy) as q:
            assert q.size() == n_items - 1, f"cut at {cut}"
            q.enqueue(item(100))
            q.enqueue_many([item(101), item(102)])
        with dque.open(NAME, copy) as q:
            assert drain(q) == [*range(n_items - 1), 100, 101, 102], f"cut at {cut}"
        shutil.rmtree(copy)


@pytest.mark.parametrize("reserved", RESERVED, ids=["end", "zeros"])
def test_torn_last_delete_marker_at_every_byte(tmp_path, reserved):
    """A torn delete marker: the dequeue did not happen, the item is back, nothing else changes."""
    src = tmp_path / "src"
    with dque.new(NAME, src, segment_size=100) as q:
        for i in range(6):
            q.enqueue(item(i))
        assert [ident(q.dequeue()), ident(q.dequeue())] == [0, 1]
    (last,) = segment_files(src / NAME)
    data = last.read_bytes()
    start, length = records(data)[-1]
    assert length == _format.HEADER_SIZE and data[start:] == _format.DELETE_MARKER
    for cut in range(start, len(data)):
        copy = tmp_path / f"cut{cut}"
        shutil.copytree(src, copy)
        (copy / NAME / last.name).write_bytes(data[:cut] + bytes(reserved))
        with dque.open(NAME, copy) as q:
            assert q.size() == 5, f"cut at {cut}"
            assert ident(q.dequeue()) == 1
            q.enqueue(item(100))
        with dque.open(NAME, copy) as q:
            assert drain(q) == [2, 3, 4, 5, 100], f"cut at {cut}"
        shutil.rmtree(copy)


@pytest.mark.parametrize("rtype", ["delete", "lease", "ack"])
def test_torn_marker_in_an_older_segment_at_every_byte(tmp_path, rtype):
    """A torn delete, lease or ack record at the end of the head segment, with later segments
    after it and zeros after it: crash debris, not damage."""
    src = tmp_path / "src"
    with dque.new(NAME, src, segment_size=4) as q:
        q.enqueue_many([item(i) for i in range(10)])
        assert ident(q.dequeue()) == 0
        if rtype == "delete":
            assert ident(q.dequeue()) == 1
        else:
            lease = q.lease(block=False)
            assert ident(lease.item) == 1
            if rtype == "ack":
                lease.ack()
    first = segment_files(src / NAME)[0]
    data = first.read_bytes()
    start, length = records(data)[-1]
    for cut in range(start, start + length):
        copy = tmp_path / f"cut{cut}"
        shutil.copytree(src, copy)
        (copy / NAME / first.name).write_bytes(data[:cut] + bytes(4096))
        # The bytes of the record not written are zeros: if those were zeros anyway (the high bytes
        # of a lease's or ack's item index), the record is whole and happened.
        happened = not any(data[cut : start + length])
        with dque.open(NAME, copy) as q:
            if happened and rtype != "lease":
                assert q.size() == 8, f"cut at {cut}"
                assert drain(q) == list(range(2, 10)), f"cut at {cut}"
                continue
            # A torn record did not happen: a dequeue or ack undone, a lease not counted.
            assert q.size() == 9, f"cut at {cut}"
            lease = q.lease(block=False)
            # (after an ack, torn or not, the lease before it counts)
            deliveries = 1 + (rtype == "ack" or happened)
            assert (ident(lease.item), lease.deliveries) == (1, deliveries), f"cut at {cut}"
            lease.ack()
            assert drain(q) == list(range(2, 10)), f"cut at {cut}"
        shutil.rmtree(copy)


# --------------------------------------------------------------------------- damage in the middle


@pytest.mark.parametrize(
    ("seg", "rec", "how"),
    [
        (0, 0, "header"),  # the very first record of the head segment
        (0, 2, "payload"),
        (1, 0, "header"),  # a middle segment
        (1, 2, "payload"),
        (1, 2, "header"),
        (1, 4, "payload"),  # the last record of a middle segment: not a torn write either
        (2, 1, "payload"),  # the tail segment, records after the damage
    ],
)
def test_garbage_in_a_segment(tmp_path, seg, rec, how):
    with dque.new(NAME, tmp_path, segment_size=5) as q:
        q.enqueue_many([item(i) for i in range(15)])
    files = segment_files(tmp_path / NAME)
    assert len(files) == 3
    path = files[seg]
    data = bytearray(path.read_bytes())
    offset, length = records(bytes(data))[rec]
    if how == "header":
        data[offset + 5] ^= 0x5A  # the length field: the header check fails
    else:
        data[offset + _format.HEADER_SIZE + (length - _format.HEADER_SIZE) // 2] ^= 0x5A
    path.write_bytes(bytes(data))

    before = seg * 5 + rec  # the items ahead of the damage
    after = list(range((seg + 1) * 5, 15))  # the items of the later segments
    with dque.open(NAME, tmp_path) as q:  # opening works
        q.enqueue_many([item(100), item(101)])
        got = [ident(q.dequeue()) for _ in range(before)]
        assert got == list(range(before))
        with pytest.raises(dque.CorruptedError) as info:
            q.dequeue()
        err = info.value
        assert (err.path, err.offset) == (str(path), offset), str(err)
        assert str(path) in str(err) and str(offset) in str(err)
        assert drain(q) == [*after, 100, 101]  # the later segments stay readable
    assert path.with_name(path.name + ".corrupt").exists()
    with dque.open(NAME, tmp_path) as q:  # the damage was moved aside: the queue is clean again
        assert q.size() == 0
        q.enqueue(item(102))
        assert ident(q.dequeue()) == 102


# --------------------------------------------------------------------------- a kill inside a store

LARGE_WRITER = """
import sys, time, dque
q = dque.new("q", sys.argv[1], segment_size=1000, turbo=True)
size = int(sys.argv[2])
for i in range((4 << 20) // size):  # 4 MB at most: the kill comes while it writes
    q.enqueue(b"%012d" % i * (size // 12))  # no zero bytes: a torn copy does not look like reserved room
    if i == 0:  # ready once one item is in (on a loaded machine the kill could come before any)
        sys.stdout.write("R")
        sys.stdout.flush()
time.sleep(60)
"""


@pytest.mark.parametrize("size", [3000, 64 << 10], ids=["3KB", "64KB"])
def test_sigkill_inside_a_large_store_leaves_a_readable_queue(tmp_path, size):
    """A store is a memcpy that a SIGKILL can stop anywhere, and not in order (glibc writes the
    first bytes of a large copy last): the queue opens, never CorruptedError, and every item
    comes back whole and in order."""
    rng = random.Random(size)
    for round_ in range(10):
        qdir = tmp_path / f"r{round_}"
        proc = subprocess.Popen([sys.executable, "-c", LARGE_WRITER, str(qdir), str(size)], stdout=subprocess.PIPE)
        try:
            assert proc.stdout.read(1) == b"R"
            time.sleep(rng.uniform(0.001, 0.012))
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        got: list[bytes] = []
        with dque.open("q", qdir) as q:
            while chunk := q.dequeue_many(10_000):  # to the end: damage would raise CorruptedError
                got.extend(chunk)
        assert got, "the writer wrote nothing before the kill"
        for i, got_item in enumerate(got):
            assert got_item == b"%012d" % i * (size // 12), f"round {round_}: item {i} is not whole"


@pytest.mark.parametrize("reopen", [False, True], ids=["same-open", "after-reopen"])
def test_takes_before_damage_are_not_undone_by_a_restart(tmp_path, reopen):
    """Delete markers for the items before damage must be readable after a restart: the damaged
    end of the head is moved aside before anything is appended, and still reported."""
    with dque.new(NAME, tmp_path, segment_size=5) as q:
        q.enqueue_many([item(i) for i in range(15)])
    path = segment_files(tmp_path / NAME)[0]
    data = bytearray(path.read_bytes())
    offset, length = records(bytes(data))[3]
    data[offset + _format.HEADER_SIZE + (length - _format.HEADER_SIZE) // 2] ^= 0x5A
    path.write_bytes(bytes(data))

    with dque.open(NAME, tmp_path) as q:
        assert [ident(q.dequeue()) for _ in range(3)] == [0, 1, 2]
        if not reopen:
            with pytest.raises(dque.CorruptedError):
                q.dequeue()
    with dque.open(NAME, tmp_path) as q:  # 0, 1 and 2 stay taken
        if reopen:
            with pytest.raises(dque.CorruptedError) as info:
                q.dequeue()
            assert str(path) in str(info.value)
        assert drain(q) == list(range(5, 15))
    assert path.with_name(path.name + ".corrupt").read_bytes() == bytes(data[offset:])
