"""DQue under threads: exactly-once delivery, blocking calls, group commit, file descriptors, the lock.

No test here relies on timing to pass, beyond generous bounds: where a test
wants callers to be blocked before it acts, it waits until their threads are
seen inside a ``threading`` wait (and goes on anyway after a few seconds, which
only makes the test weaker, never flaky).
"""

from __future__ import annotations

import collections
import gc
import os
import random
import sys
import threading
import time
from collections.abc import Callable

import pytest

import dque
from dque import _fs

JOIN_TIMEOUT = 60.0  # a thread still running after this is a hang, i.e. a bug


# --------------------------------------------------------------------- helpers


class Worker(threading.Thread):
    """A thread that keeps its target's result or exception."""

    def __init__(self, target: Callable, *args) -> None:
        super().__init__(daemon=True)
        self._fn, self._args = target, args
        self.result = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._fn(*self._args)
        except BaseException as exc:  # noqa: B036 - reported by finish()
            self.error = exc


def start(target: Callable, *args) -> Worker:
    w = Worker(target, *args)
    w.start()
    return w


def finish(workers: list[Worker], timeout: float = JOIN_TIMEOUT) -> list:
    """Join every worker; fail on a hang, re-raise the first exception; return the results."""
    deadline = time.monotonic() + timeout
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    hung = [w.name for w in workers if w.is_alive()]
    assert not hung, f"threads still running after {timeout} s: {hung}"
    for w in workers:
        if w.error is not None:
            raise w.error
    return [w.result for w in workers]


_THREADING_FILE = threading.__file__


def is_waiting(thread: threading.Thread) -> bool:
    """True if ``thread`` is inside a wait of the ``threading`` module (Condition, Event, ...)."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_filename == _THREADING_FILE and frame.f_code.co_name == "wait":
            return True
        frame = frame.f_back
    return False


def wait_until_blocked(threads: list[threading.Thread], patience: float = 5.0) -> None:
    """Give ``threads`` time to block; go on regardless after ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if all(t.is_alive() and is_waiting(t) for t in threads):
            return
        time.sleep(0.005)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def new_queue(tmp_path):
    """``new_queue(**kwargs)`` makes a queue under this test's tmp_path; all are closed at the end."""
    made: list[dque.DQue] = []
    names = iter(range(1_000_000))

    def make(**kwargs) -> dque.DQue:
        q = dque.new(f"q{next(names)}", tmp_path, **kwargs)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()


# ------------------------------------------- (a) many producers, many consumers


def test_many_producers_many_consumers_exactly_once_in_order(new_queue, tmp_path):
    """4 producers x 5,000 unique items, 4 consumers, segments of 50, turbo; a fifth thread
    calls every read-only method meanwhile. Every item is taken exactly once and each
    consumer sees each producer's items in the order they were put."""
    producers, consumers, per_producer = 4, 4, 5_000
    total = producers * per_producer
    q = new_queue(segment_size=50, turbo=True)
    taken = [0]
    taken_lock = threading.Lock()
    stop_monitor = threading.Event()

    def produce(p: int) -> None:
        items = [(p, i) for i in range(per_producer)]
        rnd = random.Random(p)
        if p == 0:
            for item in items:
                q.enqueue(item)
        elif p == 1:
            for item in items:
                q.put(item)
        elif p == 2:
            for item in items:
                q.put_nowait(item)
        else:
            i = 0
            while i < len(items):
                n = rnd.randint(1, 120)  # batches that cross segment boundaries
                q.enqueue_many(items[i : i + n])
                i += n

    def consume(c: int) -> list:
        got: list = []
        while True:
            with taken_lock:
                if taken[0] >= total:
                    return got
            if c == 0:
                try:
                    batch = [q.dequeue_block(timeout=0.05)]
                except dque.Empty:
                    continue
            elif c == 1:
                try:
                    batch = [q.get(timeout=0.05)]
                except dque.Empty:
                    continue
            elif c == 2:
                batch = q.dequeue_many(37)
                if not batch:
                    time.sleep(0.0005)
                    continue
            else:
                try:
                    batch = [q.get_nowait() if len(got) % 2 else q.dequeue()]
                except dque.Empty:
                    time.sleep(0.0005)
                    continue
            got.extend(batch)
            with taken_lock:
                taken[0] += len(batch)

    def monitor() -> int:
        calls = 0
        while not stop_monitor.is_set():
            n = q.size()
            assert 0 <= n <= total
            assert 0 <= len(q) <= total
            assert 0 <= q.qsize() <= total
            q.empty()
            assert q.full() is False
            first, last = q.segment_numbers()
            assert first <= last
            try:
                item = q.peek()
            except dque.Empty:
                pass
            else:
                assert isinstance(item, tuple) and len(item) == 2
            if calls % 50 == 0:
                q.turbo_sync()
            calls += 1
        return calls

    mon = start(monitor)
    workers = [start(produce, p) for p in range(producers)] + [start(consume, c) for c in range(consumers)]
    try:
        results = finish(workers)
    finally:
        stop_monitor.set()
    assert finish([mon])[0] > 0

    consumed = results[producers:]
    everything = [item for got in consumed for item in got]
    assert len(everything) == total
    assert collections.Counter(everything) == collections.Counter(
        (p, i) for p in range(producers) for i in range(per_producer)
    )
    for got in consumed:
        for p in range(producers):
            mine = [i for (pp, i) in got if pp == p]
            assert mine == sorted(mine), f"a consumer saw producer {p}'s items out of order"
    assert q.size() == 0

    q.close()
    with dque.open(q.name, tmp_path) as again:
        assert again.size() == 0
        with pytest.raises(dque.Empty):
            again.dequeue()


# ----------------------------------------------------- (b) blocking calls


@pytest.mark.parametrize("how", ["enqueue", "put", "enqueue_many"])
def test_no_lost_wakeups_takers(new_queue, how):
    """N callers blocked in dequeue_block/get; N items arrive from another thread; each caller gets one."""
    n = 8
    q = new_queue(segment_size=3)
    takers = [start(q.dequeue_block if i % 2 else q.get) for i in range(n)]
    wait_until_blocked(takers)

    def produce() -> None:
        if how == "enqueue_many":
            q.enqueue_many(list(range(n)))  # one call must wake all n
        else:
            for i in range(n):
                getattr(q, how)(i)

    finish([start(produce)])
    try:
        got = finish(takers, timeout=20)
    finally:
        q.close()  # frees any taker a lost wake-up left stuck
    assert sorted(got) == list(range(n))


@pytest.mark.parametrize("how", ["enqueue", "put", "enqueue_many"])
def test_no_lost_wakeups_peekers(new_queue, how):
    """N callers blocked in peek_block; one item arrives; every one of them sees it, and it stays."""
    n = 8
    q = new_queue(segment_size=2)
    peekers = [start(q.peek_block) for _ in range(n)]
    wait_until_blocked(peekers)
    if how == "enqueue_many":
        finish([start(q.enqueue_many, ["only"])])
    else:
        finish([start(getattr(q, how), "only")])
    try:
        got = finish(peekers, timeout=20)
    finally:
        size = q.size()
        q.close()
    assert got == ["only"] * n
    assert size == 1


@pytest.mark.parametrize("how", ["dequeue", "get", "dequeue_many"])
def test_no_lost_wakeups_putters(new_queue, how):
    """N callers blocked in put() on a full queue; N items are taken from another thread; all N puts complete."""
    n = 6
    q = new_queue(segment_size=2, maxsize=n)
    q.enqueue_many([f"old{i}" for i in range(n)])
    putters = [start(q.put, f"new{i}", True, None if i % 2 else 60) for i in range(n)]
    wait_until_blocked(putters)

    def take() -> list:
        if how == "dequeue_many":
            return q.dequeue_many(n)  # one call must wake all n
        return [getattr(q, how)() for _ in range(n)]

    taken = finish([start(take)])[0]
    try:
        finish(putters, timeout=20)
    finally:
        rest = q.dequeue_many(n + 1)
        q.close()
    assert taken == [f"old{i}" for i in range(n)]
    assert sorted(rest) == sorted(f"new{i}" for i in range(n))


@pytest.mark.parametrize("call", ["dequeue_block", "peek_block", "get", "put"])
def test_timeout_honoured(new_queue, call):
    q = new_queue(maxsize=1)
    if call == "put":
        q.put("fill")
        expected, fn = dque.Full, lambda: q.put("more", timeout=0.2)
    elif call == "get":
        expected, fn = dque.Empty, lambda: q.get(timeout=0.2)
    else:
        expected, fn = dque.Empty, lambda: getattr(q, call)(timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(expected):
        fn()
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 5.0
    assert q.size() == (1 if call == "put" else 0)


def test_zero_timeout_and_nonblocking_raise_at_once(new_queue):
    q = new_queue(maxsize=1)
    for fn in (lambda: q.dequeue_block(timeout=0), lambda: q.peek_block(timeout=0), lambda: q.get(block=False)):
        t0 = time.monotonic()
        with pytest.raises(dque.Empty):
            fn()
        assert time.monotonic() - t0 < 5.0
    q.put(1)
    with pytest.raises(dque.Full):
        q.put(2, block=False)
    with pytest.raises(dque.Full):
        q.put(2, timeout=0)


def test_negative_timeout_is_a_value_error(new_queue):
    q = new_queue()
    for fn in (q.dequeue_block, q.peek_block, lambda timeout: q.get(timeout=timeout)):
        with pytest.raises(ValueError):
            fn(timeout=-1)


def blocks_until(block: Callable, trigger: Callable):
    """Run ``block()`` here while another thread runs ``trigger()`` 0.1 s later; check ``block``
    returned only after the trigger started (CPython's BlockingTestMixin check)."""
    started = threading.Event()

    def later() -> None:
        time.sleep(0.1)
        started.set()
        trigger()

    t = start(later)
    try:
        result = block()
        assert started.is_set(), f"{block} returned without blocking"
    finally:
        finish([t])
    return result


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_blocking_calls_woken_by_another_thread(new_queue, turbo):
    q = new_queue(segment_size=2, maxsize=2, turbo=turbo)
    assert blocks_until(lambda: q.dequeue_block(timeout=30), lambda: q.enqueue("a")) == "a"
    assert blocks_until(lambda: q.get(), lambda: q.put("b")) == "b"
    assert blocks_until(lambda: q.peek_block(), lambda: q.enqueue_many(["c", "d"])) == "c"
    assert q.full()
    blocks_until(lambda: q.put("e", timeout=30), lambda: q.dequeue())  # takes "c"
    assert blocks_until(lambda: q.put("f"), lambda: q.dequeue_many(1)) is None  # takes "d"
    assert q.dequeue_many(5) == ["e", "f"]
    q.task_done()
    q.task_done()
    q.task_done()
    q.task_done()
    q.task_done()

    def finish_last() -> None:
        q.task_done()

    blocks_until(q.join, finish_last)


def test_close_wakes_every_blocked_caller(new_queue):
    empty = new_queue(segment_size=2)
    full = new_queue(segment_size=2, maxsize=1)
    full.put("x")  # one unfinished task, so join() blocks too
    waiters = [
        start(empty.dequeue_block),
        start(empty.dequeue_block, 60),
        start(empty.peek_block),
        start(empty.peek_block, 60),
        start(empty.get),
        start(empty.get, True, 60),
        start(full.put, "y"),
        start(full.put, "y", True, 60),
        start(full.join),
    ]
    wait_until_blocked(waiters)
    assert all(w.is_alive() for w in waiters), "a caller returned before close()"
    closers = [start(empty.close), start(full.close)]
    finish(closers)
    for w in waiters:
        w.join(20)
    assert not any(w.is_alive() for w in waiters), "close() left callers blocked"
    errors = [type(w.error) for w in waiters]
    assert errors == [dque.ClosedError] * len(waiters)


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_close_during_traffic(tmp_path, turbo):
    """close() while 3 producers and 3 consumers are busy: every call either completes or raises
    ClosedError, nothing else; after reopen the queue holds exactly the items whose enqueue
    returned and whose dequeue did not, in order."""
    q = dque.new("q", tmp_path, segment_size=5, turbo=turbo)
    stop = threading.Event()
    acked: list[list] = [[] for _ in range(3)]  # per producer: items whose enqueue returned
    got: list[list] = [[] for _ in range(3)]  # per consumer: items taken

    def produce(p: int) -> None:
        i = 0
        while True:
            batch = [(p, i + k) for k in range(1 + i % 3)] if p == 0 else [(p, i)]
            try:
                if p == 0:
                    q.enqueue_many(batch)
                else:
                    (q.enqueue if p == 1 else q.put)(batch[0])
            except dque.ClosedError:
                return
            acked[p].extend(batch)
            i += len(batch)

    def consume(c: int) -> None:
        while True:
            try:
                if c == 0:
                    got[c].extend(q.dequeue_many(4))
                elif c == 1:
                    got[c].append(q.dequeue_block(timeout=5))
                else:
                    got[c].append(q.get())
            except dque.ClosedError:
                return
            except dque.Empty:
                if stop.is_set():
                    return

    workers = [start(produce, p) for p in range(3)] + [start(consume, c) for c in range(3)]
    deadline = time.monotonic() + 10
    while sum(map(len, acked)) < 500 and time.monotonic() < deadline:  # let some traffic happen first
        time.sleep(0.005)
    q.close()
    stop.set()
    finish(workers, timeout=30)
    enqueued = [item for a in acked for item in a]
    dequeued = [item for g in got for item in g]
    assert len(set(dequeued)) == len(dequeued), "an item was taken twice"
    assert set(dequeued) <= set(enqueued), "an item was taken that was never put"
    with dque.open("q", tmp_path) as again:
        left = again.dequeue_many(len(enqueued) + 1)
    assert sorted(left) == sorted(set(enqueued) - set(dequeued))
    for p in range(3):
        mine = [i for (pp, i) in left if pp == p]
        assert mine == sorted(mine)


def test_close_and_turbo_off_do_not_wait_out_the_turbo_sync_period(new_queue):
    """Stopping turbo mode's background syncer is prompt, whatever ``max_delay`` is
    (here 12 s: a syncer left to finish its period would hold each call up for 6 s)."""
    q = new_queue(segment_size=2)
    q.turbo_on(max_delay=12)
    q.enqueue_many([1, 2, 3])
    t0 = time.monotonic()
    q.turbo_off()
    assert time.monotonic() - t0 < 5.0, "turbo_off() waited for the syncer's period"
    q.turbo_on(max_delay=12)
    q.enqueue(4)
    t0 = time.monotonic()
    q.close()
    assert time.monotonic() - t0 < 5.0, "close() waited for the syncer's period"


def test_calls_after_close_raise_closed_error(new_queue):
    q = new_queue()
    q.enqueue(1)
    q.close()
    q.close()  # idempotent
    for fn in (
        lambda: q.enqueue(2),
        q.dequeue,
        q.peek,
        lambda: q.dequeue_block(timeout=1),
        lambda: q.peek_block(timeout=1),
        lambda: q.get(timeout=1),
        lambda: q.put(2),
        lambda: q.enqueue_many([2]),
        lambda: q.dequeue_many(1),
        q.size,
        q.segment_numbers,
    ):
        with pytest.raises(dque.ClosedError):
            fn()


# ------------------------------- (c) producer/consumer across segment boundaries


def _payload(i: int) -> bytes:
    """Items of many sizes, so a reader that decodes at the wrong offset cannot go unnoticed."""
    return i.to_bytes(4, "big") * (1 + i % 23) + bytes([i % 251]) * (i % 7)


@pytest.mark.parametrize("batches", [False, True], ids=["enqueue", "enqueue_many"])
@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_producer_consumer_across_segment_boundaries(new_queue, tmp_path, turbo, batches):
    """One producer, one consumer blocked on an almost-empty queue with 3-item segments: the
    consumer keeps reading the segment the producer is writing (dque's Go ancestor once failed
    to decode the n-th item there)."""
    n = 600
    q = new_queue(segment_size=3, turbo=turbo)

    def produce() -> None:
        rnd = random.Random(7)
        i = 0
        while i < n:
            if batches:
                k = min(rnd.randint(1, 5), n - i)
                q.enqueue_many([_payload(j) for j in range(i, i + k)])
            else:
                k = 1
                q.enqueue(_payload(i))
            i += k
            if rnd.random() < 0.3:
                time.sleep(0)  # let the consumer catch up and wait at the tail

    def consume() -> list:
        got = []
        for _ in range(n):
            head = q.peek_block(timeout=30)
            item = q.dequeue_block(timeout=30)
            assert item == head  # a single consumer: the peeked item is the next one
            got.append(item)
        return got

    consumer = start(consume)
    producer = start(produce)
    got = finish([producer, consumer])[1]
    assert got == [_payload(i) for i in range(n)]
    assert q.size() == 0
    q.close()
    with dque.open(q.name, tmp_path) as again:
        assert again.size() == 0
        first, last = again.segment_numbers()
        assert last - first <= 1


# ----------------------------------------------- (d) safe mode group commit


def test_safe_mode_group_commit(new_queue, tmp_path, monkeypatch):
    """4 threads x 200 safe-mode enqueues: each returns only once a datasync covered its bytes,
    fewer datasyncs than enqueues happen (threads share them), and all 800 are there after reopen."""
    threads, per_thread = 4, 200
    q = new_queue(segment_size=10_000)
    synced: dict[int, int] = collections.defaultdict(int)  # inode -> bytes known to be on stable storage
    stored: dict[int, int] = collections.defaultdict(int)  # inode -> end of the furthest store made
    last_write = threading.local()  # (inode, end offset) of this thread's last store
    books = threading.Lock()
    real_map, real_datasync = _fs.map, _fs.datasync
    datasyncs = [0]

    class RecordingMap:
        """The engine's writes are stores into a map of the file: note where each one ends."""

        def __init__(self, fd: int, size: int) -> None:
            self.real = real_map(fd, size)
            self.ino = os.fstat(fd).st_ino

        def __setitem__(self, where: slice | int, data: bytes | int) -> None:
            self.real[where] = data
            stop = where + 1 if isinstance(where, int) else where.stop
            with books:
                stored[self.ino] = max(stored[self.ino], stop)
            last_write.where = (self.ino, max(stop, getattr(last_write, "where", (0, 0))[1]))

        def close(self) -> None:
            self.real.close()

    def datasync(fd: int) -> None:
        ino = os.fstat(fd).st_ino
        with books:
            upto = stored[ino]  # every store that ended before the sync starts is covered by it
        time.sleep(0.002)  # a slow disk: lets writers pile up behind one sync
        real_datasync(fd)
        with books:
            datasyncs[0] += 1
            synced[ino] = max(synced[ino], upto)

    monkeypatch.setattr(_fs, "map", RecordingMap)
    monkeypatch.setattr(_fs, "datasync", datasync)

    def produce(t: int) -> None:
        for i in range(per_thread):
            q.enqueue((t, i))
            ino, end = last_write.where
            with books:
                assert synced[ino] >= end, f"enqueue returned before its bytes were synced ({synced[ino]} < {end})"

    finish([start(produce, t) for t in range(threads)])
    monkeypatch.undo()
    assert datasyncs[0] < threads * per_thread, "every enqueue had a datasync of its own: no group commit"

    q.close()
    with dque.open(q.name, tmp_path) as again:
        items = again.dequeue_many(threads * per_thread + 1)
    assert sorted(items) == sorted((t, i) for t in range(threads) for i in range(per_thread))
    for t in range(threads):
        assert [i for (tt, i) in items if tt == t] == list(range(per_thread))


def test_group_commit_gathers_writers_but_a_lone_writer_never_waits(new_queue):
    """The syncer waits for the writers the last sync released, never when a thread writes alone."""
    q = new_queue(segment_size=10_000)
    waits: list[float] = []
    real_wait = q._commit._joined.wait

    def wait(timeout=None):
        waits.append(timeout)
        return real_wait(timeout)

    q._commit._joined.wait = wait
    for i in range(50):
        q.enqueue(i)
    assert waits == [], "a lone writer waited for others"
    threads = [start(lambda t=t: [q.enqueue((t, i)) for i in range(100)]) for t in range(4)]
    finish(threads)
    # Every wait is bounded by the last sync's duration (and 0.2 ms at most).
    assert all(0 < w <= 0.0002 for w in waits), waits
    q.enqueue("alone again")  # at most one wait right after the burst, then none
    before = len(waits)
    for i in range(20):
        q.enqueue(i)
    assert len(waits) == before
    assert q.size() == 50 + 400 + 21


# --------------------------------------------------- (e) file descriptors


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_open_file_descriptors_stay_bounded(tmp_path, turbo):
    with dque.new("warmup", tmp_path, segment_size=2, turbo=turbo) as w:  # first-use costs out of the way
        w.enqueue_many([1, 2, 3])
        w.dequeue_many(3)
    baseline = fd_count()
    q = dque.new("q", tmp_path, segment_size=2, turbo=turbo)
    try:
        peak = fd_count()
        for i in range(2_000):
            q.enqueue(i)
            if i % 50 == 0:
                peak = max(peak, fd_count())
        for i in range(2_000):
            assert q.dequeue() == i
            if i % 50 == 0:
                peak = max(peak, fd_count())
        for i in range(500):  # interleaved: head and tail in the same segment
            q.enqueue(i)
            q.enqueue(i)
            assert q.dequeue_many(2) == [i, i]
            if i % 25 == 0:
                peak = max(peak, fd_count())
    finally:
        q.close()
    # Head and tail, two each (the file and its map's handle), the lock, and for the length of a
    # sync a dup()ed fd per dirty segment or the background syncer's handle of a full segment.
    assert peak <= baseline + 8, f"{peak} fds open at peak, baseline {baseline}"
    # Back to the baseline. (Polled briefly: a turbo syncer thread of some other queue in this
    # process may hold a dup()ed fd for the length of one fdatasync.)
    deadline = time.monotonic() + 5
    while fd_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fd_count() <= baseline, f"{fd_count()} fds open after close(), baseline {baseline}"


# --------------------------------------------------------------- (f) the lock


def test_second_open_in_same_process_is_refused(tmp_path):
    q = dque.new("q", tmp_path, segment_size=3)
    try:
        q.enqueue("kept")
        for _ in range(2):
            with pytest.raises(dque.LockedError):
                dque.open("q", tmp_path)
            with pytest.raises(dque.LockedError):
                dque.new_or_open("q", tmp_path)
        with pytest.raises(FileExistsError):
            dque.new("q", tmp_path)
        # The refused opens left the first handle working and still holding the lock.
        q.enqueue("more")
        assert q.dequeue() == "kept"
        with pytest.raises(dque.LockedError):
            dque.open("q", tmp_path)
    finally:
        q.close()
    with dque.open("q", tmp_path) as again:
        assert again.dequeue() == "more"
    with dque.new_or_open("q", tmp_path) as again:
        assert again.size() == 0


def test_a_dropped_handle_releases_the_lock(tmp_path):
    """A handle dropped without close() frees its lock and fds once collected (DQue.__del__)."""
    q = dque.new("q", tmp_path, segment_size=2, turbo=True)
    q.enqueue_many([1, 2, 3])
    del q
    gc.collect()
    with dque.open("q", tmp_path) as again:
        assert again.dequeue_many(5) == [1, 2, 3]


# ---------------------------------------------- (g) items are stored as copies


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_caller_mutation_after_enqueue_does_not_reach_the_queue(new_queue, turbo):
    q = new_queue(segment_size=2, turbo=turbo)
    a, b, c = [1, 2], {"k": [1]}, bytearray(b"abc")
    q.enqueue(a)
    q.put(b)
    q.enqueue_many([c, a])
    a.append(3)
    b["k"].append(2)
    b["new"] = 1
    c[0:1] = b"X"
    peeked = q.peek()
    peeked.append("peeked")
    assert q.dequeue() == [1, 2]
    assert q.get() == {"k": [1]}
    assert q.dequeue_many(5) == [bytearray(b"abc"), [1, 2]]


def test_a_dropped_handle_releases_the_lock_at_once(tmp_path):
    """``del q`` (last reference) closed the handle at once: refcounting, no GC pass needed."""
    was_enabled = gc.isenabled()
    gc.disable()  # (deterministic: no automatic collection between the del and the open)
    try:
        q = dque.new("q", tmp_path)
        q.enqueue(1)
        del q
        with dque.open("q", tmp_path) as again:  # HEAD: LockedError, the dropped handle still holds the lock
            assert again.dequeue() == 1
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def test_a_dropped_handle_that_used_a_ttl_is_released(tmp_path):
    """With the lease-expiry thread started, a dropped handle is never finalized on HEAD, even by gc.collect():
    the lock stays held and the thread runs for the life of the process."""
    q = dque.new("q", tmp_path)
    q.enqueue_many([1, 2])
    q.lease(ttl=30).ack()  # starts the expiry thread; nothing outstanding afterwards
    del q
    deadline = time.monotonic() + 4.0  # (base: within the thread's next wake, at most 1 s)
    while True:
        gc.collect()
        try:
            again = dque.open("q", tmp_path)
            break
        except dque.LockedError:
            if time.monotonic() > deadline:
                pytest.fail("the dropped handle still holds the queue's lock")
            time.sleep(0.05)
    with again:
        assert again.dequeue_many(5) == [2]
