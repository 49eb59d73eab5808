"""Benchmark dque against its peers and against what the machine can do at all.

Run it from the repository root with the project's virtualenv::

    python stress/bench.py                    # full run, about 4 minutes on 2 cores
    python stress/bench.py --quick            # smoke run with tiny sizes, about 20 s (CI)
    python stress/bench.py --scenarios procs,large --repeat 5
    python stress/bench.py --json stress/out/bench.json --chart stress/out/bench.png

How every comparison is measured (``stress/_rounds.py``): the contenders of a table take
turns within the same rounds. Each of ``--repeat`` rounds runs every contender once, the
order alternating between rounds (A B C, then C B A); a cell shows the median of the
rounds with [min–max]; a ratio is taken round by round (two contenders that ran within
the same minute) and shown as the median [min–max] of those per-round ratios. Nothing is
"best of", and no ratio divides figures from separate runs.

Scenarios (same machine, same disk; small items are ``{"name": "Joe", "id": i}``):

``turbo``
    One process puts N items and then gets them all: dque in turbo mode against a
    pure-Python loop (one ``os.write`` per pickled, length+CRC32-framed record; read back
    with an 8-byte marker write per item), persist-queue (file and SQLite queues), queuelib
    ``FifoDiskQueue`` and ``diskcache.Deque``; the Go original's published numbers are
    quoted for reference (not measured, no ratio).
``safe``
    One fdatasync per operation: dque safe mode with 1 and 4 enqueuing threads, against
    ``pwrite`` of 64 bytes into pre-allocated room + ``fdatasync`` (as dque writes: the file
    is ``posix_fallocate``-d first, so a sync has no new size to commit), the same as an
    append (a new size with every sync), a 4-thread group-commit loop into pre-allocated
    room, and persist-queue's SQLite queue with SQLite's default synchronous setting.
``batch``
    dque ``enqueue_many`` / ``dequeue_many`` of 100 against one item per call, same mode.
``procs``
    One producer process moves N items to 4 consumer processes (fork), every item exactly
    once; items/s from the producer's first put to the last consumer's end. dque
    ``ProcessSafeDQue`` one item per call (turbo, and safe with ``--procs-safe-items``)
    and batches of 100 (turbo, safe), against ``Manager().Queue()`` and
    ``multiprocessing.Queue`` one item per put, ``multiprocessing.Queue`` with lists of
    100 items per put, and the machine's pwrite + fdatasync loop (syncs/s, one process).
    Also the owner's start-up time under fork, spawn and forkserver.
``leases``
    Taking a filled queue's items back: ``dequeue()`` against ``lease()`` + ``ack()``
    (turbo and safe), ``dequeue_many(100)`` against ``lease_many(100)`` + ``ack_many``;
    every fdatasync and directory fsync dque makes is counted.
``large``
    1 MB items, ``--large-mb`` MB in all (default 256): dque turbo (timed through a final
    ``turbo_sync()``) and safe enqueue / dequeue MB/s, each in a fresh process whose peak
    RSS growth (VmHWM) over the fill and drain is reported, against ``dd bs=1M
    conv=fdatasync`` (parsed), Python ``os.write`` of 1 MB blocks + one fdatasync, and
    Python 1 MB blocks with an fdatasync after each (safe mode's like).
``reopen``
    A queue of ``--reopen-items`` items (default 1,000,000) filled in a fresh process, then
    ``dque.open`` timed in another fresh process: after a clean close, and after the
    filling process was SIGKILLed right after its fill; plus the RSS of a process holding
    that queue against one holding 1,000 items.

Peer libraries are optional: a missing one shows "not installed" in its row. Every
contender works in its own temporary directory under ``--dir`` (default: a fresh
directory in the current working directory's file system) and removes it afterwards.
Each timed phase stops after ``--max-seconds`` so a slow peer cannot stall the run; its
row then says how many items it got through.

The run ends with one verdict line checking issue 10's targets (PASS/MISS each, from the
medians). The exit status is 0 unless a contender crashed.
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
import re
import shutil
import signal
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rounds import Spread, per_round_ratios, take_turns  # noqa: E402

import dque  # noqa: E402

SCENARIOS = ("turbo", "safe", "batch", "procs", "leases", "large", "reopen")
SEGMENT_SIZE = 1000
BATCH = 100
CHUNK = 1000  # items between two looks at the clock in a timed loop
MB = 2**20
SAFE_1, SAFE_4 = "dque safe, 1 thread", "dque safe, 4 threads"
RAW_PREALLOC = "pwrite 64 B into pre-allocated room + fdatasync"
RAW_APPEND = "append 64 B + fdatasync"
RAW_GROUP = "pwrite into pre-allocated room + fdatasync, 4 threads, group commit"
GO_QUOTE = (
    "quoted from the Go project, not measured here: no ratio (Go dque v2, 100k {Name, Id} items, segment size 1000)"
)

# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One contender's line: its figures, one dict per round. ``base`` names the row its ratios are taken to."""

    name: str
    runs: list[dict[str, float]] = field(default_factory=list)
    note: str = ""
    status: str = "ok"  # ok | quoted | not installed | not offered | error
    base: str | None = None

    def spread(self, key: str) -> Spread | None:
        return Spread.of([r.get(key) for r in self.runs]) if self.status in ("ok", "quoted") else None


@dataclass
class Column:
    key: str
    header: str
    kind: str = "rate"  # rate (with a ratio column) | mb | sec | x (a ratio) | count (2 decimals) | int
    ratio: bool = True  # a rate column gets a ratio column next to it


@dataclass
class Table:
    scenario: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    base: str = ""  # default base row for ratios
    legend: str = ""  # what the ratio column means, in words

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    def value(self, name: str, key: str) -> float | None:
        """The median of ``key`` over the rounds of row ``name``."""
        row = self.row(name)
        spread = row.spread(key) if row else None
        return spread.median if spread else None

    def ratio(self, name: str, key: str, base_name: str | None = None) -> Spread | None:
        """Median [min–max] of the per-round ratios of row ``name`` to its base (measured rows only)."""
        row = self.row(name)
        base = self.row(base_name or (row.base if row else None) or self.base)
        if row is None or base is None or "ok" != row.status or "ok" != base.status:
            return None
        return per_round_ratios([r.get(key) for r in row.runs], [r.get(key) for r in base.runs])


class NotInstalled(Exception):
    """A peer library cannot be imported."""


CRASHES: list[str] = []  # tracebacks of contenders that raised; any makes the exit status 1
Measurement = Callable[[], tuple[dict[str, float], str]]  # () -> ({column key: value}, note)


@dataclass
class Contender:
    name: str
    fn: Measurement
    note: str = ""
    base: str | None = None


def need(module: str):
    """Import a peer library or raise NotInstalled."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotInstalled(module) from exc


def measure(table: Table, contenders: list[Contender], rounds: int) -> None:
    """Run the contenders in turns, ``rounds`` rounds, and append one row each to ``table``.

    A contender that raises becomes an ``error`` row (or ``not installed``), not an abort.
    """
    outcomes = take_turns([(c.name, c.fn) for c in contenders], rounds, table.scenario)
    for c in contenders:
        out = outcomes[c.name]
        row = Row(c.name, note=c.note, base=c.base)
        if isinstance(out.error, NotInstalled):
            row.status, row.note = "not installed", f"{out.error} not installed"
        elif out.error is not None:
            row.status, row.note = "error", f"{type(out.error).__name__}: {out.error}"
            CRASHES.append(f"{table.scenario}/{c.name}: " + "".join(traceback.format_exception(out.error)))
        else:
            row.runs = [values for values, _ in out.runs]
            extras = list(dict.fromkeys(note for _, note in out.runs if note))
            row.note = "; ".join([row.note, *extras] if row.note else extras)
        table.rows.append(row)


def derive(table: Table, key: str, fn: Callable[[dict, dict], float | None]) -> None:
    """Add ``key`` to every round of every measured row with a base: fn(this round, base's same round)."""
    for row in table.rows:
        base = table.row(row.base or table.base)
        if row.status != "ok" or base is None or base.status != "ok":
            continue
        for mine, theirs in zip(row.runs, base.runs, strict=False):
            value = fn(mine, theirs)
            if value is not None:
                mine[key] = value


def rounds_title(title: str, rounds: int) -> str:
    return f"{title}; {rounds} round{'s' if rounds != 1 else ''}, contenders taking turns"


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
    note = f"capped by --max-seconds before all {len(items):,} items were put / got (rates over the items done)"
    note = note if len(got) < len(items) else ""
    return {"enq": n / t_put, "deq": len(got) / t_get, "n": n, "elapsed": t_put + t_get}, note


# --------------------------------------------------------------------------- turbo


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
    title = f"turbo: put {args.items:,} small items, then get them all (1 process)"
    table = Table("turbo", rounds_title(title, args.repeat), cols, base="dque turbo")
    table.legend = "   (ratio = per-round items/s divided by the 'dque turbo' row's in the same round)"
    items = make_items(args.items)
    root, cap = args.bench_dir, args.max_seconds

    def pg(opener, label) -> Measurement:
        return lambda: put_get(opener, root, label, items, cap)

    measure(
        table,
        [
            Contender(
                "dque turbo", pg(dque_adapter(True), "dque-turbo"), f"dque.new(turbo=True, segment_size={SEGMENT_SIZE})"
            ),
            Contender(
                "pure-Python os.write loop",
                lambda: ceiling(root, items),
                "pickle5 + len/crc32 header, 1 os.write per record; read back + 8-byte marker write per item",
            ),
            Contender(
                "persistqueue.Queue",
                pg(pq_file_adapter, "pq-file"),
                f"chunksize={SEGMENT_SIZE}, autosave=True, tempdir=queue dir (fsync only when a chunk fills)",
            ),
            Contender(
                "persistqueue.SQLiteQueue",
                pg(pq_sqlite_adapter("OFF"), "pq-sqlite"),
                "auto_commit=True, WAL, PRAGMA synchronous=OFF set on its connection",
            ),
            Contender(
                "queuelib FifoDiskQueue",
                pg(queuelib_adapter, "queuelib"),
                "pickle5 by caller, default chunksize; not crash-safe: head/tail positions saved only at close()",
            ),
            Contender(
                "diskcache.Deque",
                pg(diskcache_adapter, "diskcache"),
                "Deque.fromcache(Cache(eviction_policy='none', sqlite_synchronous=0)), WAL",
            ),
        ],
        args.repeat,
    )
    table.rows.append(Row("Go dque v2 turbo", [{"enq": 310_000, "deq": 93_000}], GO_QUOTE, status="quoted"))
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


RECORD = b"x" * 64


def preallocated(path: str, size: int) -> int:
    """A file with ``size`` bytes of room reserved (posix_fallocate) and that size committed, as dque's segments."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, size)
    os.fsync(fd)
    return fd


def raw_prealloc(root: str, n: int) -> tuple[dict[str, float], str]:
    """pwrite 64 bytes at increasing offsets into pre-allocated room, fdatasync after each: what dque safe mode does."""
    with workdir(root, "raw-prealloc") as path:
        fd = preallocated(os.path.join(path, "f"), n * len(RECORD))
        pwrite, sync, size = os.pwrite, os.fdatasync, len(RECORD)
        start = time.perf_counter()
        for i in range(n):
            pwrite(fd, RECORD, i * size)
            sync(fd)
        elapsed = time.perf_counter() - start
        os.close(fd)
    return {"enq": n / elapsed, "rate": n / elapsed, "elapsed": elapsed}, ""


def raw_append(root: str, n: int) -> tuple[dict[str, float], str]:
    """Append 64 bytes and fdatasync, n times: every sync also commits the file's new size."""
    with workdir(root, "raw-append") as path:
        fd = os.open(os.path.join(path, "f"), APPEND, 0o644)
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, RECORD)
            os.fdatasync(fd)
        elapsed = time.perf_counter() - start
        os.close(fd)
    return {"enq": n / elapsed, "elapsed": elapsed}, ""


class GroupCommitFile:
    """Reference group commit in plain Python: pwrite into pre-allocated room under one lock; the first
    caller that finds no sync running syncs everything written so far for everyone (others wait on a Condition)."""

    def __init__(self, path: str, size: int) -> None:
        self.fd = preallocated(path, size)
        self.cond = threading.Condition()
        self.written = self.synced = self.syncs = 0
        self.syncing = False

    def put(self, record: bytes) -> None:
        with self.cond:
            os.pwrite(self.fd, record, self.written * len(record))
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
    done = n // threads * threads
    with workdir(root, "raw-group") as path:
        f = GroupCommitFile(os.path.join(path, "f"), done * len(RECORD))
        try:
            elapsed = run_threads([[RECORD] * (n // threads)] * threads, f.put)
        finally:
            os.close(f.fd)
    return {"enq": done / elapsed, "per_sync": done / max(1, f.syncs), "elapsed": elapsed}, ""


def scenario_safe(args: argparse.Namespace) -> Table:
    n = args.safe_items
    cols = [Column("enq", "enqueue items/s"), Column("deq", "dequeue items/s")]
    title = f"safe: one fdatasync per operation, {n:,} items of 64 B (raw loops) or small dicts (queues)"
    table = Table("safe", rounds_title(title, args.repeat), cols, base=RAW_PREALLOC)
    table.legend = (
        f"   (ratio = per-round items/s divided by the same round's '{RAW_PREALLOC}';\n"
        f"    the 4-thread rows: divided by their 1-thread row, '{SAFE_1}' and '{RAW_PREALLOC}')"
    )
    items = make_items(n)
    root, cap = args.bench_dir, args.max_seconds
    sync = sqlite_synchronous_default()
    measure(
        table,
        [
            Contender(SAFE_1, lambda: dque_safe_threads(root, items, 1), "dque.new(turbo=False)"),
            Contender(
                SAFE_4,
                lambda: dque_safe_threads(root, items, 4),
                "4 threads enqueue concurrently (total items/s); dequeue 1 thread",
                base=SAFE_1,
            ),
            Contender(
                RAW_PREALLOC, lambda: raw_prealloc(root, n), "posix_fallocate first, as dque's segments; one process"
            ),
            Contender(RAW_APPEND, lambda: raw_append(root, n), "O_APPEND: each sync also commits a new file size"),
            Contender(
                RAW_GROUP,
                lambda: raw_group_commit(root, n, 4),
                "what 4 threads sharing syncs can reach: Condition-based group commit",
                base=RAW_PREALLOC,
            ),
            Contender(
                "persistqueue.SQLiteQueue",
                lambda: put_get(pq_sqlite_adapter(None), root, "pq-sqlite-safe", items, cap),
                f"auto_commit=True, WAL, SQLite default synchronous={sync} (syncs the WAL on every commit)",
            ),
        ],
        args.repeat,
    )
    group = table.row(RAW_GROUP)
    if group and group.status == "ok":
        per_sync = Spread.of([r["per_sync"] for r in group.runs])
        group.note += f"; {per_sync.median:.2f} records per fdatasync (median)"
    table.rows.append(
        Row(
            "persistqueue.Queue",
            note="no fsync-per-operation option (it fsyncs only when a chunk file fills)",
            status="not offered",
        )
    )
    table.rows.append(Row("Go dque v2 safe", [{"enq": 6_700, "deq": 6_300}], GO_QUOTE, status="quoted"))
    return table


# --------------------------------------------------------------------------- batch


def scenario_batch(args: argparse.Namespace) -> Table:
    cols = [Column("enq", "enqueue items/s"), Column("deq", "dequeue items/s")]
    title = (
        f"batch: enqueue_many / dequeue_many of {BATCH} items ({args.items:,}) "
        f"vs one item per call (turbo {args.items:,}, safe {args.safe_items:,})"
    )
    table = Table("batch", rounds_title(title, args.repeat), cols)
    table.legend = "   (ratio = per-round items/s divided by the same round's one-item-per-call row in the same mode)"
    items, safe_items = make_items(args.items), make_items(args.safe_items)
    root, cap = args.bench_dir, args.max_seconds
    measure(
        table,
        [
            Contender(
                "dque turbo, 1 item per call",
                lambda: put_get(dque_adapter(True), root, "dque-turbo", items, cap),
                "enqueue / dequeue",
                base="dque turbo, 1 item per call",
            ),
            Contender(
                f"dque turbo, batches of {BATCH}",
                lambda: dque_batches(root, items, True, cap),
                "turbo=True",
                base="dque turbo, 1 item per call",
            ),
            Contender(
                "dque safe, 1 item per call",
                lambda: dque_safe_threads(root, safe_items, 1),
                "one fdatasync per call",
                base="dque safe, 1 item per call",
            ),
            Contender(
                f"dque safe, batches of {BATCH}",
                lambda: dque_batches(root, items, False, cap),
                "turbo=False: one fdatasync per call",
                base="dque safe, 1 item per call",
            ),
        ],
        args.repeat,
    )
    return table


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


# --------------------------------------------------------------------------- procs

CONSUMERS = 4
STOP = None  # end marker: the producer puts one after its items; each consumer puts it back and leaves
PROCS_WAIT = 30.0  # seconds a consumer waits for an item (or a worker at the barrier) before giving up
PROCS_DQUE = "dque turbo, 1 item per call"
PROCS_MANAGER = "Manager().Queue(), 1 item per put"
PROCS_MPQUEUE = "multiprocessing.Queue, 1 item per put"
PROCS_DQUE_BATCH = f"dque turbo, batches of {BATCH}"
PROCS_MPQUEUE_LISTS = f"multiprocessing.Queue, lists of {BATCH} per put"
PROCS_DQUE_SAFE_BATCH = f"dque safe, batches of {BATCH}"
PROCS_DQUE_SAFE = "dque safe, 1 item per call"
PROCS_RAW_SYNC = "pwrite + fdatasync loop (syncs/s)"


def procs_context():
    """The start method for the producer and consumers: fork where offered (cheapest; lets them inherit)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def procs_api(api: str, q, batch: int) -> tuple[Callable, Callable, Callable]:
    """(put one unit, take one unit as a list of items, put STOP back) for a dque handle or a queue.Queue-like.

    A unit is one item, or ``batch`` items: ``enqueue_many`` / ``dequeue_many`` for dque,
    one list per ``put`` / ``get`` for a queue. A dque batch take that comes back empty
    waits for one item with ``dequeue_block``.
    """
    if api == "dque":
        get_one = lambda: q.dequeue_block(PROCS_WAIT)  # noqa: E731
        if batch > 1:
            return q.enqueue_many, lambda: q.dequeue_many(batch) or [get_one()], q.enqueue
        return q.enqueue, lambda: [get_one()], q.enqueue

    def take() -> list:
        got = q.get(True, PROCS_WAIT)
        return [STOP] if got is STOP else (got if batch > 1 else [got])

    return q.put, take, q.put


def procs_producer(api: str, q, n: int, batch: int, cap: float, barrier, results) -> None:
    """Put items 0..n-1 (one per call, or units of ``batch``), then STOP; report the clock."""
    try:
        put_unit, _, put_stop = procs_api(api, q, batch)
        items = make_items(n)
        units = [items[i : i + batch] for i in range(0, n, batch)] if batch > 1 else items
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
        put_stop(STOP)
        results.put(("producer", start, end, min(n, done * batch)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it in the row
        results.put(("error", "producer", traceback.format_exc()))


def procs_consumer(api: str, q, batch: int, barrier, results) -> None:
    """Take units until STOP, pass STOP on; report the ids taken."""
    try:
        _, take, put_stop = procs_api(api, q, batch)
        ids: list[int] = []
        q.empty()  # connect before the clock starts
        barrier.wait(PROCS_WAIT)
        while True:
            chunk = take()
            if chunk[-1] is STOP:
                ids.extend(item["id"] for item in chunk[:-1])
                break
            ids.extend(item["id"] for item in chunk)
        end = time.perf_counter()
        put_stop(STOP)  # for the next consumer
        results.put(("consumer", end, ids))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it in the row
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
    note = f"capped at {produced:,} of {n:,} items by --max-seconds" if produced < n else ""
    return {"rate": produced / wall, "produce_s": end - start, "wall_s": wall}, note


def owner_startup(root: str, method: str) -> tuple[dict[str, float], str]:
    """Seconds from ``ProcessSafeDQue(context=method)`` until its first call returns."""
    with workdir(root, f"startup-{method}") as path:
        start = time.perf_counter()
        q = dque.ProcessSafeDQue("bench", path, segment_size=SEGMENT_SIZE, turbo=True, context=method)
        try:
            q.size()
            seconds = time.perf_counter() - start
        finally:
            q.close()
    return {"s": seconds}, ""


def procs_contenders(args: argparse.Namespace, ctx) -> list[Contender]:
    n, safe_n, root, cap = args.procs_items, args.procs_safe_items, args.bench_dir, args.max_seconds

    def run(kind: str, batch: int, items: int = n) -> Measurement:
        return lambda: procs_run(ctx, kind, root, items, batch, cap)

    def raw() -> tuple[dict[str, float], str]:
        values, _ = raw_prealloc(root, safe_n)
        return {"rate": values["rate"]}, ""

    return [
        Contender(
            PROCS_DQUE,
            run("dque-turbo", 1),
            "ProcessSafeDQue(turbo=True): enqueue / dequeue_block(timeout)",
            PROCS_MANAGER,
        ),
        Contender(
            PROCS_MANAGER,
            run("manager", 1),
            "in memory, not durable: SyncManager queue.Queue proxy, put / get(timeout)",
            PROCS_MANAGER,
        ),
        Contender(
            PROCS_MPQUEUE,
            run("mpqueue", 1),
            "in memory, not durable: pipe + feeder thread, inherited by the children",
            PROCS_MANAGER,
        ),
        Contender(
            PROCS_DQUE_BATCH,
            run("dque-turbo", BATCH),
            f"enqueue_many / dequeue_many({BATCH}); dequeue_block(timeout) when it comes back empty",
            PROCS_MPQUEUE_LISTS,
        ),
        Contender(
            PROCS_MPQUEUE_LISTS,
            run("mpqueue", BATCH),
            f"in memory, not durable: each put / get moves a list of {BATCH} items",
            PROCS_MPQUEUE_LISTS,
        ),
        Contender(
            PROCS_DQUE_SAFE_BATCH,
            run("dque-safe", BATCH),
            "as the turbo batches, turbo=False: one fdatasync per call",
            PROCS_MPQUEUE_LISTS,
        ),
        Contender(
            PROCS_DQUE_SAFE,
            run("dque-safe", 1, safe_n),
            f"ProcessSafeDQue(turbo=False), {safe_n:,} items: each a durable put and a durable take",
            PROCS_RAW_SYNC,
        ),
        Contender(
            PROCS_RAW_SYNC,
            raw,
            f"one process, {safe_n:,} pwrites of 64 B into pre-allocated room, fdatasync after each",
            PROCS_RAW_SYNC,
        ),
    ]


def scenario_procs(args: argparse.Namespace) -> tuple[Table, Table]:
    ctx = procs_context()
    cols = [Column("rate", "items/s"), Column("produce_s", "producer s", "sec"), Column("wall_s", "wall s", "sec")]
    title = (
        f"procs: 1 producer process -> {CONSUMERS} consumer processes ({ctx.get_start_method()}), "
        f"{args.procs_items:,} small items (safe one per call: {args.procs_safe_items:,}), each consumed exactly once; "
        "items/s = items / (first put to last consumer done)"
    )
    table = Table("procs", rounds_title(title, args.repeat), cols)
    table.legend = "   (ratio = per-round items/s divided by the same round's figure of the row named under 'vs')"
    measure(table, procs_contenders(args, ctx), args.repeat)

    startup = Table(
        "procs-startup",
        rounds_title("procs: owner start-up, ProcessSafeDQue(...) until its first call returns", args.repeat),
        [Column("s", "seconds", "sec")],
    )
    offered = multiprocessing.get_all_start_methods()
    methods = [m for m in ("fork", "spawn", "forkserver") if m in offered]
    notes = {
        "spawn": "a fresh interpreter; re-imports the main module (this script)",
        "forkserver": "the first round also starts the fork server",
    }
    measure(
        startup,
        [Contender(m, lambda m=m: owner_startup(args.bench_dir, m), notes.get(m, "")) for m in methods],
        args.repeat,
    )
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
    title = "leases: take a filled queue's items back, plain take vs lease + ack (1 process; the fill is not timed)"
    table = Table(
        "leases",
        rounds_title(title, args.repeat),
        cols,
        legend="   (base = the plain take in the same mode, under 'vs'; "
        "ratio = per-round items/s divided by the base's in the same round;\n"
        "    time/item vs base = the per-round inverse, the lease+ack cost ratio; "
        "fdatasync counted by wrapping dque._fs.datasync, per item and per take (dequeue, lease) / ack call;\n"
        "    dir fsyncs = dque._fs.sync_dir calls in the whole timed phase; turbo's syncs come from its background "
        "syncer, so they are not split by call)",
    )
    turbo_items, safe_items = make_items(args.items), make_items(args.lease_items)
    root, cap = args.bench_dir, args.max_seconds

    def drain(items: list, turbo: bool, how: str) -> Measurement:
        return lambda: lease_drain(root, items, turbo, how, cap)

    turbo_new = f"dque.new(turbo=True, segment_size={SEGMENT_SIZE})"
    measure(
        table,
        [
            Contender(
                LEASE_DEQ_TURBO,
                drain(turbo_items, True, "dequeue"),
                f"{turbo_new}: dequeue() per item",
                LEASE_DEQ_TURBO,
            ),
            Contender(
                LEASE_TURBO,
                drain(turbo_items, True, "lease"),
                "lease(block=False) + lease.ack() per item",
                LEASE_DEQ_TURBO,
            ),
            Contender(
                LEASE_DEQ_SAFE, drain(safe_items, False, "dequeue"), "turbo=False: dequeue() per item", LEASE_DEQ_SAFE
            ),
            Contender(
                LEASE_SAFE,
                drain(safe_items, False, "lease"),
                "turbo=False: lease(block=False) + lease.ack()",
                LEASE_DEQ_SAFE,
            ),
            Contender(
                LEASE_DEQ_MANY,
                drain(turbo_items, False, "dequeue_many"),
                f"turbo=False: dequeue_many({BATCH})",
                LEASE_DEQ_MANY,
            ),
            Contender(
                LEASE_MANY,
                drain(turbo_items, False, "lease_many"),
                f"turbo=False: lease_many({BATCH}) + ack_many([l.id for l in leases])",
                LEASE_DEQ_MANY,
            ),
        ],
        args.repeat,
    )
    derive(table, "cost", lambda mine, base: base["rate"] / mine["rate"])
    return table


# --------------------------------------------------------------------------- large items

LARGE_DD = "dd bs=1M conv=fdatasync"
LARGE_PY_ONE_SYNC = "Python os.write 1 MB blocks + one fdatasync"
LARGE_PY_EACH_SYNC = "Python os.write 1 MB + fdatasync per block"
LARGE_TURBO = "dque turbo, 1 MB items"
LARGE_SAFE = "dque safe, 1 MB items"

_LARGE_CHILD = r"""
import json, sys, time
import dque

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

root, count, turbo = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "turbo"
item = b"x" * 2**20
q = dque.new("large", root, turbo=turbo)
before = status("VmHWM")
start = time.perf_counter()
for _ in range(count):
    q.enqueue(item)
if turbo:
    q.turbo_sync()
enq = time.perf_counter() - start
start = time.perf_counter()
taken = 0
for _ in range(count):
    taken += len(q.dequeue())
deq = time.perf_counter() - start
q.close()
print(json.dumps({"enq_s": enq, "deq_s": deq, "taken": taken, "hwm_growth": status("VmHWM") - before}))
"""


def fresh_python(code: str, *argv: str, timeout: float = 900) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter that imports the same dque as this one."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(dque.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def child_json(code: str, *argv: str) -> dict:
    """Run ``code`` in a fresh interpreter; its last stdout line, as JSON."""
    proc = fresh_python(code, *argv)
    out, err = proc.communicate(timeout=900)
    if proc.returncode:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


def large_dque(root: str, count: int, turbo: bool) -> tuple[dict[str, float], str]:
    with workdir(root, f"large-{'turbo' if turbo else 'safe'}") as path:
        out = child_json(_LARGE_CHILD, path, str(count), "turbo" if turbo else "safe")
    if out["taken"] != count * MB:
        raise AssertionError(f"took {out['taken']:,} bytes back, {count * MB:,} were put")
    return {"mbps": count / out["enq_s"], "deq_mbps": count / out["deq_s"], "rss": out["hwm_growth"] / MB}, ""


def large_dd(root: str, count: int) -> tuple[dict[str, float], str]:
    """``dd if=/dev/zero of=FILE bs=1M count=N conv=fdatasync``, its own bytes and seconds parsed."""
    if shutil.which("dd") is None:
        raise NotInstalled("dd")
    with workdir(root, "large-dd") as path:
        proc = subprocess.run(
            ["dd", "if=/dev/zero", f"of={os.path.join(path, 'f')}", "bs=1M", f"count={count}", "conv=fdatasync"],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            check=True,
            timeout=900,
        )
    m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", proc.stderr)
    if not m:
        raise RuntimeError(f"could not parse dd's report: {proc.stderr.strip()!r}")
    return {"mbps": int(m[1]) / MB / float(m[2])}, ""


def large_python(root: str, count: int, sync_each: bool) -> tuple[dict[str, float], str]:
    """os.write of 1 MB blocks to a new file, with an fdatasync after each block or once at the end."""
    block = b"x" * MB
    with workdir(root, "large-py") as path:
        fd = os.open(os.path.join(path, "f"), os.O_WRONLY | os.O_CREAT, 0o644)
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, block)
            if sync_each:
                os.fdatasync(fd)
        os.fdatasync(fd)
        elapsed = time.perf_counter() - start
        os.close(fd)
    return {"mbps": count / elapsed}, ""


def scenario_large(args: argparse.Namespace) -> Table:
    count, root = args.large_mb, args.bench_dir
    cols = [
        Column("mbps", "write MB/s"),
        Column("deq_mbps", "dequeue MB/s", ratio=False),
        Column("rss", "peak RSS growth MB", "mb"),
    ]
    title = (
        f"large: {count:,} items of 1 MB ({count:,} MB in all; issue 10's target is stated for 2 GB), "
        "written then taken back; dque in a fresh process each, "
        "RSS growth = its VmHWM after the drain minus before the fill"
    )
    table = Table("large", rounds_title(title, args.repeat), cols)
    table.legend = "   (ratio = per-round MB/s divided by the same round's figure of the row named under 'vs')"
    measure(
        table,
        [
            Contender(
                LARGE_DD,
                lambda: large_dd(root, count),
                "dd's own report: bytes / seconds, including its final fdatasync",
                LARGE_DD,
            ),
            Contender(
                LARGE_PY_ONE_SYNC,
                lambda: large_python(root, count, False),
                "one process, a new file, like dd",
                LARGE_DD,
            ),
            Contender(
                LARGE_PY_EACH_SYNC,
                lambda: large_python(root, count, True),
                "what safe mode's durability costs without a queue",
                LARGE_PY_EACH_SYNC,
            ),
            Contender(
                LARGE_TURBO,
                lambda: large_dque(root, count, True),
                "dque.new(turbo=True), default segment size; "
                "enqueue timed through a final turbo_sync(), like dd's fdatasync",
                LARGE_DD,
            ),
            Contender(
                LARGE_SAFE,
                lambda: large_dque(root, count, False),
                "dque.new(turbo=False): one fdatasync per enqueue",
                LARGE_PY_EACH_SYNC,
            ),
        ],
        args.repeat,
    )
    return table


# --------------------------------------------------------------------------- reopen

REOPEN_SMALL = 1_000

_FILL_CHILD = r"""
import json, os, signal, sys, time
import dque

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

root, n, segment_size, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
q = dque.new("q", root, segment_size=segment_size, turbo=True)
for base in range(0, n, 1000):
    q.enqueue_many([{"name": "Joe", "id": i} for i in range(base, min(n, base + 1000))])
print(json.dumps({"fill_s": time.perf_counter() - start, "rss": rss()}), flush=True)
if end == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
q.close()
"""

_OPEN_CHILD = r"""
import gc, json, sys, time
import dque

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

start = time.perf_counter()
q = dque.open("q", sys.argv[1])
seconds = time.perf_counter() - start
head, size = q.peek(), q.size()
gc.collect()
out = {"open_s": seconds, "rss": rss(), "size": size, "head": head}
q.close()
print(json.dumps(out))
"""


def fill_queue(path: str, n: int, end: str) -> dict:
    """Fill a queue of n items in a fresh process that then closes it (end='close') or SIGKILLs itself ('kill')."""
    proc = fresh_python(_FILL_CHILD, path, str(n), str(SEGMENT_SIZE), end)
    out, err = proc.communicate(timeout=900)
    expected = -signal.SIGKILL if end == "kill" else 0
    if proc.returncode != expected:
        raise RuntimeError(f"fill child ended with {proc.returncode}, expected {expected}:\n{err.strip()}")
    return json.loads(out.strip().splitlines()[0])


def reopen(root: str, n: int, end: str) -> tuple[dict[str, float], str]:
    with workdir(root, f"reopen-{end}-{n}") as path:
        fill = fill_queue(path, n, end)
        opened = child_json(_OPEN_CHILD, path)
        disk = sum(e.stat().st_size for e in os.scandir(os.path.join(path, "q"))) / MB
    if opened["size"] != n or opened["head"] != {"name": "Joe", "id": 0}:
        raise AssertionError(
            f"reopened: size() {opened['size']}, head {opened['head']!r}; expected {n} items from id 0"
        )
    return {
        "open_s": opened["open_s"],
        "open_rss": opened["rss"] / MB,
        "fill_rss": fill["rss"] / MB,
        "fill_s": fill["fill_s"],
        "disk": disk,
    }, ""


def scenario_reopen(args: argparse.Namespace) -> Table:
    n, root = args.reopen_items, args.bench_dir
    cols = [
        Column("open_s", "open s", "sec"),
        Column("open_rss", "RSS after open MB", "mb"),
        Column("fill_rss", "RSS after fill MB", "mb"),
        Column("fill_s", "fill s", "sec"),
        Column("disk", "disk MB", "mb"),
    ]
    title = (
        f"reopen: dque.open of a queue of {n:,} small items in a fresh process (turbo fill with enqueue_many(1000), "
        f"segment_size={SEGMENT_SIZE}, in another fresh process)"
    )
    table = Table("reopen", rounds_title(title, args.repeat), cols)
    clean, killed, small = (
        f"{n:,} items, clean close",
        f"{n:,} items, SIGKILL after fill",
        f"{REOPEN_SMALL:,} items, clean close",
    )
    measure(
        table,
        [
            Contender(clean, lambda: reopen(root, n, "close"), "the filling process closed the queue"),
            Contender(
                killed,
                lambda: reopen(root, n, "kill"),
                "the filling process SIGKILLed itself right after its last enqueue_many",
            ),
            Contender(small, lambda: reopen(root, REOPEN_SMALL, "close"), "baseline for the memory growth below"),
        ],
        args.repeat,
    )
    big, base = table.row(clean), table.row(small)
    if big and base and big.status == base.status == "ok":
        growth = [
            {k: b[k] - s[k] for k in ("open_rss", "fill_rss", "disk")} for b, s in zip(big.runs, base.runs, strict=True)
        ]
        table.rows.append(Row(f"growth ({n:,} - {REOPEN_SMALL:,})", growth, "RSS difference, round by round"))
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
    return f"{0.0 if abs(value) < 0.05 else value:,.1f}"  # no "-0.0"


def fmt_spread(spread: Spread | None, kind: str) -> str:
    """'median [min–max]', or just the figure when there was one round."""
    if spread is None:
        return "-"
    if spread.n == 1 or spread.low == spread.high:
        return fmt(spread.median, kind)
    inner = "count" if kind == "x" else kind  # 0.95x [0.90–1.02]
    return f"{fmt(spread.median, kind)} [{fmt(spread.low, inner)}–{fmt(spread.high, inner)}]"


def render(table: Table) -> str:
    with_vs = any(r.base and r.base != r.name for r in table.rows) and not table.base
    headers = ["contender"]
    for col in table.columns:
        headers.append(col.header)
        if col.kind == "rate" and col.ratio:
            headers.append("ratio")
    if with_vs:
        headers.append("vs")
    headers.append("note")
    lines = []
    for row in table.rows:
        shown = row.status in ("ok", "quoted")
        cells = [row.name]
        for col in table.columns:
            cells.append(
                fmt_spread(row.spread(col.key), col.kind) if shown else (row.status if col is table.columns[0] else "")
            )
            if col.kind == "rate" and col.ratio:
                cells.append(fmt_spread(table.ratio(row.name, col.key), "x") if shown else "")
        if with_vs:
            cells.append(row.base if row.base and row.base != row.name and shown else "")
        cells.append(row.note)
        lines.append(cells)
    widths = [max(len(str(c[i])) for c in [headers, *lines]) for i in range(len(headers) - 1)]
    out = [f"== {table.title}"]
    if table.legend:
        out.append(table.legend)
    out.append("   (cells: median [min–max] of the rounds)")
    for cells in [headers, *lines]:
        left = [str(cells[0]).ljust(widths[0])] + [
            str(c).rjust(w) for c, w in zip(cells[1:-1], widths[1:], strict=True)
        ]
        out.append("  ".join(left) + "  " + cells[-1])
    return "\n".join(out)


Check = tuple[str, str, bool | None]  # (goal, what was measured, passed; None when it did not run)


def ratio_check(goal: str, t: Table | None, name: str, base: str, key: str, at_least: float) -> Check:
    """PASS when the median of the per-round ratios of ``name`` to ``base`` reaches ``at_least``."""
    spread = t.ratio(name, key, base) if t else None
    if spread is None:
        return goal, "n/a", None
    return goal, fmt_spread(spread, "x"), spread.median >= at_least


def verdict(tables: dict[str, Table], args: argparse.Namespace) -> list[Check]:
    """One check per target of issue 10, from this run's medians."""
    p, large, reopened = tables.get("procs"), tables.get("large"), tables.get("reopen")
    return [
        ratio_check("procs 1 item per call, turbo >= 3x Manager().Queue()", p, PROCS_DQUE, PROCS_MANAGER, "rate", 3.0),
        ratio_check(
            f"procs batches of {BATCH}, turbo >= 0.5x multiprocessing.Queue lists of {BATCH}",
            p,
            PROCS_DQUE_BATCH,
            PROCS_MPQUEUE_LISTS,
            "rate",
            0.5,
        ),
        ratio_check(
            "procs safe, 1 item per call >= 0.8x fdatasync loop", p, PROCS_DQUE_SAFE, PROCS_RAW_SYNC, "rate", 0.8
        ),
        ratio_check("1 MB items, turbo enqueue >= 0.5x dd", large, LARGE_TURBO, LARGE_DD, "mbps", 0.5),
        large_rss_check(large, args),
        reopen_check(reopened, args),
        ("no regression in the single-process engine rows", "n/a (needs two trees: stress/ab.py)", None),
    ]


def large_rss_check(t: Table | None, args: argparse.Namespace) -> Check:
    goal = f"1 MB items, peak RSS growth <= 64 MB (ran {args.large_mb:,} MB; target for 2 GB)"
    figures = [(name, t.value(name, "rss")) for name in (LARGE_TURBO, LARGE_SAFE)] if t else []
    figures = [(name, v) for name, v in figures if v is not None]
    if not figures:
        return goal, "n/a", None
    shown = ", ".join(f"{name.split(',')[0].removeprefix('dque ')} {v:+.0f} MB" for name, v in figures)
    return goal, shown, max(v for _, v in figures) <= 64


def reopen_check(t: Table | None, args: argparse.Namespace) -> Check:
    n = args.reopen_items
    goal = f"reopen after SIGKILL < 1 s (ran {n:,} items" + ("" if n >= 10_000_000 else "; target for 10M") + ")"
    row = t.row(f"{n:,} items, SIGKILL after fill") if t else None
    spread = row.spread("open_s") if row else None
    if spread is None:
        return goal, "n/a", None
    return goal, fmt_spread(spread, "sec") + " s", spread.median < 1.0


def verdict_line(checks: list[Check], quick: bool) -> str:
    parts = [
        f"{goal}: n/a"
        if ok is None and measured == "n/a"
        else f"{goal}: {measured}" + ("" if ok is None else (" PASS" if ok else " MISS"))
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
    """One panel of grouped bars per throughput table: medians, with the rounds' min–max as error bars.

    Only rows measured in this run are drawn (quoted figures from elsewhere stay in the text tables)."""
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
        rows = [r for r in table.rows if r.status == "ok" and r.runs]  # measured here: no quoted figures
        cols = [c for c in table.columns if c.kind == "rate"]
        present = [s.median for r in rows for c in cols if (s := r.spread(c.key))]
        highest = max((s.high for r in rows for c in cols if (s := r.spread(c.key))), default=1)
        log = bool(present) and max(present) / min(present) > CHART_LOG_SPREAD
        width = 0.8 / len(cols)
        for i, col in enumerate(cols):
            xs = [j - 0.4 + width * (i + 0.5) for j in range(len(rows))]
            spreads = [r.spread(col.key) for r in rows]
            heights = [s.median if s else math.nan for s in spreads]
            errs = [
                [s.median - s.low if s else 0 for s in spreads],
                [s.high - s.median if s else 0 for s in spreads],
            ]
            bars = ax.bar(
                xs, heights, width * 0.95, yerr=errs, capsize=2, label=col.header, color=colors[i % len(colors)]
            )
            labels = ["" if math.isnan(h) else compact(h) for h in heights]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([wrap_label(r.name) for r in rows], fontsize=8)
        for tick, row in zip(ax.get_xticklabels(), rows, strict=True):
            if row.name.startswith("dque"):
                tick.set_fontweight("bold")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        unit = "MB/s" if "MB/s" in cols[0].header else "items/s"
        if log:
            ax.set_yscale("log")
            ax.set_ylim(min(present) / 2, highest * 4)
            ax.set_ylabel(f"{unit} (log scale)")
        else:
            ax.set_ylim(0, highest * 1.15)
            ax.set_ylabel(unit)
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(textwrap.fill(table.title, 130), fontsize=9.5)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
    fig.suptitle(
        "dque benchmark: throughput, higher is better; bars = median of the rounds, whiskers = min–max (bold: dque)\n"
        + machine_summary(machine),
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
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


# --------------------------------------------------------------------------- main

SIZES = {  # flag: (full run, --quick, help)
    "items": (100_000, 2_000, "items for turbo, batch and leases"),
    "safe_items": (3_000, 200, "items for the fdatasync-per-op rows of safe and batch"),
    "procs_items": (50_000, 2_000, "items moved between processes in procs"),
    "procs_safe_items": (3_000, 300, "items for procs' safe one-per-call row and its fdatasync loop"),
    "lease_items": (2_000, 200, "items for the safe one-per-call rows of leases"),
    "large_mb": (256, 16, "1 MB items in the large scenario (its total MB)"),
    "reopen_items": (1_000_000, 20_000, "items in the reopened queue (10000000 for issue 10's target size)"),
    "max_seconds": (5.0, 5.0, "cap on one timed phase of one contender"),
    "repeat": (3, 2, "rounds; in each, every contender of a table runs once, taking turns"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Scenarios: " + ", ".join(SCENARIOS) + ". See the module docstring.",
    )
    for key, (full, quick, what) in SIZES.items():
        kind = float if isinstance(full, float) else int
        p.add_argument("--" + key.replace("_", "-"), type=kind, help=f"{what} (default {full}; --quick: {quick})")
    p.add_argument("--quick", action="store_true", help="smoke run with tiny sizes, about 20 s (for CI)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of: " + ",".join(SCENARIOS))
    p.add_argument("--dir", help="put temporary queues in a fresh directory under DIR (default: the current directory)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    p.add_argument("--chart", metavar="PATH.png", help="draw the throughput tables to PATH.png (needs matplotlib)")
    p.add_argument("--profile", action="store_true", help="also cProfile dque's turbo enqueue/dequeue loops")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    for key, (full, quick, _) in SIZES.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be at least 1")
    return args


def run(args: argparse.Namespace) -> dict[str, Table]:
    scenarios = {
        "turbo": scenario_turbo,
        "safe": scenario_safe,
        "batch": scenario_batch,
        "leases": scenario_leases,
        "large": scenario_large,
        "reopen": scenario_reopen,
    }
    tables: dict[str, Table] = {}
    for name in SCENARIOS:
        if name not in args.scenarios:
            continue
        print(f"running {name} ...", file=sys.stderr)
        if name == "procs":
            tables[name], tables["procs-startup"] = scenario_procs(args)
        else:
            tables[name] = scenarios[name](args)
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = os.path.abspath(args.dir or os.getcwd())
    args.bench_dir = tempfile.mkdtemp(prefix="dque-bench-", dir=parent)
    started = time.monotonic()
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
    machine["run took"] = f"{time.monotonic() - started:.0f} s"
    print("dque benchmark" + (" (--quick)" if args.quick else ""))
    for key, value in machine.items():
        print(f"  {key:<10} {value}")
    print("  sizes      " + ", ".join(f"--{k.replace('_', '-')} {getattr(args, k):,}" for k in SIZES))
    for table in tables.values():
        print()
        print(render(table))
    checks = verdict(tables, args)
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
