"""``crash_loop.py --backend redis``: the SIGKILL loop against ``dque.RedisQueue`` and a real redis-server.

One redis-server for the run (from PATH, ``--appendonly yes --appendfsync
always``, its own directory under the run's), a fresh queue (stream) per
cycle. Each cycle runs a producer (enqueue / enqueue_many), a consumer
(get with a timeout / dequeue / dequeue_many) and a leaser (lease /
lease_many, then ack / ack_many, sometimes release), and SIGKILLs one or two
of them, or the redis-server itself, at random moments; each is restarted
(the server on the same directory and port). Then everything is stopped, the
dead holders' leases are left to come back (``lease_ttl`` = 1 s) and a checker
drains the queue and compares it with the ledger:

* lost: every id whose enqueue returned is accounted for (a returned
  dequeue, a returned ack, or drained), except at most as many as the
  dequeue calls in flight at a kill could have taken (plain dequeue is
  at-most-once; a reply lost with the server is a call in flight too) and
  the ids of an ack in flight;
* duplicated: no id is taken twice by returned dequeues/acks, none is found
  in the queue after its dequeue/ack returned, and no lease of an id begins
  after an ack of it returned;
* corrupt opens: no open fails with a dque error other than BackendError
  (server away), and no item comes out damaged or never enqueued.

The ledger is the file backend's: one ``os.write`` per line, ``b <op> ...``
before a call, ``<op> <ns> <id>...`` after it returned, ``x <op> ...`` if it
raised. The verdict lines are the same as for the file backend.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

from _items import Damaged, ident, item

import dque

LEASE_TTL = 1.0
ROLES = ("producer", "consumer", "leaser")
PATIENCE = 30.0
ID_BASE = 10**7


def _die_with_parent() -> None:
    """Linux: SIGKILL when the orchestrator dies, so a killed run leaves no server or worker behind."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _ledger(path: str):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def note(*words: object) -> None:
        os.write(fd, (" ".join(map(str, words)) + "\n").encode())

    return note


# ------------------------------------------------------------------ worker side


def worker(args: argparse.Namespace) -> None:
    """One incarnation of a role: runs until SIGKILLed (or 10 minutes); errors from the server are logged."""
    note = _ledger(os.path.join(args.logdir, f"{args.tag}.log"))
    rng = random.Random(args.tag)
    next_id = args.tag * ID_BASE
    q = None
    end = time.monotonic() + 600
    while time.monotonic() < end:
        try:
            if q is None:
                q = dque.RedisQueue(args.queue, args.url, lease_ttl=LEASE_TTL, socket_timeout=2.0)
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


# ------------------------------------------------------------------ orchestrator side


class Server:
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


class Result:
    def __init__(self) -> None:
        self.items = self.lost = self.duplicated = self.corrupt_opens = self.kills = self.excused = 0
        self.problems: list[str] = []


def _start(script: str, role: str, server: Server, queue: str, logdir: str, tag: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, script, "--backend", "redis", "--role", role, "--url", server.url, "--queue", queue,
           "--logdir", logdir, "--tag", str(tag)]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(PATIENCE)


def run_cycle(
    n: int, server: Server, base: str, rng: random.Random, args: argparse.Namespace, tags: list[int]
) -> Result:
    res = Result()
    queue = f"crash-{n}-{rng.randrange(1 << 30)}"
    logdir = os.path.join(base, f"cycle{n:04d}")
    os.makedirs(logdir)
    script = os.path.abspath(sys.argv[0])
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def launch(role: str) -> None:
        tags[0] += 1
        procs[role] = _start(script, role, server, queue, logdir, tags[0])

    try:
        for role in ROLES:
            launch(role)
        for _ in range(rng.randint(1, args.max_kills)):
            time.sleep(rng.uniform(args.min_run, args.max_run))
            target = rng.choice((*ROLES, "server"))
            if target == "server":
                server.kill()
                time.sleep(rng.uniform(0.0, 0.2))
                server.start()
            else:
                _stop(procs[target])
                launch(target)
            res.kills += 1
        time.sleep(rng.uniform(args.min_run, args.max_run))
    finally:
        for proc in procs.values():
            _stop(proc)
    check(server, queue, logdir, res)
    if not res.problems and not args.keep:
        shutil.rmtree(logdir, ignore_errors=True)
    return res


def check(server: Server, queue: str, logdir: str, res: Result) -> None:
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
        q = dque.RedisQueue(queue, server.url, lease_ttl=LEASE_TTL)
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


def orchestrate(args: argparse.Namespace) -> int:
    """The redis loop; prints the same verdict lines as the file backend's."""
    t0 = time.monotonic()
    rng = random.Random(args.seed)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dque-crash-loop-redis-", dir=args.dir)
    os.makedirs(os.path.join(base, "redis"))
    server = Server(os.path.join(base, "redis"))
    print(f"crash_loop: seed {args.seed}, backend redis (appendfsync always), in {base}", flush=True)
    totals = Result()
    cycles = 0
    tags = [0]
    interrupted = False
    deadline = t0 + args.seconds if args.seconds else float("inf")
    try:
        server.start()
        while (not args.cycles or cycles < args.cycles) and time.monotonic() < deadline:
            t = time.monotonic()
            res = run_cycle(cycles, server, base, rng, args, tags)
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
    print(f"{totals.kills} kills in {cycles} cycles, {time.monotonic() - t0:.1f} s")
    if totals.excused:
        print(
            f"note: {totals.excused} acknowledged items were taken by dequeue calls in flight at a kill "
            "(plain dequeue is at-most-once): not counted as lost"
        )
    print(
        f"cycles: {cycles}, items: {totals.items}, lost: {totals.lost}, duplicated: {totals.duplicated}, "
        f"corrupt opens: {totals.corrupt_opens}"
    )
    reasons = []
    if totals.problems:
        reasons.append(f"{len(totals.problems)} problem{'s' if len(totals.problems) != 1 else ''}")
    if interrupted:
        reasons.append("interrupted")
    if cycles == 0 or totals.kills == 0:
        reasons.append("no kill happened")
    if reasons:
        print(f"VERDICT: NOT CLEAN ({', '.join(reasons)})", flush=True)
        return 1
    print("VERDICT: CLEAN", flush=True)
    return 0
