"""SIGKILL loop: kill producers, consumers and owners of a dque at random moments, restart them, check.

Run it from the repository root with the project's virtualenv::

    python stress/crash_loop.py                     # 60 s, every mode, safe and turbo alternating
    python stress/crash_loop.py --quick             # a few seconds (CI smoke run)
    python stress/crash_loop.py --mode lease --turbo --cycles 20 --seed 7
    python stress/crash_loop.py --backend redis     # RedisQueue and a redis-server it kills too (see below)

Each cycle works on a fresh queue (random small segment size, so that segments
roll over and get deleted all the time) in its own directory under ``--dir``:

``dque``
    Plain ``DQue``: one process at a time holds the queue (the lock), so each
    incarnation of the worker is, at random, a producer thread plus a consumer
    thread sharing the handle, one thread doing random mixed calls (enqueue,
    enqueue_many, dequeue, dequeue_many, lease/lease_many, ack/ack_many,
    release, peek, size, reopen), a producer only, or a consumer only.
``process``
    ``ProcessSafeDQue``: an owner role (a process that creates the handle, so
    its owner server is a grandchild of this script), a producer client and two
    consumer clients (dequeue_block / dequeue / dequeue_many).
``lease``
    Like ``process``, but the two consumers take items with lease/lease_many and
    settle them with ack/ack_many (sometimes release), holding a few at a time.

A cycle kills one or two random processes with SIGKILL at random moments (for
the ProcessSafeDQue modes: a client, the owner server itself, or the process
that created it), restarts each, lets the new incarnation run, then stops
everything (gracefully, or with SIGKILL) and checks the queue against the
ledger: a checker opens the queue with ``dque.open`` and drains it.

The ledger lives outside the queue: every worker thread appends one line per
event to its own file with one unbuffered ``os.write`` (so a SIGKILL never tears
or loses a line that was written): ``b <op> ...`` before a call and, right
after it returned, ``enq <id>...``, ``deq <id>...``, ``lease <id>...``,
``ack <t> <id>...``, or ``x <error>`` if it raised (its outcome is unknown, e.g.
OwnerGoneError). The checks, per cycle:

* lost: every id whose enqueue returned is accounted for (a returned dequeue, a
  returned ack, or still in the queue), except at most the items of a dequeue
  call whose outcome is unknown (in flight at a kill: plain dequeue is
  at-most-once) and the ids of an ack in flight;
* duplicated: no id is taken twice by returned dequeues/acks or found in the
  queue after its dequeue/ack returned; no lease of an id begins after an ack of
  it returned (lease mode: redelivery of items not acked is fine);
* corrupt opens: no open (worker restart or checker) fails with a DQueError,
  and draining finds no damage; no item comes out damaged, none that was never
  enqueued, and each producer's items are drained in order.

In turbo mode a killed process must lose nothing either (its bytes are in the
OS), so the checks are the same. The run ends with::

    cycles: C, items: N, lost: 0, duplicated: 0, corrupt opens: 0
    VERDICT: CLEAN

(exit status 0), or ``VERDICT: NOT CLEAN (...)`` and exit status 1. A failed
cycle's directory is kept (and named) for inspection.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from _items import Damaged, ident, item  # stress/_items.py
from _verdict import count, verdict  # stress/_verdict.py

import dque

NAME = "q"
MODES = ("dque", "process", "lease")
DQUE_STYLES = ("threads", "mixed", "prod", "cons")
ID_BASE = 10**7  # id = tag * ID_BASE + sequence number: unique across every incarnation of a run
EXIT_CORRUPT_OPEN = 4
EXIT_OWNER_GONE = 3
PAUSES = (0.0, 0.0, 0.05, 0.3)  # per worker: the odds of a 5 ms nap after a call (queues fill up or run dry)
PATIENCE = 30.0  # seconds a worker may take to open/attach before it is a failure


# =========================================================================== worker side (items: stress/_items.py)

STOP = threading.Event()


class Ledger:
    """One append-only ledger file; each line is one os.write, so it survives SIGKILL whole."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def __call__(self, *words: object) -> None:
        os.write(self.fd, (" ".join(map(str, words)) + "\n").encode())


def now_ns() -> int:
    return time.monotonic_ns()  # CLOCK_MONOTONIC: comparable across the processes of one machine


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the process that started us dies, so a killed orchestrator leaves no strays."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:
                os._exit(1)


class Ids:
    def __init__(self, tag: int) -> None:
        self.next = tag * ID_BASE

    def take(self, n: int) -> list[int]:
        ids = list(range(self.next, self.next + n))
        self.next += n
        return ids


def ready(logdir: str, tag: int, text: str = "ok") -> None:
    path = os.path.join(logdir, f"{tag}.ready")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def open_plain(args: argparse.Namespace, log: Ledger) -> dque.DQue:
    """dque.open, retrying while the lock is still held; a DQueError at open is a corrupt open (exit 4)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return dque.open(NAME, args.qdir, turbo=args.turbo)
        except dque.LockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        except dque.DQueError as exc:
            log("corrupt-open", repr(exc).replace("\n", " ")[:300])
            os._exit(EXIT_CORRUPT_OPEN)


def attach_client(args: argparse.Namespace, log: Ledger) -> dque.ProcessSafeDQue:
    """dque.attach, retrying while there is no live owner (it is being restarted)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        if STOP.is_set():
            raise SystemExit(0)
        try:
            return dque.attach(NAME, args.qdir)
        except dque.OwnerGoneError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Worker:
    """The calls of one thread, each logged before and after; ``q`` may be a DQue or a ProcessSafeDQue."""

    def __init__(self, q: object, log: Ledger, ids: Ids, rng: random.Random, turbo: bool, pause: float = 0.0) -> None:
        self.q = q
        self.pause = pause  # the odds of a 5 ms nap after a call: how fast this worker goes
        self.log = log
        self.ids = ids
        self.rng = rng
        self.turbo = turbo
        self.held: list[dque.Lease] = []
        self.enqueued = 0

    def pace(self) -> None:
        if self.pause and self.rng.random() < self.pause:
            time.sleep(0.005)

    def produce(self) -> None:
        rng = self.rng
        n = 1 if rng.random() < 0.6 else rng.randint(2, 6)
        ids = self.ids.take(n)
        self.log("b", "enq", *ids)
        if n == 1 and rng.random() < 0.8:
            self.q.enqueue(item(ids[0]))
        else:
            self.q.enqueue_many([item(i) for i in ids])
        self.log("enq", *ids)
        self.enqueued += n
        if self.enqueued % 32 < n and self.q.size() > 3000:
            time.sleep(0.05)  # do not let the producers run far ahead in turbo mode

    def take(self, block: bool) -> int:
        rng = self.rng
        n = 1 if rng.random() < 0.6 else rng.randint(2, 6)
        self.log("b", "deq", now_ns(), n)
        if n == 1:
            try:
                got = [self.q.dequeue_block(timeout=0.1) if block else self.q.dequeue()]
            except dque.Empty:
                got = []
        else:
            got = self.q.dequeue_many(n)
        self.checked("deq", got)
        return len(got)

    def checked(self, what: str, got: list, *prefix: object) -> list[int]:
        ids = []
        bad = []
        for x in got:
            try:
                ids.append(ident(x))
            except Damaged as exc:
                bad.append(str(exc))
        self.log(what, *prefix, *ids)
        for text in bad:
            self.log("bad", text.replace("\n", " "))
        return ids

    def lease(self, block: bool) -> int:
        rng = self.rng
        n = 1 if rng.random() < 0.6 else rng.randint(2, 4)
        self.log("b", "lease", now_ns(), n)
        if n == 1:
            try:
                leases = [self.q.lease(timeout=0.1) if block else self.q.lease(block=False)]
            except dque.Empty:
                leases = []
        else:
            leases = self.q.lease_many(n)
        self.checked("lease", [lease.item for lease in leases])
        self.held.extend(leases)
        return len(leases)

    def settle(self, keep: int) -> None:
        """Ack (sometimes release) held leases until at most ``keep`` are left."""
        rng = self.rng
        while len(self.held) > keep:
            k = min(len(self.held) - keep, 1 if rng.random() < 0.6 else rng.randint(1, 4))
            batch = [self.held.pop(rng.randrange(len(self.held))) for _ in range(k)]
            ids = [lease.item[0] for lease in batch]
            if rng.random() < 0.1:
                self.log("b", "rel", *ids)
                self.q.release_many([lease.id for lease in batch])
                self.log("rel", *ids)
                continue
            self.log("b", "ack", *ids)
            if k == 1 and rng.random() < 0.5:
                batch[0].ack()
            else:
                self.q.ack_many([lease.id for lease in batch])
            self.log("ack", now_ns(), *ids)

    def misc(self) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            try:
                self.q.peek()
            except dque.Empty:
                pass
        elif r < 0.7:
            self.q.size()
        elif r < 0.85:
            self.q.in_flight()
        elif self.turbo:
            self.q.turbo_sync()


def run_plain(args: argparse.Namespace) -> None:
    """A DQue worker: one of DQUE_STYLES, until SIGTERM (then it closes the queue) or SIGKILL."""
    rng = random.Random(args.seed)
    logdir, tag = args.logdir, args.tag
    log = Ledger(os.path.join(logdir, f"{tag}.log"))
    style = args.style
    q = open_plain(args, log)
    ids = Ids(tag)
    ready(logdir, tag)
    if style == "threads":
        plog = Ledger(os.path.join(logdir, f"{tag}-p.log"))
        errors: list[str] = []

        def guarded(fn, *a) -> None:
            try:
                fn(*a)
            except BaseException:
                errors.append(traceback.format_exc())
                STOP.set()

        def produce(w: Worker) -> None:
            while not STOP.is_set():
                w.produce()
                w.pace()

        def consume(w: Worker) -> None:
            while not STOP.is_set():
                r = w.rng.random()
                if r < 0.55:
                    w.take(block=True)
                elif r < 0.9:
                    w.lease(block=True)
                    w.settle(w.rng.randint(0, 3))
                else:
                    w.misc()
                w.pace()
            w.settle(0)

        pw = Worker(q, plog, ids, random.Random(rng.random()), args.turbo, args.pause)
        cw = Worker(q, log, ids, random.Random(rng.random()), args.turbo, args.pause2)
        threads = [
            threading.Thread(target=guarded, args=(produce, pw)),
            threading.Thread(target=guarded, args=(consume, cw)),
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
        if errors:
            sys.stderr.write("".join(errors))
            os._exit(5)
        q.close()
        return
    w = Worker(q, log, ids, rng, args.turbo, args.pause)
    while not STOP.is_set():
        w.pace()
        r = rng.random()
        if style == "prod" or (style == "mixed" and r < 0.45):
            w.produce()
        elif style == "cons" or r < 0.65:
            if w.take(block=False) == 0:
                time.sleep(0.002)
        elif r < 0.85:
            w.lease(block=False)
            w.settle(rng.randint(0, 4))
        elif r < 0.97:
            w.misc()
        else:
            # close and reopen: leases not acked are forgotten (the items are ready again)
            log("b", "reopen")
            q.close()
            w.held.clear()
            q = w.q = open_plain(args, log)
            log("reopen")
    w.settle(0)
    q.close()


def run_owner(args: argparse.Namespace) -> None:
    """Create the ProcessSafeDQue (start its owner server) and watch it until SIGTERM or its death."""
    log = Ledger(os.path.join(args.logdir, f"{args.tag}.log"))
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            q = dque.ProcessSafeDQue(NAME, args.qdir, turbo=args.turbo)
            break
        except dque.LockedError:
            # the previous owner server (its creator was killed) has not released the lock yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        except dque.DQueError as exc:
            log("corrupt-open", repr(exc).replace("\n", " ")[:300])
            os._exit(EXIT_CORRUPT_OPEN)
    with open(os.path.join(args.qdir, NAME, "dque.owner")) as f:
        server = json.load(f)["pid"]
    log("R", server)
    ready(args.logdir, args.tag, str(server))
    while not STOP.wait(0.05):
        try:
            q.size()
        except dque.OwnerGoneError:
            log("gone")
            q.close()
            os._exit(EXIT_OWNER_GONE)
    q.close()


def run_client(args: argparse.Namespace) -> None:
    """A ProcessSafeDQue client (producer, consumer or leaser) that reattaches when the owner is restarted."""
    rng = random.Random(args.seed)
    log = Ledger(os.path.join(args.logdir, f"{args.tag}.log"))
    q = attach_client(args, log)
    ready(args.logdir, args.tag)
    w = Worker(q, log, Ids(args.tag), rng, args.turbo, args.pause)
    role = args.role
    while not STOP.is_set():
        w.pace()
        try:
            if role == "producer":
                w.produce()
            elif role == "consumer":
                r = rng.random()
                if r < 0.9:
                    if w.take(block=r < 0.5) == 0 and r >= 0.5:
                        time.sleep(0.002)
                else:
                    w.misc()
            else:  # leaser
                r = rng.random()
                if r < 0.9:
                    if w.lease(block=r < 0.6) == 0 and r >= 0.6:
                        time.sleep(0.002)
                    w.settle(rng.randint(0, 3))
                else:
                    w.misc()
        except (dque.OwnerGoneError, dque.ClosedError) as exc:
            # ClosedError: the owner server closed the queue because its creator died (it exits next);
            # dque raises that rather than OwnerGoneError for a moment (see the report).
            log("x", type(exc).__name__)
            log("drop", *[lease.item[0] for lease in w.held])  # leases of a dead owner are gone with it
            w.held.clear()
            with contextlib.suppress(Exception):
                q.close()
            q = w.q = attach_client(args, log)
    try:
        w.settle(0)
        q.close()
    except (dque.OwnerGoneError, dque.ClosedError):
        pass


def worker_main(args: argparse.Namespace) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's business: it kills us
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    if args.role == "plain":
        run_plain(args)
    elif args.role == "owner":
        run_owner(args)
    else:
        run_client(args)


# =========================================================================== the ledger, read back


@dataclass
class Book:
    """What the ledgers of one cycle say."""

    started_enq: set[int] = field(default_factory=set)
    acked_enq: set[int] = field(default_factory=set)
    taken: Counter = field(default_factory=Counter)  # ids returned by dequeues and acks
    ack_time: dict[int, int] = field(default_factory=dict)  # id -> earliest ack return (ns)
    lease_starts: list[tuple[int, int]] = field(default_factory=list)  # (id, ns before the lease call)
    unknown_deq: int = 0  # max items of dequeue calls whose outcome is unknown
    unknown_ack: set[int] = field(default_factory=set)  # ids of ack calls whose outcome is unknown
    bad: list[str] = field(default_factory=list)
    corrupt_opens: list[str] = field(default_factory=list)
    closed_errors: int = 0  # client calls that got ClosedError from an owner shutting down


def read_ledgers(logdir: str) -> Book:
    book = Book()
    for name in sorted(os.listdir(logdir)):
        if name.endswith(".log"):
            read_ledger(os.path.join(logdir, name), book)
    return book


def read_ledger(path: str, book: Book) -> None:
    with open(path) as f:
        text = f.read()
    pending: list[str] | None = None

    def unresolved(p: list[str]) -> None:
        if p[1] == "deq":
            book.unknown_deq += int(p[3])
        elif p[1] == "ack":
            book.unknown_ack.update(int(x) for x in p[2:])

    for line in text.split("\n")[:-1]:  # a line without its newline was never complete
        w = line.split()
        if not w:
            continue
        kind = w[0]
        if kind == "b":
            if pending is not None:
                unresolved(pending)
            pending = w
            if w[1] == "enq":
                book.started_enq.update(int(x) for x in w[2:])
            continue
        if kind == "x":
            book.closed_errors += w[1:2] == ["ClosedError"]
            if pending is not None:
                unresolved(pending)
            pending = None
        elif kind == "enq":
            book.acked_enq.update(int(x) for x in w[1:])
            pending = None
        elif kind == "deq":
            book.taken.update(int(x) for x in w[1:])
            pending = None
        elif kind == "lease":
            assert pending is not None and pending[1] == "lease", f"{path}: {line!r} after {pending}"
            book.lease_starts.extend((int(x), int(pending[2])) for x in w[1:])
            pending = None
        elif kind == "ack":
            t = int(w[1])
            for x in w[2:]:
                i = int(x)
                book.taken[i] += 1
                book.ack_time[i] = min(t, book.ack_time.get(i, t))
            pending = None
        elif kind in ("rel", "reopen"):
            pending = None
        elif kind == "bad":
            book.bad.append(f"{os.path.basename(path)}: damaged item {line[4:]}")
        elif kind == "corrupt-open":
            book.corrupt_opens.append(f"{os.path.basename(path)}: {line[13:]}")
        elif kind not in ("R", "gone", "drop"):
            raise AssertionError(f"{path}: unknown ledger line {line!r}")
    if pending is not None:
        unresolved(pending)


# =========================================================================== orchestrator


def set_subreaper() -> bool:
    """Linux: adopt orphaned descendants (an owner server whose creator we killed), so we can reap them."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(Exception):
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    return False


def children_of(pid: int) -> list[int]:
    """Live (or zombie) processes whose parent is ``pid``, from /proc."""
    out = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and int(fields[1]) == pid:
                out.append(int(entry))
    return out


def reap_pid(pid: int) -> bool:
    """Reap ``pid`` if it is our child and has exited; True if it is gone (or not ours)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not os.path.exists(f"/proc/{pid}")
    return done == pid


@dataclass
class Proc:
    slot: str
    role: str
    tag: int
    popen: subprocess.Popen
    err: str
    expect_exit: bool = False


class Team:
    """The processes of one cycle; every one is killed (if needed) and reaped by ``shutdown``."""

    def __init__(self, cdir: str, logdir: str, turbo: bool, rng: random.Random, tags: list[int]) -> None:
        self.cdir, self.logdir, self.turbo, self.rng = cdir, logdir, turbo, rng
        self.tags = tags
        self.procs: dict[str, Proc] = {}
        self.servers: list[int] = []  # owner server pids seen (grandchildren, or adopted orphans)
        self.errors: list[str] = []
        self.corrupt_exits = 0
        self.kills = 0

    def start(self, slot: str, role: str, style: str = "") -> Proc:
        self.tags[0] += 1
        tag = self.tags[0]
        err = os.path.join(self.logdir, f"{tag}-{slot}.err")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--role",
            role,
            "--qdir",
            self.cdir,
            "--logdir",
            self.logdir,
            "--tag",
            str(tag),
            "--seed",
            str(self.rng.getrandbits(32)),
            "--turbo" if self.turbo else "--safe",
            "--pause",
            str(self.rng.choice(PAUSES)),
            "--pause2",
            str(self.rng.choice(PAUSES)),
        ]
        if style:
            cmd += ["--style", style]
        with open(err, "wb") as out:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        proc = self.procs[slot] = Proc(slot, role, tag, popen, err)
        return proc

    def is_ready(self, proc: Proc) -> bool:
        path = os.path.join(self.logdir, f"{proc.tag}.ready")
        if not os.path.exists(path):
            return False
        if proc.role == "owner":
            with open(path) as f:
                pid = int(f.read())
            if pid not in self.servers:
                self.servers.append(pid)
        return True

    def wait_ready(self, proc: Proc, timeout: float = PATIENCE) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_ready(proc):
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                self.check()
                return False
            time.sleep(0.005)
        return True

    def check(self) -> None:
        """Note processes that exited without being told to; restart them (an owner that saw its server die)."""
        for pid in list(self.servers):
            with contextlib.suppress(OSError):
                reap_pid(pid)
        for slot, proc in list(self.procs.items()):
            rc = proc.popen.poll()
            if rc is None or proc.expect_exit:
                continue
            if rc == EXIT_CORRUPT_OPEN:
                self.corrupt_exits += 1
            else:  # (an owner role exiting with EXIT_OWNER_GONE here: its server died, and not by our hand)
                self.errors.append(f"{slot} (tag {proc.tag}) exited with {rc}: {tail(proc.err)}")
            proc.expect_exit = True
            if rc != EXIT_CORRUPT_OPEN:
                self.start(slot, proc.role, self.style_for(proc.role))

    def style_for(self, role: str) -> str:
        return self.rng.choices(DQUE_STYLES, weights=(3, 3, 1, 1))[0] if role == "plain" else ""

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.02))

    def kill(self, slot: str) -> str:
        """SIGKILL the process in ``slot`` (``owner-server``: the owner role's server), reap, restart."""
        if slot == "owner-server":
            proc = self.procs["owner"]
            server = self.server_of(proc)
            if server is None:
                slot = "owner"  # not up yet: kill its creator instead
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server, signal.SIGKILL)
                self.kills += 1
                # its creator sees OwnerGoneError, reaps it and exits (EXIT_OWNER_GONE)
                proc.expect_exit = True
                try:
                    rc = proc.popen.wait(timeout=PATIENCE)
                except subprocess.TimeoutExpired:
                    self.errors.append(f"owner role (tag {proc.tag}) did not notice its server's death")
                    proc.popen.kill()
                    rc = proc.popen.wait()
                if rc not in (EXIT_OWNER_GONE, -signal.SIGKILL):
                    self.errors.append(f"owner role (tag {proc.tag}) exited with {rc}: {tail(proc.err)}")
                self.start("owner", "owner")
                return "owner server"
        proc = self.procs[slot]
        proc.expect_exit = True
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGKILL)
            self.kills += 1
        proc.popen.wait()
        self.start(slot, proc.role, self.style_for(proc.role))
        return slot

    def server_of(self, proc: Proc) -> int | None:
        if not self.is_ready(proc):
            return None
        with open(os.path.join(self.logdir, f"{proc.tag}.ready")) as f:
            return int(f.read())

    def stop(self, graceful: bool) -> None:
        """Stop everyone: SIGTERM (clients first, then the owner) and wait, or SIGKILL at once."""
        order = sorted(self.procs.values(), key=lambda p: p.role == "owner")
        if not graceful:
            for proc in self.procs.values():
                if proc.role == "owner":
                    server = self.server_of(proc)
                    if server is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(server, signal.SIGKILL)
        for group in ([p for p in order if p.role != "owner"], [p for p in order if p.role == "owner"]):
            for proc in group:
                proc.expect_exit = True
                if proc.popen.poll() is None:
                    proc.popen.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            for proc in group:
                try:
                    rc = proc.popen.wait(timeout=PATIENCE)
                except subprocess.TimeoutExpired:
                    self.errors.append(f"{proc.slot} (tag {proc.tag}) did not stop on SIGTERM")
                    proc.popen.kill()
                    rc = proc.popen.wait()
                if graceful and rc not in (0, EXIT_OWNER_GONE):
                    self.errors.append(f"{proc.slot} (tag {proc.tag}) exited with {rc} on SIGTERM: {tail(proc.err)}")

    def shutdown(self) -> None:
        """Kill and reap every process of this cycle, owner servers included (also on Ctrl-C)."""
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                proc.popen.kill()
        for proc in self.procs.values():
            proc.popen.wait()
        deadline = time.monotonic() + 10
        for pid in self.servers:
            while not reap_pid(pid):
                if time.monotonic() > deadline:
                    if pid in children_of(os.getpid()):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                    break
                time.sleep(0.01)


def tail(path: str, n: int = 600) -> str:
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-n:].strip() or "(no output)"


@dataclass
class CycleResult:
    items: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupt_opens: int = 0
    kills: int = 0
    closed_errors: int = 0
    excused: int = 0  # items missing that dequeue calls in flight at a kill may have taken
    problems: list[str] = field(default_factory=list)


def drain_check(qdir: str, book: Book, res: CycleResult) -> None:
    """Open the queue as a checker would after the crashes, drain it, and hold the result against the book."""
    deadline = time.monotonic() + 10
    while True:
        try:
            q = dque.open(NAME, qdir)
            break
        except dque.LockedError:
            if time.monotonic() > deadline:
                res.problems.append("the queue was still locked 10 s after every process was reaped")
                return
            time.sleep(0.02)
        except dque.DQueError as exc:
            res.corrupt_opens += 1
            res.problems.append(f"checker's open failed: {exc!r}")
            return
    got: list[int] = []
    try:
        size, in_flight = q.size(), q.in_flight()
        for _ in range(1000):
            try:
                batch = q.dequeue_many(500)
            except dque.CorruptedError as exc:
                res.corrupt_opens += 1
                res.problems.append(f"damage found while draining after the crashes: {exc}")
                continue
            if not batch:
                break
            for x in batch:
                try:
                    got.append(ident(x))
                except Damaged as exc:
                    res.problems.append(f"damaged item drained: {exc}")
        if size != len(got):
            res.problems.append(f"size() said {size} at open, {len(got)} items came out")
        if in_flight:
            res.problems.append(f"in_flight() said {in_flight} right after open")
        q.enqueue(item(1))
    finally:
        q.close()
    with dque.open(NAME, qdir) as q:  # the checked queue still takes and keeps items
        if q.dequeue_many(10) != [item(1)]:
            res.problems.append("the drained queue did not keep an item across a reopen")

    res.items = len(book.acked_enq)
    res.closed_errors = book.closed_errors
    res.problems.extend(book.bad)
    res.corrupt_opens += len(book.corrupt_opens)
    res.problems.extend(f"corrupt open in a worker: {c}" for c in book.corrupt_opens)
    found = Counter(got)
    everything = book.taken + found
    dups = {i: c for i, c in everything.items() if c > 1}
    for i, c in sorted(dups.items())[:5]:
        where = "in the queue" if i in found else "not in the queue"
        res.problems.append(f"id {i} came out {c} times ({book.taken[i]} by returned calls, {where})")
    late = sorted({i for i, t in book.lease_starts if i in book.ack_time and t > book.ack_time[i]})
    for i in late[:5]:
        res.problems.append(f"id {i} was leased again after its ack returned")
    res.duplicated = len(set(dups) | set(late))
    phantoms = set(everything) - book.started_enq
    if phantoms:
        res.problems.append(f"{len(phantoms)} ids came out that were never enqueued: {sorted(phantoms)[:5]}")
    missing = book.acked_enq - set(everything) - book.unknown_ack
    res.lost = max(0, len(missing) - book.unknown_deq)
    res.excused = len(missing) - res.lost
    if res.lost:
        res.problems.append(
            f"{len(missing)} acknowledged items missing, only {book.unknown_deq} may have been taken by calls "
            f"in flight at a kill: {sorted(missing)[:10]}"
        )
    last: dict[int, int] = {}
    for i in got:
        producer = i // ID_BASE
        if last.get(producer, -1) >= i:
            res.problems.append(f"drained out of order: {i} after {last[producer]}")
            break
        last[producer] = i


def run_cycle(
    c: int,
    mode: str,
    turbo: bool,
    base: str,
    rng: random.Random,
    args: argparse.Namespace,
    tags: list[int],
    teams: list[Team],
) -> CycleResult:
    cdir = os.path.join(base, f"cycle{c:04d}-{mode}-{'turbo' if turbo else 'safe'}")
    logdir = os.path.join(cdir, "logs")
    os.makedirs(logdir)
    segment_size = rng.choice((2, 3, 5, 8, 20, 100))
    dque.new(NAME, cdir, segment_size=segment_size).close()
    res = CycleResult()
    team = Team(cdir, logdir, turbo, rng, tags)
    teams.append(team)
    try:
        if mode == "dque":
            team.start("plain", "plain", team.style_for("plain"))
            victims = ["plain"]
        else:
            owner = team.start("owner", "owner")
            team.start("producer", "producer")
            team.start("c1", "consumer" if mode == "process" else "leaser")
            team.start("c2", "consumer" if mode == "process" else "leaser")
            team.wait_ready(owner)
            victims = ["owner-server", "owner", "producer", "c1", "c2"]
        kills = rng.randint(1, args.max_kills)
        for _ in range(kills):
            target = rng.choices(victims, weights=(3, 2, 2, 2, 2)[: len(victims)] if len(victims) > 1 else None)[0]
            proc = team.procs["owner" if target == "owner-server" else target]
            if rng.random() < 0.85:  # mostly while working; sometimes during start-up/recovery
                if not team.wait_ready(proc):
                    break
                team.sleep(rng.uniform(args.min_run, args.max_run))
            else:
                team.sleep(rng.uniform(0, 0.4))
            team.kill(target)
        for proc in list(team.procs.values()):
            team.wait_ready(proc)
        team.sleep(rng.uniform(args.min_run, args.max_run))  # the restarted ones get going
        team.stop(graceful=rng.random() < 0.5)
    finally:
        team.shutdown()
    res.kills = team.kills
    res.problems.extend(team.errors)
    res.corrupt_opens += team.corrupt_exits
    drain_check(cdir, read_ledgers(logdir), res)
    if not res.problems and not args.keep:
        shutil.rmtree(cdir, ignore_errors=True)
    return res


def orchestrate(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    set_subreaper()
    rng = random.Random(args.seed)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dque-crash-loop-", dir=args.dir)  # a fresh directory, even under --dir
    modes = MODES if args.mode == "all" else (args.mode,)
    print(
        f"crash_loop: seed {args.seed}, modes {','.join(modes)}, "
        f"{'turbo' if args.turbo else 'safe' if args.turbo is False else 'safe/turbo alternating'}, "
        + ", ".join(
            ([f"{args.cycles} cycles"] if args.cycles else []) + ([f"up to {args.seconds:g} s"] if args.seconds else [])
        )
        + f", in {base}",
        flush=True,
    )
    totals = CycleResult()
    cycles = 0
    failed_dirs: list[str] = []
    teams: list[Team] = []
    tags = [0]
    interrupted = False
    deadline = t0 + args.seconds if args.seconds else float("inf")
    try:
        while (not args.cycles or cycles < args.cycles) and time.monotonic() < deadline:
            mode = modes[cycles % len(modes)]
            turbo = args.turbo if args.turbo is not None else bool(cycles % 2)  # 3 modes: all 6 pairs in 6 cycles
            t = time.monotonic()
            res = run_cycle(cycles, mode, turbo, base, rng, args, tags, teams)
            cycles += 1
            totals.items += res.items
            totals.lost += res.lost
            totals.duplicated += res.duplicated
            totals.corrupt_opens += res.corrupt_opens
            totals.kills += res.kills
            totals.closed_errors += res.closed_errors
            totals.excused += res.excused
            status = "ok" if not res.problems else "FAIL"
            if args.verbose or res.problems:
                print(
                    f"  cycle {cycles - 1:4d} {mode:7s} {'turbo' if turbo else 'safe':5s} kills {res.kills} "
                    f"items {res.items:6d} {time.monotonic() - t:5.1f} s  {status}",
                    flush=True,
                )
            if res.problems:
                cdir = os.path.join(base, f"cycle{cycles - 1:04d}-{mode}-{'turbo' if turbo else 'safe'}")
                failed_dirs.append(cdir)
                totals.problems.extend(f"cycle {cycles - 1}: {p}" for p in res.problems)
                for p in res.problems[:10]:
                    print(f"    {p}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping and reaping every process", flush=True)
    finally:
        for team in teams:
            team.shutdown()
        strays = children_of(os.getpid())
        for pid in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if strays:
            totals.problems.append(f"{len(strays)} stray processes were left and had to be killed: {strays}")
    if not failed_dirs and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return summary(totals, cycles, time.monotonic() - t0, interrupted, failed_dirs)


def summary(totals: CycleResult, cycles: int, elapsed: float, interrupted: bool, kept: list[str] | None = None) -> int:
    """Print the run's totals and its VERDICT line (the same for both backends); the exit status."""
    print(f"{totals.kills} kills in {cycles} cycles, {elapsed:.1f} s")
    if totals.excused:
        print(
            f"note: {totals.excused} acknowledged items were taken by dequeue calls in flight at a kill "
            "(plain dequeue is at-most-once): not counted as lost"
        )
    if totals.closed_errors:
        print(
            f"note: {totals.closed_errors} client calls got ClosedError (not OwnerGoneError) from an owner "
            "shutting down after its creator was killed; handled like OwnerGoneError"
        )
    if kept:
        print("kept for inspection: " + " ".join(kept))
    print(
        f"cycles: {cycles}, items: {totals.items}, lost: {totals.lost}, duplicated: {totals.duplicated}, "
        f"corrupt opens: {totals.corrupt_opens}"
    )
    reasons = []
    if totals.problems:
        reasons.append(count(len(totals.problems), "problem"))
    if interrupted:
        reasons.append("interrupted")
    if cycles == 0 or totals.kills == 0:
        reasons.append("no kill happened")
    return verdict(reasons)


# =========================================================================== the redis backend (--backend redis)
#
# One redis-server for the run (from PATH, ``--appendonly yes --appendfsync always``, its own directory
# under the run's), a fresh queue (stream) per cycle. Each cycle runs a producer (enqueue /
# enqueue_many), a consumer (get with a timeout / dequeue / dequeue_many) and a leaser (lease /
# lease_many, then ack / ack_many, sometimes release), and SIGKILLs one or two of them, or the
# redis-server itself, at random moments; each is restarted (the server on the same directory and
# port). Then everything is stopped, the dead holders' leases are left to come back (``lease_ttl`` =
# 1 s) and a checker drains the queue and compares it with the ledger (``b <op> ...`` before a call,
# ``<op> <ns> <id>...`` after it returned, ``x <op> ...`` if it raised):
#
# * lost: every id whose enqueue returned is accounted for (a returned dequeue, a returned ack, or
#   drained), except at most as many as the dequeue calls in flight at a kill could have taken (plain
#   dequeue is at-most-once; a reply lost with the server is a call in flight too) and the ids of an
#   ack in flight;
# * duplicated: no id is taken twice by returned dequeues/acks, none is found in the queue after its
#   dequeue/ack returned, and no lease of an id begins after an ack of it returned;
# * corrupt opens: no open fails with a dque error other than BackendError (server away), and no item
#   comes out damaged or never enqueued.
#
# Needs redis-py and a redis-server on PATH (only this backend imports redis).

REDIS_LEASE_TTL = 1.0
REDIS_ROLES = ("producer", "consumer", "leaser")


def redis_worker(args: argparse.Namespace) -> None:
    """One incarnation of a redis role: runs until SIGKILLed (or 10 minutes); errors from the server are logged."""
    note = Ledger(os.path.join(args.logdir, f"{args.tag}.log"))
    rng = random.Random(args.tag)
    next_id = args.tag * ID_BASE
    q = None
    end = time.monotonic() + 600
    while time.monotonic() < end:
        try:
            if q is None:
                q = dque.RedisQueue(args.queue, args.url, lease_ttl=REDIS_LEASE_TTL, socket_timeout=2.0)
                note("open")
            if args.role == "producer":
                n = rng.choice((1, 1, 3))
                ids = list(range(next_id, next_id + n))
                next_id += n
                note("b enq", *ids)
                try:
                    q.enqueue_many([item(i) for i in ids]) if n > 1 else q.enqueue(item(ids[0]))
                except dque.BackendError:
                    note("x enq", *ids)
                    raise
                note("enq", time.monotonic_ns(), *ids)
            elif args.role == "consumer":
                n = rng.choice((1, 1, 4))
                note("b deq", n)
                try:
                    got = q.dequeue_many(n) if n > 1 else [q.get(timeout=0.2)]
                except dque.Empty:
                    got = []
                except dque.BackendError:
                    note("x deq", n)
                    raise
                note("deq", time.monotonic_ns(), *[ident(x) for x in got])
            else:
                leases = q.lease_many(rng.choice((1, 2, 3)))
                note("lease", time.monotonic_ns(), *[ident(x.item) for x in leases])
                if not leases:
                    time.sleep(0.01)
                    continue
                if rng.random() < 0.2:
                    q.release_many([x.id for x in leases])
                    continue
                ids = [ident(x.item) for x in leases]
                note("b ack", *ids)
                try:
                    q.ack_many([x.id for x in leases])
                except dque.BackendError:
                    note("x ack", *ids)
                    raise
                except dque.LeaseError:
                    note("x ack", *ids)  # expired while the server was away: back in the queue
                    continue
                note("ack", time.monotonic_ns(), *ids)
        except dque.BackendError:
            time.sleep(0.02)  # the server is away: try again
        except Damaged as exc:
            note("damaged", repr(exc))
            os._exit(5)
        except dque.DQueError as exc:
            note("corrupt", repr(exc))
            os._exit(4)


class RedisServer:
    """The run's redis-server: on a free port, in its own directory; started again on it after a kill."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("crash_loop --backend redis: no redis-server on PATH (apt-get install redis-server)")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dirpath, "--appendonly", "yes",
               "--appendfsync", "always", "--save", "", "--daemonize", "no", "--logfile", "redis.log"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        import redis

        deadline = time.monotonic() + PATIENCE
        while True:
            with contextlib.suppress(redis.RedisError):
                client = redis.Redis.from_url(self.url, socket_timeout=1)
                try:
                    if client.ping() and client.info("persistence").get("loading", 0) == 0:
                        return
                finally:
                    client.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(PATIENCE)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def _redis_start(role: str, server: RedisServer, queue: str, logdir: str, tag: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, os.path.abspath(__file__), "--backend", "redis", "--role", role, "--url", server.url, "--queue", queue,
           "--logdir", logdir, "--tag", str(tag)]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)


def _redis_stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(PATIENCE)


def run_redis_cycle(
    n: int, server: RedisServer, base: str, rng: random.Random, args: argparse.Namespace, tags: list[int]
) -> CycleResult:
    res = CycleResult()
    queue = f"crash-{n}-{rng.randrange(1 << 30)}"
    logdir = os.path.join(base, f"cycle{n:04d}")
    os.makedirs(logdir)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def launch(role: str) -> None:
        tags[0] += 1
        procs[role] = _redis_start(role, server, queue, logdir, tags[0])

    try:
        for role in REDIS_ROLES:
            launch(role)
        for _ in range(rng.randint(1, args.max_kills)):
            time.sleep(rng.uniform(args.min_run, args.max_run))
            target = rng.choice((*REDIS_ROLES, "server"))
            if target == "server":
                server.kill()
                time.sleep(rng.uniform(0.0, 0.2))
                server.start()
            else:
                _redis_stop(procs[target])
                launch(target)
            res.kills += 1
        time.sleep(rng.uniform(args.min_run, args.max_run))
    finally:
        for proc in procs.values():
            _redis_stop(proc)
    redis_check(server, queue, logdir, res)
    if not res.problems and not args.keep:
        shutil.rmtree(logdir, ignore_errors=True)
    return res


def redis_check(server: RedisServer, queue: str, logdir: str, res: CycleResult) -> None:
    """Read the cycle's ledgers, let the dead holders' leases come back, drain the queue, compare."""
    enq: set[int] = set()
    enq_doubt: set[int] = set()
    taken: Counter[int] = Counter()
    taken_at: dict[int, int] = {}
    ack_doubt: set[int] = set()
    leases: list[tuple[int, int]] = []
    deq_in_flight = 0
    for fname in sorted(os.listdir(logdir)):
        if not fname.endswith(".log"):
            continue
        open_deq: int | None = None
        with open(os.path.join(logdir, fname)) as f:
            lines = [line.split() for line in f.read().splitlines() if line]
        for w in lines:
            op = w[0]
            if op in ("corrupt", "damaged"):
                res.corrupt_opens += 1
                res.problems.append(f"{fname}: {' '.join(w)}")
            elif op == "b" and w[1] == "enq":
                enq_doubt.update(map(int, w[2:]))
            elif op == "enq":
                enq.update(map(int, w[2:]))
            elif op == "b" and w[1] == "deq":
                open_deq = int(w[2])
            elif op == "x" and w[1] == "deq":
                deq_in_flight += int(w[2])
                open_deq = None
            elif op == "deq":
                open_deq = None
                for i in map(int, w[2:]):
                    taken[i] += 1
                    taken_at.setdefault(i, int(w[1]))
            elif op == "b" and w[1] == "ack":
                ack_doubt.update(map(int, w[2:]))
            elif op == "ack":
                for i in map(int, w[2:]):
                    taken[i] += 1
                    taken_at.setdefault(i, int(w[1]))
            elif op == "lease":
                leases.extend((int(w[1]), int(i)) for i in w[2:])
        if open_deq is not None:
            deq_in_flight += open_deq  # killed during a dequeue
    ack_doubt -= set(taken)
    res.items += len(enq)

    drained: list[int] = []
    try:
        q = dque.RedisQueue(queue, server.url, lease_ttl=REDIS_LEASE_TTL)
        try:
            deadline = time.monotonic() + PATIENCE
            while q.in_flight() and time.monotonic() < deadline:
                time.sleep(0.05)  # the killed holders' leases come back within lease_ttl
            while True:
                batch = q.dequeue_many(1000)
                if not batch:
                    break
                drained.extend(ident(x) for x in batch)
        finally:
            q.close()
    except (dque.DQueError, Damaged) as exc:
        res.corrupt_opens += 1
        res.problems.append(f"checker: {exc!r}")
    found = Counter(drained)
    dup = {i for i, c in found.items() if c > 1} | {i for i, c in taken.items() if c > 1} | (set(found) & set(taken))
    dup |= {i for ns, i in leases if i in taken_at and ns > taken_at[i]}
    if dup:
        res.duplicated += len(dup)
        res.problems.append(f"duplicated: {sorted(dup)[:10]}")
    never = set(found) - enq - enq_doubt
    if never:
        res.corrupt_opens += 1
        res.problems.append(f"items never enqueued came out: {sorted(never)[:10]}")
    missing = enq - set(taken) - set(found) - ack_doubt
    excused = min(len(missing), deq_in_flight)
    res.excused += excused
    if len(missing) > excused:
        res.lost += len(missing) - excused
        res.problems.append(f"lost: {len(missing) - excused} (e.g. {sorted(missing)[:10]})")


def orchestrate_redis(args: argparse.Namespace) -> int:
    """The redis loop; prints the same verdict lines as the file backend's."""
    t0 = time.monotonic()
    rng = random.Random(args.seed)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dque-crash-loop-redis-", dir=args.dir)
    os.makedirs(os.path.join(base, "redis"))
    server = RedisServer(os.path.join(base, "redis"))
    print(f"crash_loop: seed {args.seed}, backend redis (appendfsync always), in {base}", flush=True)
    totals = CycleResult()
    cycles = 0
    tags = [0]
    interrupted = False
    deadline = t0 + args.seconds if args.seconds else float("inf")
    try:
        server.start()
        while (not args.cycles or cycles < args.cycles) and time.monotonic() < deadline:
            t = time.monotonic()
            res = run_redis_cycle(cycles, server, base, rng, args, tags)
            cycles += 1
            for attr in ("items", "lost", "duplicated", "corrupt_opens", "kills", "excused"):
                setattr(totals, attr, getattr(totals, attr) + getattr(res, attr))
            if args.verbose or res.problems:
                status = "ok" if not res.problems else "FAIL"
                print(f"  cycle {cycles - 1:4d} redis kills {res.kills} items {res.items:6d} "
                      f"{time.monotonic() - t:5.1f} s  {status}", flush=True)  # fmt: skip
            totals.problems.extend(f"cycle {cycles - 1}: {p}" for p in res.problems)
            for p in res.problems[:10]:
                print(f"    {p}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping every process", flush=True)
    finally:
        server.stop()
    if not totals.problems and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return summary(totals, cycles, time.monotonic() - t0, interrupted)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="SIGKILL producers, consumers and owners of a dque at random moments, restart, check a ledger.",
        epilog="Ends with 'cycles: C, items: N, lost: 0, duplicated: 0, corrupt opens: 0' and a VERDICT line; "
        "exit status 1 if the verdict is not clean.",
    )
    p.add_argument("--seconds", type=float, default=None, help="run time bound (default 60, or none with --cycles)")
    p.add_argument("--cycles", type=int, default=0, help="run this many cycles (default: as many as fit)")
    p.add_argument("--mode", choices=(*MODES, "all"), default="all", help="default: all, rotating per cycle")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--turbo", dest="turbo", action="store_true", default=None, help="turbo mode only")
    g.add_argument("--safe", dest="turbo", action="store_false", help="safe mode only (default: alternate)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument(
        "--dir", default=None, help="where to make this run's fresh work directory (default: $TMPDIR or /tmp)"
    )
    p.add_argument("--max-kills", type=int, default=2, help="kills per cycle: 1 to this many (default 2)")
    p.add_argument("--min-run", type=float, default=0.2, help="least time a process runs before a kill (s)")
    p.add_argument("--max-run", type=float, default=1.2, help="most time a process runs before a kill (s)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 short cycles (one per mode), a few seconds")
    p.add_argument("--keep", action="store_true", help="keep every cycle's directory")
    p.add_argument(
        "--backend",
        choices=("file", "redis"),
        default="file",
        help="file (default: DQue, ProcessSafeDQue) or redis (RedisQueue on a redis-server it starts and kills too)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="a line per cycle")
    # hidden: the worker processes are this script with --role
    p.add_argument("--role", choices=("plain", "owner", "producer", "consumer", "leaser"), help=argparse.SUPPRESS)
    p.add_argument("--style", choices=DQUE_STYLES, default="mixed", help=argparse.SUPPRESS)
    p.add_argument("--qdir", help=argparse.SUPPRESS)
    p.add_argument("--logdir", help=argparse.SUPPRESS)
    p.add_argument("--tag", type=int, help=argparse.SUPPRESS)
    p.add_argument("--pause", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--pause2", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--queue", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role and args.backend == "redis":
        redis_worker(args)
        return 0
    if args.role:
        worker_main(args)
        return 0
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    if args.quick:
        args.cycles = args.cycles or 3
        args.min_run, args.max_run, args.max_kills = 0.05, 0.3, 1
        args.seconds = args.seconds or 30.0
    elif args.seconds is None and not args.cycles:
        args.seconds = 60.0
    if args.backend == "redis":
        return orchestrate_redis(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
