"""Benchmark dque against its peers and against what the machine can do at all.

Run it from the repository root with the project's virtualenv::

    python stress/bench.py                    # full run, 2-3 minutes on 2 cores
    python stress/bench.py --quick            # smoke run with tiny sizes, a few seconds (CI)
    python stress/bench.py --scenarios turbo,batch --items 50000
    python stress/bench.py --json stress/out/bench.json --chart stress/out/bench.png

Scenarios (same machine, same disk; all but ``procs`` in one process):

``turbo``
    One process puts N small items ``{"name": "Joe", "id": i}`` and then gets them all.
    dque in turbo mode against the pure-Python ceiling (one ``os.write`` per pickled,
    length+CRC32-framed record; read back with an 8-byte marker write per item),
    persist-queue (file queue and SQLite queue), queuelib ``FifoDiskQueue`` and
    ``diskcache.Deque``, plus the Go original's published numbers (quoted, not measured).
``safe``
    One fsync per operation: dque safe mode with 1 and 4 enqueuing threads, against a
    raw ``os.write`` + ``os.fsync`` / ``os.fdatasync`` loop on the same disk, a plain
    4-thread group-commit loop (what sharing syncs can reach here at all), and
    persist-queue's SQLite queue with SQLite's default (FULL) synchronous setting.
    These take turns, ``--repeat`` rounds, so a drifting disk hits all of them alike.
``batch``
    dque ``enqueue_many`` / ``dequeue_many`` in batches of 100, safe and turbo, against
    dque's one-item-per-call rate in the same mode.
``memory``
    Resident memory of a fresh process holding a queue of 1,000 items vs 1,000,000 items,
    and the time a fresh process takes to ``dque.open`` the big queue.
``procs``
    One producer process moves N small items to 4 consumer processes (all started with
    ``fork`` where offered, outside the timing), and every item must come out exactly once.
    ``dque.ProcessSafeDQue`` turbo one item per call and in batches of 100, safe mode in
    batches of 100, against ``multiprocessing.Manager().Queue()`` and
    ``multiprocessing.Queue`` (in memory, not durable). The clock runs from the producer's
    first put to the last consumer's end; each consumer stops on an end marker that it puts
    back for the next one. The two one-item-per-call rows (dque and ``Manager().Queue()``)
    take turns, ``--repeat`` rounds, each keeping its best run. Also: the owner's start-up time (``ProcessSafeDQue(...)`` until
    its first call returns) under fork, spawn and forkserver, median of 3 (1 run with ``--quick``).
``leases``
    Acknowledged delivery against plain takes, on a queue filled beforehand (untimed): turbo
    mode, N items one per call, ``dequeue()`` against ``lease(block=False)`` + ``lease.ack()``
    (the cost ratio: lease+ack time / dequeue time); safe mode, ``--lease-items`` items the same
    two ways; safe mode ``lease_many(100)`` + ``ack_many(ids)`` against ``dequeue_many(100)``,
    N items. In the timed phase every fdatasync dque makes is counted (``dque._fs.datasync``
    is wrapped in this process), per item and per take / ack call, and so are its directory
    fsyncs (``dque._fs.sync_dir``). The contenders take turns, ``--repeat`` rounds; in each
    round the two turbo rows (a fraction of a second each) keep the best of ``--repeat`` drains.

Peer libraries are optional: a missing one shows "not installed" in its row. Every
contender works in its own temporary directory under ``--dir`` (default: a fresh
directory in the current working directory's file system) and removes it afterwards.
Each timed phase stops after ``--max-seconds`` so a slow peer cannot stall the run; its
row then says how many items it got through.

The run ends with one verdict line checking dque against its goals (PASS/MISS each).
The exit status is 0 unless a contender crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import importlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import pickle
import platform
import pstats
import queue
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from zlib import crc32

import dque

SCENARIOS = ("turbo", "safe", "batch", "memory", "procs", "leases")
SEGMENT_SIZE = 1000
BATCH = 100
CHUNK = 1000  # items between two looks at the clock in a timed loop
FAST_RUN_S = 2.0  # runs shorter than this are repeated (--repeat) and the best kept
SAFE_1, SAFE_4 = "dque safe, 1 thread", "dque safe, 4 threads"
RAW_FSYNC, RAW_FDATASYNC = "raw os.write 64 B + fsync", "raw os.write 64 B + fdatasync"
RAW_GROUP = "raw os.write + fdatasync, 4 threads"
NOT_CRASH_SAFE = {"queuelib FifoDiskQueue"}  # keeps head/tail in memory until close()
GO_QUOTE = "quoted, not measured here (Go dque v2, 100k {Name, Id} items, segment size 1000)"

# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One contender's line in a table. ``base`` names the row its ratios are taken against."""

    name: str
    values: dict[str, float] = field(default_factory=dict)
    note: str = ""
    status: str = "ok"  # ok | quoted | not installed | not offered | error
    base: str | None = None


@dataclass
class Column:
    key: str
    header: str
    kind: str = "rate"  # rate (items/s, with a ratio column) | mb | sec | x (a ratio) | count (2 decimals) | int


@dataclass
class Table:
    scenario: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    base: str = ""  # default base row for ratios
    legend: str = ""  # what the ratio column means, when neither ``base`` nor the batch wording says it

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    def value(self, name: str, key: str) -> float | None:
        row = self.row(name)
        return row.values.get(key) if row and row.status in ("ok", "quoted") else None


class NotInstalled(Exception):
    """A peer library cannot be imported."""


CRASHES: list[str] = []  # tracebacks of contenders that raised; any makes the exit status 1
Measurement = Callable[[], tuple[dict[str, float], str]]  # () -> ({column key: value}, note)


def need(module: str):
    """Import a peer library or raise NotInstalled."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotInstalled(module) from exc


def run_row(table: Table, name: str, fn: Measurement, note: str = "", **kw) -> Row:
    """Run one contender and append its row; a crash becomes an ``error`` row, not an abort."""
    print(f"  {table.scenario}: {name} ...", end="", flush=True, file=sys.stderr)
    row = Row(name, note=note, **kw)
    try:
        row.values, extra = fn()
        if extra:
            row.note = f"{row.note}; {extra}" if row.note else extra
    except NotInstalled as exc:
        row.status, row.note = "not installed", f"{exc} not installed"
    except Exception as exc:  # noqa: BLE001 - one contender's failure must not stop the run
        row.status, row.note = "error", f"{type(exc).__name__}: {exc}"
        CRASHES.append(f"{table.scenario}/{name}: {traceback.format_exc()}")
    print(f" {row.status}", file=sys.stderr)
    table.rows.append(row)
    return row


# --------------------------------------------------------------------------- helpers


def make_items(n: int, start: int = 0) -> list[dict]:
    return [{"name": "Joe", "id": i} for i in range(start, start + n)]


@contextlib.contextmanager
def workdir(root: str, label: str) -> Iterator[str]:
    """A fresh directory under ``root`` for one contender, removed afterwards."""
    path = tempfile.mkdtemp(prefix=label.replace(" ", "_") + "-", dir=root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed_puts(put: Callable, items: list, cap: float) -> tuple[int, float]:
    """Call ``put`` on items until done or ``cap`` seconds passed; (count, seconds)."""
    done, n = 0, len(items)
    start = time.perf_counter()
    while done < n:
        for item in items[done : done + CHUNK]:
            put(item)
        done = min(n, done + CHUNK)
        if time.perf_counter() - start > cap:
            break
    return done, time.perf_counter() - start


def timed_gets(get: Callable, n: int, cap: float) -> tuple[list, float]:
    """Call ``get`` n times or until ``cap`` seconds passed; (items got, seconds)."""
    got: list = []
    append = got.append
    start = time.perf_counter()
    while len(got) < n:
        for _ in range(min(CHUNK, n - len(got))):
            append(get())
        if time.perf_counter() - start > cap:
            break
    return got, time.perf_counter() - start


def check_fifo(got: list, items: list) -> None:
    if got != items[: len(got)]:
        bad = next(i for i, (a, b) in enumerate(zip(got, items, strict=False)) if a != b)
        raise AssertionError(f"FIFO order broken at item {bad}: got {got[bad]!r}, expected {items[bad]!r}")


def put_get(
    open_queue: Callable[[str], tuple[Callable, Callable, Callable]], root: str, label: str, items: list, cap: float
) -> tuple[dict[str, float], str]:
    """The common turbo measurement: put all, then get all, on a queue opened by ``open_queue(dir)``."""
    with workdir(root, label) as path:
        put, get, close = open_queue(path)
        try:
            n, t_put = timed_puts(put, items, cap)
            got, t_get = timed_gets(get, n, cap)
        finally:
            close()
    check_fifo(got, items)
    note = f"capped at {n:,} of {len(items):,} items by --max-seconds" if n < len(items) else ""
    if len(got) < n:
        note = (note + "; " if note else "") + f"dequeue capped at {len(got):,} items"
    return {"enq": n / t_put, "deq": len(got) / t_get, "n": n, "elapsed": t_put + t_get}, note


def merge_best(runs: list[tuple[dict[str, float], str]]) -> tuple[dict[str, float], str]:
    """The best rate of each key over several runs of one measurement."""
    values = dict(runs[0][0])
    for key in values:
        if key not in ("n", "elapsed"):
            values[key] = max(r[0][key] for r in runs)
    note = runs[0][1]
    if len(runs) > 1:
        note = (note + "; " if note else "") + f"best of {len(runs)} runs"
    return values, note


def best_of(repeat: int, fn: Measurement) -> Measurement:
    """Wrap a measurement: repeat runs that are quick (< FAST_RUN_S) up to ``repeat`` times, keep the best rates."""

    def run() -> tuple[dict[str, float], str]:
        runs = [fn()]
        while len(runs) < repeat and runs[-1][0].get("elapsed", FAST_RUN_S) < FAST_RUN_S:
            runs.append(fn())
        return merge_best(runs)

    return run


def round_robin(rounds: int, fns: list[Measurement], pick: Callable = merge_best) -> list[Measurement]:
    """Run the measurements in turn, ``rounds`` times over, now; return one replay per measurement.

    fsync rates drift by 2x within a minute on a shared disk, and CPU time on a
    shared VM too: taking turns exposes every contender to the same drift, so
    their ratios stay meaningful. A replay gives ``pick(runs)`` (by default the
    best rates), or re-raises the measurement's first error (for run_row).
    """
    outcomes: list[list] = [[] for _ in fns]
    for r in range(rounds):
        print(f"  round {r + 1} of {rounds} ...", file=sys.stderr)
        for fn, out in zip(fns, outcomes, strict=True):
            if out and isinstance(out[-1], BaseException):
                continue
            try:
                out.append(fn())
            except Exception as exc:  # noqa: BLE001 - re-raised by the replay, inside run_row
                out.append(exc)

    def replay(out: list) -> Measurement:
        def run() -> tuple[dict[str, float], str]:
            if isinstance(out[-1], BaseException):
                raise out[-1]
            return pick(out)

        return run

    return [replay(out) for out in outcomes]


# --------------------------------------------------------------------------- turbo contenders


def dque_adapter(turbo: bool) -> Callable[[str], tuple[Callable, Callable, Callable]]:
    def open_queue(path: str):
        q = dque.new("bench", path, segment_size=SEGMENT_SIZE, turbo=turbo)
        return q.enqueue, q.dequeue, q.close

    return open_queue


_REC = struct.Struct("<II")  # length, crc32
MARKER = b"\x00" * 8
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


def ceiling(root: str, items: list) -> tuple[dict[str, float], str]:
    """The tightest pure-Python durable-to-the-OS loop: what any Python queue could reach."""
    with workdir(root, "ceiling") as path:
        data_path = os.path.join(path, "data")
        fd = os.open(data_path, APPEND, 0o644)
        dumps, pack, write = pickle.dumps, _REC.pack, os.write
        start = time.perf_counter()
        for item in items:
            payload = dumps(item, 5)
            write(fd, pack(len(payload), crc32(payload)) + payload)
        t_put = time.perf_counter() - start
        os.close(fd)
        got, t_get = ceiling_read(data_path, os.path.join(path, "markers"), len(items))
    check_fifo(got, items)
    return {"enq": len(items) / t_put, "deq": len(got) / t_get, "elapsed": t_put + t_get}, ""


def ceiling_read(data_path: str, marker_path: str, n: int) -> tuple[list, float]:
    loads, unpack, write = pickle.loads, _REC.unpack_from, os.write
    got: list = []
    append = got.append
    start = time.perf_counter()
    with open(data_path, "rb") as f:
        data = f.read()
    mfd = os.open(marker_path, APPEND, 0o644)
    pos = 0
    for _ in range(n):
        length, crc = unpack(data, pos)
        pos += 8
        payload = data[pos : pos + length]
        pos += length
        if crc32(payload) != crc:
            raise AssertionError(f"checksum mismatch at {pos}")
        append(loads(payload))
        write(mfd, MARKER)
    elapsed = time.perf_counter() - start
    os.close(mfd)
    return got, elapsed


def pq_file_adapter(path: str):
    persistqueue = need("persistqueue")
    q = persistqueue.Queue(path, chunksize=SEGMENT_SIZE, tempdir=path, autosave=True)

    def close() -> None:
        for f in (q.headf, q.tailf):
            f.close()

    return q.put, (lambda: q.get(block=False)), close


def pq_sqlite_adapter(synchronous: str | None):
    def open_queue(path: str):
        persistqueue = need("persistqueue")
        q = persistqueue.SQLiteQueue(path, auto_commit=True, multithreading=False)
        if synchronous is not None:
            q._putter.execute(f"PRAGMA synchronous={synchronous}")  # noqa: SLF001 - no public knob exists
        return q.put, (lambda: q.get(block=False)), q.close

    return open_queue


def sqlite_synchronous_default() -> str:
    """SQLite's compiled-in default ``synchronous`` (what persist-queue runs with)."""
    import sqlite3

    value = sqlite3.connect(":memory:").execute("PRAGMA synchronous").fetchone()[0]
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(value, str(value))


def queuelib_adapter(path: str):
    queuelib = need("queuelib")
    q = queuelib.FifoDiskQueue(os.path.join(path, "q"))
    dumps, loads = pickle.dumps, pickle.loads
    return (lambda item: q.push(dumps(item, 5))), (lambda: loads(q.pop())), q.close


def diskcache_adapter(path: str):
    diskcache = need("diskcache")
    cache = diskcache.Cache(path, eviction_policy="none", sqlite_synchronous=0)
    deque = diskcache.Deque.fromcache(cache)
    return deque.append, deque.popleft, cache.close


def scenario_turbo(args: argparse.Namespace) -> Table:
    cols = [Column("enq", "enqueue items/s"), Column("deq", "dequeue items/s")]
    table = Table(
        "turbo", f"turbo: put {args.items:,} small items, then get them all (1 process)", cols, base="dque turbo"
    )
    items = make_items(args.items)
    root, cap, rep = args.bench_dir, args.max_seconds, args.repeat

    def pq(opener, label):
        return best_of(rep, lambda: put_get(opener, root, label, items, cap))

    run_row(
        table, "dque turbo", pq(dque_adapter(True), "dque-turbo"), f"dque.new(turbo=True, segment_size={SEGMENT_SIZE})"
    )
    run_row(
        table,
        "pure-Python ceiling",
        best_of(rep, lambda: ceiling(root, items)),
        "pickle5 + len/crc32 header, 1 os.write per record; read back + 8-byte marker write per item",
    )
    run_row(
        table,
        "persistqueue.Queue",
        pq(pq_file_adapter, "pq-file"),
        f"chunksize={SEGMENT_SIZE}, autosave=True, tempdir=queue dir (fsync only when a chunk fills)",
    )
    run_row(
        table,
        "persistqueue.SQLiteQueue",
        pq(pq_sqlite_adapter("OFF"), "pq-sqlite"),
        "auto_commit=True, WAL, PRAGMA synchronous=OFF set on its connection",
    )
    run_row(
        table,
        "queuelib FifoDiskQueue",
        pq(queuelib_adapter, "queuelib"),
        "pickle5 by caller, default chunksize; not crash-safe: head/tail positions saved only at close()",
    )
    run_row(
        table,
        "diskcache.Deque",
        pq(diskcache_adapter, "diskcache"),
        "Deque.fromcache(Cache(eviction_policy='none', sqlite_synchronous=0)), WAL",
    )
    table.rows.append(Row("Go dque v2 turbo", {"enq": 310_000, "deq": 93_000}, GO_QUOTE, status="quoted"))
    return table


# --------------------------------------------------------------------------- safe


def dque_safe_threads(root: str, items: list, threads: int) -> tuple[dict[str, float], str]:
    """Enqueue ``items`` from ``threads`` threads at once into a safe-mode queue, then dequeue in 1 thread."""
    with workdir(root, f"dque-safe-{threads}") as path:
        q = dque.new("bench", path, segment_size=SEGMENT_SIZE, turbo=False)
        try:
            t_put = run_threads([items[i::threads] for i in range(threads)], q.enqueue)
            start = time.perf_counter()
            got = [q.dequeue() for _ in items]
            t_get = time.perf_counter() - start
        finally:
            q.close()
    check_per_thread_fifo(got, items, threads)
    return {"enq": len(items) / t_put, "deq": len(got) / t_get, "elapsed": t_put + t_get}, ""


def check_per_thread_fifo(got: list, items: list, threads: int) -> None:
    """Every item came back once, and each thread's items in the order it put them."""
    if threads == 1:
        check_fifo(got, items)
        return
    if sorted(g["id"] for g in got) != [i["id"] for i in items]:
        raise AssertionError("items lost or duplicated with concurrent enqueuers")
    for k in range(threads):
        ids = [g["id"] for g in got if g["id"] % threads == k]
        if ids != sorted(ids):
            raise AssertionError(f"thread {k}'s items came back out of order")


def run_threads(parts: list[list], put: Callable) -> float:
    """Start one thread per part, release them together, return seconds until all are done."""
    barrier = threading.Barrier(len(parts) + 1)
    errors: list[BaseException] = []

    def work(part: list) -> None:
        barrier.wait()
        try:
            for item in part:
                put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def raw_sync(root: str, n: int, sync: Callable[[int], None]) -> tuple[dict[str, float], str]:
    """The disk's own limit: append 64 bytes and sync, n times."""
    with workdir(root, "raw-sync") as path:
        fd = os.open(os.path.join(path, "f"), APPEND, 0o644)
        record = b"x" * 64
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, record)
            sync(fd)
        elapsed = time.perf_counter() - start
        os.close(fd)
    return {"enq": n / elapsed, "elapsed": elapsed}, ""


class GroupCommitFile:
    """Reference group commit in plain Python: append under one lock; the first caller that
    finds no sync running syncs everything written so far for everyone (others wait on a Condition)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, APPEND, 0o644)
        self.cond = threading.Condition()
        self.written = self.synced = self.syncs = 0
        self.syncing = False

    def put(self, record: bytes) -> None:
        with self.cond:
            os.write(self.fd, record)
            self.written += 1
            seq = self.written
            while self.synced < seq:
                if self.syncing:
                    self.cond.wait()
                    continue
                self.syncing, target = True, self.written
                self.cond.release()
                try:
                    os.fdatasync(self.fd)
                finally:
                    self.cond.acquire()
                    self.syncing = False
                    self.cond.notify_all()
                self.synced, self.syncs = target, self.syncs + 1


def raw_group_commit(root: str, n: int, threads: int) -> tuple[dict[str, float], str]:
    """What sharing syncs between threads can give on this machine, without any queue logic."""
    with workdir(root, "raw-group") as path:
        f = GroupCommitFile(os.path.join(path, "f"))
        record = b"x" * 64
        try:
            elapsed = run_threads([[record] * (n // threads)] * threads, f.put)
        finally:
            os.close(f.fd)
    done = n // threads * threads
    return {"enq": done / elapsed, "elapsed": elapsed}, f"{done / max(1, f.syncs):.2f} records per fdatasync"


def scenario_safe(args: argparse.Namespace) -> Table:
    n = args.safe_items
    cols = [Column("enq", "enqueue items/s"), Column("deq", "dequeue items/s")]
    table = Table("safe", f"safe: one fsync per operation, {n:,} items", cols, base=SAFE_1)
    items = make_items(n)
    root, cap = args.bench_dir, args.max_seconds
    contenders = [
        (SAFE_1, lambda: dque_safe_threads(root, items, 1), "dque.new(turbo=False)"),
        (
            SAFE_4,
            lambda: dque_safe_threads(root, items, 4),
            "4 threads enqueue concurrently (total items/s); dequeue 1 thread",
        ),
        (RAW_FSYNC, lambda: raw_sync(root, n, os.fsync), "the disk's limit, one op/sync"),
        (RAW_FDATASYNC, lambda: raw_sync(root, n, os.fdatasync), "what dque safe mode calls"),
        (
            RAW_GROUP,
            lambda: raw_group_commit(root, n, 4),
            "what 4 threads sharing syncs can reach: Condition-based group commit",
        ),
    ]
    replays = round_robin(args.repeat, [fn for _, fn, _ in contenders])
    for (name, _, note), replay in zip(contenders, replays, strict=True):
        run_row(table, name, replay, note)
    sync = sqlite_synchronous_default()
    run_row(
        table,
        "persistqueue.SQLiteQueue",
        lambda: put_get(pq_sqlite_adapter(None), root, "pq-sqlite-safe", items, cap),
        f"auto_commit=True, WAL, SQLite default synchronous={sync} (syncs the WAL on every commit)",
    )
    table.rows.append(
        Row(
            "persistqueue.Queue",
            note="no fsync-per-operation option (it fsyncs only when a chunk file fills)",
            status="not offered",
        )
    )
    table.rows.append(Row("Go dque v2 safe", {"enq": 6_700, "deq": 6_300}, GO_QUOTE, status="quoted"))
    return table


# --------------------------------------------------------------------------- batch


def dque_batches(root: str, items: list, turbo: bool, cap: float) -> tuple[dict[str, float], str]:
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    with workdir(root, f"dque-batch-{'turbo' if turbo else 'safe'}") as path:
        q = dque.new("bench", path, segment_size=SEGMENT_SIZE, turbo=turbo)
        try:
            nb, t_put = timed_puts(q.enqueue_many, batches, cap)
            got: list = []
            start = time.perf_counter()
            while len(got) < nb * BATCH:
                chunk = q.dequeue_many(BATCH)
                if not chunk:
                    break
                got.extend(chunk)
            t_get = time.perf_counter() - start
        finally:
            q.close()
    put_count = min(len(items), nb * BATCH)
    if len(got) != put_count:
        raise AssertionError(f"dequeue_many returned {len(got)} items in all, {put_count} were enqueued")
    check_fifo(got, items)
    note = f"capped at {put_count:,} items" if put_count < len(items) else ""
    return {"enq": put_count / t_put, "deq": len(got) / t_get, "elapsed": t_put + t_get}, note


def scenario_batch(args: argparse.Namespace, done: dict[str, Table]) -> Table:
    cols = [Column("enq", "enqueue items/s"), Column("deq", "dequeue items/s")]
    table = Table("batch", f"batch: enqueue_many / dequeue_many of {BATCH} items, {args.items:,} items", cols)
    items = make_items(args.items)
    root, cap = args.bench_dir, args.max_seconds
    for mode, turbo in (("turbo", True), ("safe", False)):
        single = f"dque {mode}, 1 item per call"
        run_row(
            table,
            f"dque {mode}, batches of {BATCH}",
            best_of(args.repeat, lambda turbo=turbo: dque_batches(root, items, turbo, cap)),
            f"turbo={turbo}",
            base=single,
        )
        table.rows.append(single_item_reference(args, done, mode, single))
    return table


def single_item_reference(args: argparse.Namespace, done: dict[str, Table], mode: str, name: str) -> Row:
    """dque's one-item-per-call rate in ``mode``, from this run's turbo/safe table or measured now."""
    source = {"turbo": ("turbo", "dque turbo"), "safe": ("safe", SAFE_1)}[mode]
    table = done.get(source[0])
    row = table.row(source[1]) if table else None
    if row is None:
        scratch = Table("batch", "", [])
        if mode == "turbo":
            items = make_items(args.items)
            run_row(
                scratch,
                name,
                lambda: put_get(dque_adapter(True), args.bench_dir, "dque-turbo", items, args.max_seconds),
            )
        else:
            run_row(scratch, name, lambda: dque_safe_threads(args.bench_dir, make_items(args.safe_items), 1))
        row = scratch.rows[0]
    n = args.items if mode == "turbo" else args.safe_items
    return Row(name, dict(row.values), f"reference, {n:,} items", status=row.status, base=name)


# --------------------------------------------------------------------------- memory

_CHILD = r"""
import gc, json, os, sys, time
import dque

def rss():
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

mode, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {"rss_start": rss()}
start = time.perf_counter()
if mode == "fill":
    q = dque.new("mem", root, segment_size=int(sys.argv[4]), turbo=True)
    for base in range(0, n, 1000):
        q.enqueue_many([{"name": "Joe", "id": i} for i in range(base, min(n, base + 1000))])
    out["seconds"] = time.perf_counter() - start
else:
    q = dque.open("mem", root)
    out["seconds"] = time.perf_counter() - start
    out["head"] = q.peek()
gc.collect()
out["rss"] = rss()
out["size"] = q.size()
q.close()
print(json.dumps(out))
"""


def child(mode: str, root: str, n: int) -> dict:
    """Run the memory probe in a fresh interpreter that imports the same dque as this one."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(dque.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, root, str(n), str(SEGMENT_SIZE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"{mode} child failed:\n{proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    if out["size"] != n:
        raise AssertionError(f"{mode} child: size() is {out['size']}, expected {n}")
    if mode == "open" and out["head"] != {"name": "Joe", "id": 0}:
        raise AssertionError(f"open child: peek() is {out['head']!r}")
    return out


def dir_mb(path: str) -> float:
    return sum(e.stat().st_size for e in os.scandir(os.path.join(path, "mem"))) / 2**20


def memory_probe(root: str, n: int) -> tuple[dict[str, float], str]:
    with workdir(root, f"dque-mem-{n}") as path:
        fill = child("fill", path, n)
        opened = child("open", path, n)
        disk = dir_mb(path)
    mb = 2**20
    return {
        "fill_rss": fill["rss"] / mb,
        "fill_s": fill["seconds"],
        "open_rss": opened["rss"] / mb,
        "open_s": opened["seconds"],
        "disk": disk,
    }, ""


def scenario_memory(args: argparse.Namespace) -> Table:
    small, big = args.memory_small, args.memory_items
    cols = [
        Column("fill_rss", "RSS after fill MB", "mb"),
        Column("open_rss", "RSS after open MB", "mb"),
        Column("open_s", "open s", "sec"),
        Column("fill_s", "fill s", "sec"),
        Column("disk", "disk MB", "mb"),
    ]
    table = Table(
        "memory",
        f"memory: fresh process holding {small:,} vs {big:,} items "
        f"(turbo fill with enqueue_many, segment_size={SEGMENT_SIZE}; open in another fresh process)",
        cols,
    )
    note = "fill: dque.new + enqueue_many(1000) x n/1000; open: dque.open in a new process"
    a = run_row(table, f"dque, {small:,} items", lambda: memory_probe(args.bench_dir, small), note)
    b = run_row(table, f"dque, {big:,} items", lambda: memory_probe(args.bench_dir, big), note)
    if a.status == b.status == "ok":
        growth = {k: b.values[k] - a.values[k] for k in ("fill_rss", "open_rss", "disk")}
        table.rows.append(Row(f"growth ({big:,} - {small:,})", growth, "RSS difference between the two processes"))
    return table


# --------------------------------------------------------------------------- procs

CONSUMERS = 4
STOP = None  # end marker: the producer puts one after its items; each consumer puts it back and leaves
PROCS_WAIT = 30.0  # seconds a consumer waits for an item (or a worker at the barrier) before giving up
PROCS_DQUE = "dque turbo, 1 item per call"
PROCS_DQUE_BATCH = f"dque turbo, batches of {BATCH}"
PROCS_MANAGER = "Manager().Queue(), 1 item per call"
PROCS_MPQUEUE = "multiprocessing.Queue, 1 item per call"
STARTUP_RUNS = 3


def procs_context():
    """The start method for the producer and consumers: fork where offered (cheapest; lets them inherit)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def procs_api(api: str, q) -> tuple[Callable, Callable]:
    """(put one, get one waiting up to PROCS_WAIT s) for a dque handle or a queue.Queue-like object."""
    if api == "dque":
        return q.enqueue, lambda: q.dequeue_block(PROCS_WAIT)
    return q.put, lambda: q.get(True, PROCS_WAIT)


def procs_producer(api: str, q, n: int, batch: int, cap: float, barrier, results) -> None:
    """Put items 0..n-1 (one per call, or ``enqueue_many`` of ``batch``), then STOP; report the clock."""
    try:
        put, _ = procs_api(api, q)
        items = make_items(n)
        units = [items[i : i + batch] for i in range(0, n, batch)] if batch > 1 else items
        put_unit = q.enqueue_many if batch > 1 else put
        step = max(1, CHUNK // batch)  # look at the clock every CHUNK items
        q.empty()  # connect before the clock starts
        barrier.wait(PROCS_WAIT)
        done = 0
        start = time.perf_counter()
        while done < len(units):
            for unit in units[done : done + step]:
                put_unit(unit)
            done = min(len(units), done + step)
            if time.perf_counter() - start > cap:
                break
        end = time.perf_counter()
        put(STOP)
        results.put(("producer", start, end, min(n, done * batch)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it in run_row
        results.put(("error", "producer", traceback.format_exc()))


def procs_consumer(api: str, q, batch: int, barrier, results) -> None:
    """Take items until STOP (one per call, or ``dequeue_many`` of ``batch``), pass STOP on; report the ids."""
    try:
        put, get = procs_api(api, q)
        ids: list[int] = []
        append = ids.append
        q.empty()  # connect before the clock starts
        barrier.wait(PROCS_WAIT)
        if batch > 1:
            take = q.dequeue_many
            while True:
                chunk = take(batch) or [get()]  # nothing there: wait for one item
                if chunk[-1] is STOP:
                    ids.extend(item["id"] for item in chunk[:-1])
                    break
                ids.extend(item["id"] for item in chunk)
        else:
            while True:
                item = get()
                if item is STOP:
                    break
                append(item["id"])
        end = time.perf_counter()
        put(STOP)  # for the next consumer
        results.put(("consumer", end, ids))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it in run_row
        results.put(("error", "consumer", traceback.format_exc()))


def run_workers(ctx, api: str, q, n: int, batch: int, cap: float) -> list[tuple]:
    """Start 1 producer and CONSUMERS consumers on ``q``, release them together, return their reports."""
    barrier = ctx.Barrier(1 + CONSUMERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=procs_producer, args=(api, q, n, batch, cap, barrier, results), daemon=True)]
    procs += [
        ctx.Process(target=procs_consumer, args=(api, q, batch, barrier, results), daemon=True)
        for _ in range(CONSUMERS)
    ]
    reports: list[tuple] = []
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + cap + 2 * PROCS_WAIT
        while len(reports) < len(procs):
            try:
                report = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"worker pid {dead[0].pid} died with exit code {dead[0].exitcode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(reports)} of {len(procs)} workers reported") from None
                continue
            if report[0] == "error":
                raise RuntimeError(f"{report[1]} failed:\n{report[2]}")
            reports.append(report)
        for p in procs:
            p.join(PROCS_WAIT)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        results.close()
    return reports


def check_exactly_once(per_consumer: list[list[int]], n: int) -> None:
    """Items 0..n-1 were all consumed, none twice, and each consumer got its share in production order."""
    got = sorted(i for ids in per_consumer for i in ids)
    if got != list(range(n)):
        seen = set(got)
        missing = n - len(seen & set(range(n)))
        raise AssertionError(
            f"{len(got):,} items consumed for {n:,} produced: {missing:,} missing, {len(got) - len(seen):,} twice"
        )
    for k, ids in enumerate(per_consumer):
        if any(a > b for a, b in zip(ids, ids[1:], strict=False)):
            raise AssertionError(f"consumer {k} got items out of production order")


def procs_run(ctx, kind: str, root: str, n: int, batch: int, cap: float) -> tuple[dict[str, float], str]:
    """One producer -> CONSUMERS consumers through a queue of ``kind``: dque-turbo, dque-safe, manager, mpqueue."""
    with workdir(root, f"procs-{kind}") as path:
        if kind.startswith("dque"):
            api = "dque"
            q = dque.ProcessSafeDQue("bench", path, segment_size=SEGMENT_SIZE, turbo=kind == "dque-turbo", context=ctx)
            close = q.close
        elif kind == "manager":
            api, manager = "queue", ctx.Manager()
            q, close = manager.Queue(), manager.shutdown
        else:
            api, q = "queue", ctx.Queue()
            close = q.close
        try:
            reports = run_workers(ctx, api, q, n, batch, cap)
        finally:
            close()
    _, start, end, produced = next(r for r in reports if r[0] == "producer")
    consumers = [r for r in reports if r[0] == "consumer"]
    per_consumer = [r[2] for r in consumers]
    check_exactly_once(per_consumer, produced)
    wall = max(r[1] for r in consumers) - start
    shares = sorted(len(ids) for ids in per_consumer)
    note = f"consumers took {shares[0]:,}-{shares[-1]:,} each"
    if produced < n:
        note = f"capped at {produced:,} of {n:,} items by --max-seconds; {note}"
    return {"rate": produced / wall, "produce_s": end - start, "wall_s": wall, "elapsed": wall}, note


def best_whole_run(runs: list[tuple[dict[str, float], str]]) -> tuple[dict[str, float], str]:
    """The run with the best rate, whole (its times belong together), noted as taking turns."""
    values, note = max(runs, key=lambda r: r[0]["rate"])
    if len(runs) > 1:
        note = (note + "; " if note else "") + f"best of {len(runs)} runs, taking turns with the other per-item row"
    return values, note


def best_run(repeat: int, fn: Measurement, key: str) -> Measurement:
    """Like best_of, but keep the whole run with the best ``key`` (its times belong together)."""

    def run() -> tuple[dict[str, float], str]:
        runs = [fn()]
        while len(runs) < repeat and runs[-1][0]["elapsed"] < FAST_RUN_S:
            runs.append(fn())
        values, note = max(runs, key=lambda r: r[0][key])
        if len(runs) > 1:
            note = (note + "; " if note else "") + f"best of {len(runs)} runs"
        return values, note

    return run


def owner_startup(root: str, method: str, runs: int) -> tuple[dict[str, float], str]:
    """Seconds from ``ProcessSafeDQue(context=method)`` until its first call returns; median of ``runs``."""
    times = []
    for _ in range(runs):
        with workdir(root, f"startup-{method}") as path:
            start = time.perf_counter()
            q = dque.ProcessSafeDQue("bench", path, segment_size=SEGMENT_SIZE, turbo=True, context=method)
            try:
                q.size()
                times.append(time.perf_counter() - start)
            finally:
                q.close()
    note = "runs: " + ", ".join(f"{t:.3f}" for t in times) + " s"
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}, note


def scenario_procs(args: argparse.Namespace) -> tuple[Table, Table]:
    n, root, cap, ctx = args.procs_items, args.bench_dir, args.max_seconds, procs_context()
    cols = [Column("rate", "items/s"), Column("produce_s", "producer s", "sec"), Column("wall_s", "wall s", "sec")]
    table = Table(
        "procs",
        f"procs: 1 producer process -> {CONSUMERS} consumer processes ({ctx.get_start_method()}), {n:,} small items, "
        "each consumed exactly once; wall = first put to last consumer done",
        cols,
        base=PROCS_DQUE,
    )
    contenders = [
        (PROCS_DQUE, "dque-turbo", 1, "ProcessSafeDQue(turbo=True): enqueue / dequeue_block(timeout)"),
        (
            PROCS_DQUE_BATCH,
            "dque-turbo",
            BATCH,
            f"enqueue_many / dequeue_many({BATCH}), dequeue_block(timeout) when it comes back empty",
        ),
        (f"dque safe, batches of {BATCH}", "dque-safe", BATCH, "as above, turbo=False: one fsync per call"),
        (PROCS_MANAGER, "manager", 1, "in memory, not durable: SyncManager queue.Queue proxy, put / get(timeout)"),
        (
            PROCS_MPQUEUE,
            "mpqueue",
            1,
            "in memory, not durable: pipe + feeder thread; inherited by the Process children",
        ),
    ]
    # The one-item-per-call rows last 5-15 s each, longer than the drift of a shared VM's CPU:
    # they take turns, and each keeps its best whole run.
    per_item = [c for c in contenders if c[2] == 1 and c[1] != "mpqueue"]
    replays = round_robin(
        args.repeat,
        [lambda kind=kind: procs_run(ctx, kind, root, n, 1, cap) for _, kind, _, _ in per_item],
        pick=best_whole_run,
    )
    taking_turns = dict(zip((c[0] for c in per_item), replays, strict=True))
    for name, kind, batch, note in contenders:
        measure = taking_turns.get(name) or best_run(
            args.repeat, lambda kind=kind, batch=batch: procs_run(ctx, kind, root, n, batch, cap), "rate"
        )
        run_row(table, name, measure, note)

    runs = 1 if args.quick else STARTUP_RUNS
    startup = Table(
        "procs",
        f"procs: owner start-up, ProcessSafeDQue(...) until its first call returns (median of {runs})",
        [Column("median", "median s", "sec"), Column("min", "min s", "sec"), Column("max", "max s", "sec")],
    )
    offered = multiprocessing.get_all_start_methods()
    for method in ("fork", "spawn", "forkserver"):
        if method not in offered:
            startup.rows.append(Row(method, note="start method not offered on this platform", status="not offered"))
            continue
        note = {
            "spawn": "a fresh interpreter; re-imports the main module (this script)",
            "forkserver": "the first run also starts the fork server",
        }.get(method, "")
        run_row(startup, method, lambda method=method: owner_startup(root, method, runs), note)
    return table, startup


# --------------------------------------------------------------------------- leases

LEASE_DEQ_TURBO = "dque turbo, dequeue"
LEASE_TURBO = "dque turbo, lease + ack"
LEASE_DEQ_SAFE = "dque safe, dequeue"
LEASE_SAFE = "dque safe, lease + ack"
LEASE_DEQ_MANY = f"dque safe, dequeue_many({BATCH})"
LEASE_MANY = f"dque safe, lease_many({BATCH}) + ack_many"
LEASE_STEP = 100  # items (or batches) between two looks at the clock in a lease drain


class SyncCounter:
    """Count dque's fdatasync calls (``dque._fs.datasync``) and directory fsyncs (``dque._fs.sync_dir``).

    The engine calls both through the module, so replacing the module's names
    sees every call, the background syncer's included, for as long as the
    ``with`` block lasts.
    """

    def __init__(self) -> None:
        self.datasyncs = 0
        self.dir_syncs = 0
        self._saved: tuple[Callable, Callable] | None = None

    def __enter__(self) -> SyncCounter:
        fs = dque._fs
        real_datasync, real_sync_dir = self._saved = (fs.datasync, fs.sync_dir)

        def datasync(fd: int) -> None:
            self.datasyncs += 1
            real_datasync(fd)

        def sync_dir(path: str) -> None:
            self.dir_syncs += 1
            real_sync_dir(path)

        fs.datasync, fs.sync_dir = datasync, sync_dir
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        dque._fs.datasync, dque._fs.sync_dir = self._saved


@dataclass
class Drain:
    """What a timed drain did: the items, its seconds, its take and ack calls and the fdatasyncs each made."""

    got: list
    seconds: float
    takes: int = 0
    acks: int = 0
    take_syncs: int | None = None  # None: not attributed (turbo, where they come from the background syncer)
    ack_syncs: int | None = None


def drain_dequeue(q, n: int, cap: float, syncs: SyncCounter, attribute: bool) -> Drain:
    """``dequeue()`` n times (as timed_gets does); every sync is the take's."""
    got, seconds = timed_gets(q.dequeue, n, cap)
    return Drain(got, seconds, takes=len(got), take_syncs=syncs.datasyncs if attribute else None)


def drain_lease(q, n: int, cap: float, syncs: SyncCounter, attribute: bool) -> Drain:
    """``lease(block=False)`` + ``lease.ack()`` n times; with ``attribute``, note which call synced."""
    got: list = []
    append, lease = got.append, q.lease
    take_syncs = ack_syncs = 0
    start = time.perf_counter()
    if attribute:
        while len(got) < n:
            for _ in range(min(LEASE_STEP, n - len(got))):
                before = syncs.datasyncs
                taken = lease(block=False)
                leased = syncs.datasyncs
                taken.ack()
                take_syncs += leased - before
                ack_syncs += syncs.datasyncs - leased
                append(taken.item)
            if time.perf_counter() - start > cap:
                break
    else:  # the same loop without the bookkeeping, for turbo's tight timing
        while len(got) < n:
            for _ in range(min(CHUNK, n - len(got))):
                taken = lease(block=False)
                taken.ack()
                append(taken.item)
            if time.perf_counter() - start > cap:
                break
    seconds = time.perf_counter() - start
    if not attribute:
        return Drain(got, seconds, len(got), len(got))
    return Drain(got, seconds, len(got), len(got), take_syncs, ack_syncs)


def drain_dequeue_many(q, n: int, cap: float, syncs: SyncCounter, attribute: bool) -> Drain:
    """``dequeue_many(BATCH)`` until n items came back."""
    got: list = []
    calls = 0
    start = time.perf_counter()
    while len(got) < n:
        chunk = q.dequeue_many(BATCH)
        if not chunk:
            break
        got.extend(chunk)
        calls += 1
        if calls % LEASE_STEP == 0 and time.perf_counter() - start > cap:
            break
    return Drain(got, time.perf_counter() - start, takes=calls, take_syncs=syncs.datasyncs if attribute else None)


def drain_lease_many(q, n: int, cap: float, syncs: SyncCounter, attribute: bool) -> Drain:
    """``lease_many(BATCH)`` + ``ack_many([ids])`` until n items came back."""
    got: list = []
    calls = take_syncs = ack_syncs = 0
    start = time.perf_counter()
    while len(got) < n:
        before = syncs.datasyncs
        leases = q.lease_many(BATCH)
        if not leases:
            break
        leased = syncs.datasyncs
        q.ack_many([lease.id for lease in leases])
        take_syncs += leased - before
        ack_syncs += syncs.datasyncs - leased
        got.extend(lease.item for lease in leases)
        calls += 1
        if calls % LEASE_STEP == 0 and time.perf_counter() - start > cap:
            break
    seconds = time.perf_counter() - start
    if not attribute:
        return Drain(got, seconds, calls, calls)
    return Drain(got, seconds, calls, calls, take_syncs, ack_syncs)


DRAINS = {
    "dequeue": drain_dequeue,
    "lease": drain_lease,
    "dequeue_many": drain_dequeue_many,
    "lease_many": drain_lease_many,
}


def lease_drain(root: str, items: list, turbo: bool, how: str, cap: float) -> tuple[dict[str, float], str]:
    """Fill a fresh queue (untimed), then time taking every item back ``how``, counting dque's syncs."""
    n = len(items)
    with workdir(root, f"lease-{how}-{'turbo' if turbo else 'safe'}") as path:
        q = dque.new("bench", path, segment_size=SEGMENT_SIZE, turbo=turbo)
        try:
            for i in range(0, n, SEGMENT_SIZE):
                q.enqueue_many(items[i : i + SEGMENT_SIZE])
            q.turbo_sync()  # turbo: the fill's segments are synced now, not by the syncer during the drain
            with SyncCounter() as syncs:
                drain = DRAINS[how](q, n, cap, syncs, attribute=not turbo)
            left, in_flight = q.size(), q.in_flight()
        finally:
            q.close()
    done = len(drain.got)
    check_fifo(drain.got, items)
    if in_flight:
        raise AssertionError(f"{in_flight} leases still outstanding after every ack returned")
    if left != n - done:
        raise AssertionError(f"size() is {left} after taking {done:,} of {n:,} items")
    values = {
        "rate": done / drain.seconds,
        "sync_item": syncs.datasyncs / done,
        "dir_syncs": syncs.dir_syncs,
        "elapsed": drain.seconds,
    }
    if drain.take_syncs is not None:
        values["sync_take"] = drain.take_syncs / drain.takes
    if drain.ack_syncs is not None:
        values["sync_ack"] = drain.ack_syncs / drain.acks
    note = f"{done:,} items" if done == n else f"capped at {done:,} of {n:,} items by --max-seconds"
    return values, note


def scenario_leases(args: argparse.Namespace) -> Table:
    cols = [
        Column("rate", "items/s"),
        Column("cost", "time/item vs base", "x"),
        Column("sync_item", "fdatasync/item", "count"),
        Column("sync_take", "fdatasync/take", "count"),
        Column("sync_ack", "fdatasync/ack", "count"),
        Column("dir_syncs", "dir fsyncs", "int"),
    ]
    table = Table(
        "leases",
        "leases: take a filled queue's items back, plain take vs lease + ack (1 process; the fill is not timed)",
        cols,
        legend="   (base = the plain take in the same mode: dequeue, or dequeue_many for the batch rows; ratio = items/s "
        "divided by the base's, this run;\n    time/item vs base = its inverse, the lease+ack cost ratio; "
        "fdatasync counted by wrapping dque._fs.datasync, per item and per take (dequeue, lease) / ack call;\n"
        "    dir fsyncs = dque._fs.sync_dir calls in the whole timed phase; turbo's syncs come from its background "
        "syncer, so they are not split by call)",
    )
    turbo_items, safe_items = make_items(args.items), make_items(args.lease_items)
    root, cap = args.bench_dir, args.max_seconds
    turbo_new = f"dque.new(turbo=True, segment_size={SEGMENT_SIZE})"
    contenders = [  # (name, how, turbo, items, base, note)
        (
            LEASE_DEQ_TURBO,
            "dequeue",
            True,
            turbo_items,
            LEASE_DEQ_TURBO,
            f"{turbo_new}: dequeue() per item; each round the best of --repeat drains",
        ),
        (
            LEASE_TURBO,
            "lease",
            True,
            turbo_items,
            LEASE_DEQ_TURBO,
            "lease(block=False) + lease.ack() per item; each round the best of --repeat drains",
        ),
        (LEASE_DEQ_SAFE, "dequeue", False, safe_items, LEASE_DEQ_SAFE, "turbo=False: dequeue() per item"),
        (LEASE_SAFE, "lease", False, safe_items, LEASE_DEQ_SAFE, "turbo=False: lease(block=False) + lease.ack()"),
        (LEASE_DEQ_MANY, "dequeue_many", False, turbo_items, LEASE_DEQ_MANY, f"turbo=False: dequeue_many({BATCH})"),
        (
            LEASE_MANY,
            "lease_many",
            False,
            turbo_items,
            LEASE_DEQ_MANY,
            f"turbo=False: lease_many({BATCH}) + ack_many([l.id for l in leases])",
        ),
    ]
    # Taking turns, --repeat rounds; the turbo rows, a fraction of a second each, take their
    # best of --repeat drains in each round.
    def measure(items: list, turbo: bool, how: str) -> Measurement:
        def drain() -> tuple[dict[str, float], str]:
            runs = [lease_drain(root, items, turbo, how, cap) for _ in range(args.repeat if turbo else 1)]
            return max(runs, key=lambda r: r[0]["rate"])

        return drain

    replays = round_robin(args.repeat, [measure(items, turbo, how) for _, how, turbo, items, _, _ in contenders])
    for (name, _, _, _, base, note), replay in zip(contenders, replays, strict=True):
        run_row(table, name, replay, note, base=base)
    for row in table.rows:
        base = table.row(row.base or "")
        if row.status == "ok" and base is not None and base.status == "ok":
            row.values["cost"] = base.values["rate"] / row.values["rate"]
    return table


# --------------------------------------------------------------------------- output


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "sec":
        return f"{value:.3f}"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "count":
        return f"{value:.2f}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def ratio(table: Table, row: Row, key: str) -> str:
    base = table.row(row.base or table.base)
    value = row.values.get(key)
    if base is None or value is None or not base.values.get(key) or base.status not in ("ok", "quoted"):
        return "-"
    return f"{value / base.values[key]:.2f}x"


def render(table: Table) -> str:
    headers = ["contender"]
    for col in table.columns:
        headers.append(col.header)
        if col.kind == "rate":
            headers.append("ratio")
    headers.append("note")
    lines = []
    for row in table.rows:
        cells = [row.name]
        for col in table.columns:
            shown = row.status in ("ok", "quoted")
            cells.append(
                fmt(row.values.get(col.key), col.kind) if shown else (row.status if col is table.columns[0] else "")
            )
            if col.kind == "rate":
                cells.append(ratio(table, row, col.key) if shown else "")
        cells.append(row.note)
        lines.append(cells)
    widths = [max(len(str(c[i])) for c in [headers, *lines]) for i in range(len(headers) - 1)]
    out = [f"== {table.title}"]
    if table.legend:
        out.append(table.legend)
    elif table.base:
        out.append(f"   (ratio = items/s divided by the '{table.base}' row of this run)")
    elif any(r.base for r in table.rows):
        out.append("   (ratio = items/s divided by dque's one-item-per-call rate in the same mode, this run)")
    for cells in [headers, *lines]:
        left = [str(cells[0]).ljust(widths[0])] + [
            str(c).rjust(w) for c, w in zip(cells[1:-1], widths[1:], strict=True)
        ]
        out.append("  ".join(left) + "  " + cells[-1])
    return "\n".join(out)


Check = tuple[str, str, bool | None]  # (goal, what was measured, passed; None when it did not run)


def verdict(tables: dict[str, Table]) -> list[Check]:
    """One check per goal, from this run's tables."""
    return [
        *turbo_checks(tables.get("turbo")),
        *safe_checks(tables.get("safe")),
        *memory_checks(tables.get("memory")),
        *procs_checks(tables.get("procs"), tables.get("procs-startup")),
        *lease_checks(tables.get("leases")),
    ]


def turbo_checks(t: Table | None) -> list[Check]:
    checks: list[Check] = []
    for key, what in (("enq", "enqueue"), ("deq", "dequeue")):
        mine = t.value("dque turbo", key) if t else None
        checks.append(
            share(f"turbo {what} >= 60% of ceiling", mine, t.value("pure-Python ceiling", key) if t else None)
        )
        peers = [
            r for r in (t.rows if t else []) if r.status == "ok" and r.name not in ("dque turbo", "pure-Python ceiling")
        ]
        if mine is None or not peers:
            checks.append((f"turbo {what} ahead of peers", "n/a", None))
            continue
        best = max(peers, key=lambda r: r.values[key])
        measured = f"{mine / best.values[key]:.2f}x {best.name}"
        if best.name in NOT_CRASH_SAFE:
            measured += " (not crash-safe)"
            safe_peers = [r for r in peers if r.name not in NOT_CRASH_SAFE]
            if safe_peers:
                runner_up = max(safe_peers, key=lambda r: r.values[key])
                measured += f", {mine / runner_up.values[key]:.1f}x best crash-safe peer ({runner_up.name})"
        checks.append((f"turbo {what} ahead of peers", measured, mine > best.values[key]))
    return checks


def safe_checks(s: Table | None) -> list[Check]:
    raws = [s.value(name, "enq") for name in (RAW_FSYNC, RAW_FDATASYNC)] if s else []
    raw = max((r for r in raws if r), default=None)
    enq, deq = (s.value(SAFE_1, "enq"), s.value(SAFE_1, "deq")) if s else (None, None)
    worst = min(enq, deq) if enq and deq else None
    goal, measured, ok = share("safe >= 80% of raw sync", worst, raw, 0.8)
    if ok is not None:
        measured = f"enqueue {enq / raw:.1%}, dequeue {deq / raw:.1%} of the faster raw loop"
    checks = [(goal, measured, ok)]
    four = s.value(SAFE_4, "enq") if s else None
    goal, measured, ok = share("4 threads >= 2x 1 thread", four, enq, 2.0, as_ratio=True)
    group, single = (s.value(RAW_GROUP, "enq"), s.value(RAW_FDATASYNC, "enq")) if s else (None, None)
    if ok is not None and group and single:
        measured += f" (raw 4-thread group commit: {group / single:.2f}x raw fdatasync here)"
    checks.append((goal, measured, ok))
    return checks


def memory_checks(m: Table | None) -> list[Check]:
    growth = next((r for r in (m.rows if m else []) if r.name.startswith("growth")), None)
    if growth:
        worst = max(growth.values["fill_rss"], growth.values["open_rss"])
        checks: list[Check] = [("memory growth <= 20 MB", f"{worst:+.1f} MB", worst <= 20)]
    else:
        checks = [("memory growth <= 20 MB", "n/a", None)]
    big = m.rows[1] if m and len(m.rows) > 1 and m.rows[1].status == "ok" else None
    if big:
        checks.append(("open < 1 s", f"{big.values['open_s']:.3f} s", big.values["open_s"] < 1))
    else:
        checks.append(("open < 1 s", "n/a", None))
    return checks


def procs_checks(p: Table | None, s: Table | None) -> list[Check]:
    mine = p.value(PROCS_DQUE, "rate") if p else None
    checks = [
        share("procs per-item >= Manager().Queue()", mine, p.value(PROCS_MANAGER, "rate") if p else None, 1.0, True),
        share(
            f"procs batches of {BATCH} >= 0.5x multiprocessing.Queue",
            p.value(PROCS_DQUE_BATCH, "rate") if p else None,
            p.value(PROCS_MPQUEUE, "rate") if p else None,
            0.5,
            True,
        ),
    ]
    fork = s.value("fork", "median") if s else None
    if fork is None:
        checks.append(("fork start-up < 0.5 s", "n/a", None))
    else:
        others = [(m, s.value(m, "median")) for m in ("spawn", "forkserver")]
        shown = ", ".join(f"{m} {v:.3f} s" for m, v in others if v is not None)
        checks.append(("fork start-up < 0.5 s", f"{fork:.3f} s" + (f" ({shown})" if shown else ""), fork < 0.5))
    return checks


def lease_checks(t: Table | None) -> list[Check]:
    cost = t.value(LEASE_TURBO, "cost") if t else None
    checks: list[Check] = [
        ("turbo lease+ack <= 1.5x dequeue time", "n/a", None)
        if cost is None
        else ("turbo lease+ack <= 1.5x dequeue time", f"{cost:.2f}x", cost <= 1.5)
    ]
    per_item, deq = (t.value(LEASE_SAFE, "sync_item"), t.value(LEASE_DEQ_SAFE, "sync_item")) if t else (None, None)
    goal = "safe lease+ack <= 2 fdatasync/item"
    if per_item is None:
        checks.append((goal, "n/a", None))
    else:
        shown = f"{per_item:.2f}/item" + (f" (dequeue {deq:.2f})" if deq is not None else "")
        checks.append((goal, shown, per_item <= 2.0))
    take, ack = (t.value(LEASE_MANY, "sync_take"), t.value(LEASE_MANY, "sync_ack")) if t else (None, None)
    goal = f"safe lease_many({BATCH})/ack_many 1 fdatasync each"
    if take is None or ack is None:
        checks.append((goal, "n/a", None))
    else:
        checks.append((goal, f"{take:.2f} per lease_many, {ack:.2f} per ack_many", take <= 1.0 and ack <= 1.0))
    return checks


def share(goal: str, mine: float | None, ref: float | None, goal_ratio: float = 0.6, as_ratio: bool = False) -> Check:
    if mine is None or not ref:
        return goal, "n/a", None
    r = mine / ref
    return goal, (f"{r:.2f}x" if as_ratio else f"{r:.1%}"), r >= goal_ratio


def verdict_line(checks: list[Check], quick: bool) -> str:
    parts = [
        f"{goal}: n/a" if ok is None else f"{goal}: {measured} {'PASS' if ok else 'MISS'}"
        for goal, measured, ok in checks
    ]
    return "VERDICT" + (" (quick sizes, indicative only)" if quick else "") + ": " + "; ".join(parts)


# --------------------------------------------------------------------------- machine


def machine_info(bench_dir: str) -> dict[str, str]:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "ram": ram(),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "filesystem": filesystem(bench_dir),
        "bench dir": bench_dir,
        "dque": f"{version('dque')} ({os.path.dirname(dque.__file__)})",
        "peers": ", ".join(f"{p} {version(p)}" for p in ("persist-queue", "queuelib", "diskcache")),
    }


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith(("model name", "Hardware", "Processor")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram() -> str:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "unknown"


def filesystem(path: str) -> str:
    """'type device mountpoint' of the file system holding ``path`` (df -T, else /proc/mounts)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run(["df", "-PT", path], capture_output=True, text=True, check=True, timeout=10).stdout
        dev, fstype, *_, mount = out.splitlines()[1].split()
        return f"{fstype} on {dev} mounted at {mount}"
    best = ("unknown", "", "")
    real = os.path.realpath(path)
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            dev, mount, fstype = line.split()[:3]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best[2]):
                best = (fstype, dev, mount)
    return f"{best[0]} on {best[1]} mounted at {best[2]}"


# --------------------------------------------------------------------------- chart / json


CHART_LOG_SPREAD = 30  # a panel whose bars span more than this factor gets a log scale


def compact(value: float) -> str:
    """299,123 -> '299k', 5,305 -> '5.3k', 1,234,567 -> '1.2M' (bar labels)."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            v = value / scale
            return f"{v:.0f}{suffix}" if v >= 100 else f"{v:.1f}{suffix}".replace(".0" + suffix, suffix)
    return f"{value:.0f}"


def wrap_label(name: str, width: int = 18) -> str:
    """A contender's name on lines of ``width``; a long dotted name breaks after its first dot."""
    words = []
    for word in name.split(" "):
        head, dot, tail = word.partition(".")
        words += [head + dot, tail] if len(word) > width and dot else [word]
    return textwrap.fill(" ".join(words), width, break_long_words=False)


def machine_summary(machine: dict[str, str]) -> str:
    """One line for the chart's title: date, CPU, cores, RAM, file system, Python."""
    python = " ".join(machine.get("python", "").split()[:2])
    fs = " ".join(machine.get("filesystem", "").split()[:3])  # 'ext4 on /dev/vda'
    return (
        f"{machine.get('date', '')[:10]} | {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('ram', '?')} RAM | {fs} | {python} | dque {machine.get('dque', '?').split()[0]}"
    )


def chart(tables: dict[str, Table], path: str, machine: dict[str, str]) -> None:
    """One panel of grouped bars per throughput table (items/s columns), labeled, log scale where needed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--chart: matplotlib not installed, {path} not written", file=sys.stderr)
        return
    shown = [t for t in tables.values() if any(c.kind == "rate" for c in t.columns)]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(12, 4.0 * len(shown) + 0.8), squeeze=False)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for ax, table in zip(axes[:, 0], shown, strict=True):
        rows = [r for r in table.rows if r.status in ("ok", "quoted") and r.values]
        cols = [c for c in table.columns if c.kind == "rate"]
        present = [r.values[c.key] for r in rows for c in cols if r.values.get(c.key)]
        log = bool(present) and max(present) / min(present) > CHART_LOG_SPREAD
        width = 0.8 / len(cols)
        for i, col in enumerate(cols):
            xs = [j - 0.4 + width * (i + 0.5) for j in range(len(rows))]
            heights = [r.values.get(col.key) or math.nan for r in rows]
            bars = ax.bar(xs, heights, width * 0.95, label=col.header, color=colors[i % len(colors)])
            for bar, row in zip(bars, rows, strict=True):
                if row.status == "quoted":
                    bar.set_hatch("//")
                    bar.set_alpha(0.55)
            labels = ["" if math.isnan(h) else compact(h) for h in heights]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(
            [wrap_label(r.name + (" (quoted)" if r.status == "quoted" else "")) for r in rows], fontsize=8
        )
        for tick, row in zip(ax.get_xticklabels(), rows, strict=True):
            if row.name.startswith("dque"):
                tick.set_fontweight("bold")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(min(present) / 2, max(present) * 4)
            ax.set_ylabel("items/s (log scale)")
        else:
            ax.set_ylim(0, max(present, default=1) * 1.18)
            ax.set_ylabel("items/s")
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(textwrap.fill(table.title, 130), fontsize=9.5)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
    fig.suptitle(
        "dque benchmark: throughput, higher is better (bold: dque; hatched: quoted, not measured)\n"
        + machine_summary(machine),
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"chart written to {path}", file=sys.stderr)


def dump_json(
    path: str, machine: dict, args: argparse.Namespace, tables: dict[str, Table], checks: list[Check], line: str
) -> None:
    doc = {
        "machine": machine,
        "args": {k: v for k, v in vars(args).items() if k != "bench_dir"},
        "scenarios": {name: asdict(t) for name, t in tables.items()},
        "verdict": [{"goal": g, "measured": m, "passed": ok} for g, m, ok in checks],
        "verdict_line": line,
        "crashed": bool(CRASHES),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"results written to {path}", file=sys.stderr)


# --------------------------------------------------------------------------- profile


def profile_turbo(args: argparse.Namespace) -> None:
    """cProfile dque's turbo enqueue and dequeue loops; prints the top functions by own time."""
    items = make_items(args.items)
    with workdir(args.bench_dir, "dque-profile") as path:
        q = dque.new("bench", path, segment_size=SEGMENT_SIZE, turbo=True)
        for phase, loop in (
            ("enqueue", lambda: [q.enqueue(i) for i in items]),
            ("dequeue", lambda: [q.dequeue() for _ in items]),
        ):
            prof = cProfile.Profile()
            prof.runcall(loop)
            print(f"== cProfile, dque turbo {phase} of {len(items):,} items (top 15 by own time)")
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(15)
        q.close()


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Scenarios: " + ", ".join(SCENARIOS) + ". See the module docstring.",
    )
    p.add_argument("--items", type=int, help="items for turbo and batch (default 100000; --quick: 2000)")
    p.add_argument("--safe-items", type=int, help="items for the fsync-per-op scenario (default 3000; --quick: 200)")
    p.add_argument(
        "--memory-items", type=int, help="big queue for the memory scenario (default 1000000; --quick: 20000)"
    )
    p.add_argument(
        "--procs-items", type=int, help="items moved between processes in procs (default 100000; --quick: 2000)"
    )
    p.add_argument(
        "--lease-items", type=int, help="items for the safe one-per-call rows of leases (default 2000; --quick: 200)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run with tiny sizes, a few seconds (for CI)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of: " + ",".join(SCENARIOS))
    p.add_argument("--dir", help="put temporary queues in a fresh directory under DIR (default: the current directory)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    p.add_argument("--chart", metavar="PATH.png", help="draw the throughput tables to PATH.png (needs matplotlib)")
    p.add_argument("--max-seconds", type=float, help="cap on one timed phase of one contender (default 15; --quick 5)")
    p.add_argument(
        "--repeat",
        type=int,
        help="repeat runs shorter than 2 s up to this many times, keep the best (default 3; --quick 1)",
    )
    p.add_argument("--profile", action="store_true", help="also cProfile dque's turbo enqueue/dequeue loops")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    defaults = {
        "items": (100_000, 2_000),
        "safe_items": (3_000, 200),
        "memory_items": (1_000_000, 20_000),
        "procs_items": (100_000, 2_000),
        "lease_items": (2_000, 200),
        "max_seconds": (15.0, 5.0),
        "repeat": (3, 1),
    }
    for key, (full, quick) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.memory_small = min(1_000, args.memory_items)
    for key in ("items", "safe_items", "memory_items", "procs_items", "lease_items", "repeat"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be at least 1")
    return args


def run(args: argparse.Namespace) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for name in SCENARIOS:
        if name not in args.scenarios:
            continue
        print(f"running {name} ...", file=sys.stderr)
        if name == "batch":
            tables[name] = scenario_batch(args, tables)
        elif name == "procs":
            tables[name], tables["procs-startup"] = scenario_procs(args)
        else:
            scenario = {
                "turbo": scenario_turbo,
                "safe": scenario_safe,
                "memory": scenario_memory,
                "leases": scenario_leases,
            }[name]
            tables[name] = scenario(args)
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = os.path.abspath(args.dir or os.getcwd())
    args.bench_dir = tempfile.mkdtemp(prefix="dque-bench-", dir=parent)
    try:
        machine = machine_info(args.bench_dir)
        if machine["filesystem"].split()[0] in ("tmpfs", "ramfs"):
            print(
                f"warning: {args.bench_dir} is on {machine['filesystem']}: fsync numbers mean nothing there; "
                "use --dir on a real disk",
                file=sys.stderr,
            )
        tables = run(args)
        if args.profile:
            profile_turbo(args)
    finally:
        shutil.rmtree(args.bench_dir, ignore_errors=True)
    print("dque benchmark" + (" (--quick)" if args.quick else ""))
    for key, value in machine.items():
        print(f"  {key:<10} {value}")
    for table in tables.values():
        print()
        print(render(table))
    checks = verdict(tables)
    line = verdict_line(checks, args.quick)
    print()
    print(line)
    if args.json:
        dump_json(args.json, machine, args, tables, checks, line)
    if args.chart:
        chart(tables, args.chart, machine)
    for crash in CRASHES:
        print(f"\nCRASH in {crash}", file=sys.stderr)
    return 1 if CRASHES else 0


if __name__ == "__main__":
    sys.exit(main())
