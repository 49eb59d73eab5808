"""Soak test: many processes doing mixed operations on one ProcessSafeDQue; does the owner stay flat?

Run it from the repository root with the project's virtualenv::

    python stress/soak.py                           # 6 worker processes, 60 s
    python stress/soak.py --quick                   # a few seconds (CI smoke run)
    python stress/soak.py --procs 12 --seconds 600 --turbo --seed 7

This process creates the ``ProcessSafeDQue`` (so it starts the owner) and
``--procs`` worker processes attach to it. Each worker runs a random mix of
enqueue, enqueue_many, dequeue, dequeue_many, dequeue_block, lease + ack,
lease_many + ack_many, release, peek, size and in_flight, holding a few leases
at a time, steering by size() so the queue neither runs dry nor grows without
bound, and now and then dropping its connection and attaching anew: either
the old handle goes first, or the new one is attached first and the old one
dropped a little later (``--no-overlap`` leaves this pattern out). Leases belong
to the worker process, not to a handle: those it still holds survive the
change of handle and are settled later through the new one (the owner releases
a worker's leases only when the worker process dies). Every ``--interval`` seconds it prints
the throughput, the queue's size, and the owner's resident memory, open file
descriptors and threads (from /proc/<owner pid>/status and /proc/<owner pid>/fd).

At the end the workers stop, this process drains what is left, and checks:

* accounting: every id whose enqueue returned was consumed exactly once (by a
  returned dequeue or ack, or found in the queue at the end), and nothing
  else came out;
* flat: after a warm-up, the median of the last third of the samples against
  the first third: memory within ``--rss-tolerance`` (default 10%, at least
  3 MB), open fds within ``--fd-tolerance`` (default 6: an open segment holds two, its
  file's and its memory map's, and up to three may come and go as leases keep older
  segments open), threads within 3.

It ends with one summary line and ``VERDICT: CLEAN`` (exit status 0) or
``VERDICT: NOT CLEAN (...)`` (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter

from _verdict import count, verdict  # stress/_verdict.py

import dque

NAME = "q"
ID_BASE = 10**9  # id = (worker number + 1) * ID_BASE + sequence number
KINDS = ("enq", "deq", "lease", "ack", "read", "other")  # op counters per worker, in a shared array


# =========================================================================== workers


def worker(k: int, qdir: str, seed: int, ledger_path: str, counters, troubles, stop, high: int, overlap: bool) -> None:
    """Mixed operations until ``stop`` is set; a ledger line per call that returned.

    ``troubles[k]`` counts leases this worker held that the owner no longer knew
    when it acked or released them (with no ttl that must never happen).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    rng = random.Random(seed)
    base = k * len(KINDS)
    parent, name = os.path.split(qdir)
    q = dque.attach(name, parent)
    next_id = (k + 1) * ID_BASE
    held: list[dque.Lease] = []
    leases: list[dque.Lease] = []
    retired, retire_at = None, 0
    size = 0
    ops = 0
    with open(ledger_path, "w") as led:

        def count(kind: int, n: int = 1) -> None:
            counters[base + kind] += n

        def settle(keep: int) -> None:
            while len(held) > keep:
                n = 1 if rng.random() < 0.5 else rng.randint(1, len(held) - keep)
                batch = held[:n]
                del held[:n]
                try:
                    if n == 1 and rng.random() < 0.05:
                        batch[0].release()
                    elif n == 1:
                        batch[0].ack()
                        led.write(f"a {batch[0].item}\n")
                    else:
                        q.ack_many([lease.id for lease in batch])
                        led.write("".join(f"a {lease.item}\n" for lease in batch))
                except dque.LeaseError:
                    troubles[k] += len(batch)  # the item went back to the queue behind our back
                count(3, n)

        try:
            while not stop.is_set():
                ops += 1
                if retired is not None and ops >= retire_at:
                    retired = None  # the last reference to a closed handle goes away
                if ops % 50 == 1:
                    size = q.size()
                    count(4)
                # steer: produce more when the queue is short, consume more when it is long
                bias = 0.15 if size < high // 10 else -0.15 if size > high else 0.0
                r = rng.random()
                if r < 0.22 + bias:
                    q.enqueue(next_id)
                    led.write(f"e {next_id}\n")
                    next_id += 1
                    count(0)
                elif r < 0.32 + bias:
                    n = rng.randint(2, 20)
                    q.enqueue_many(range(next_id, next_id + n))
                    led.write("".join(f"e {i}\n" for i in range(next_id, next_id + n)))
                    next_id += n
                    count(0, n)
                elif r < 0.42:
                    with contextlib.suppress(dque.Empty):
                        led.write(f"d {q.dequeue()}\n")
                    count(1)
                elif r < 0.52:
                    got = q.dequeue_many(rng.randint(1, 20))
                    led.write("".join(f"d {i}\n" for i in got))
                    count(1, max(1, len(got)))
                elif r < 0.56:
                    with contextlib.suppress(dque.Empty):
                        led.write(f"d {q.dequeue_block(timeout=0.05)}\n")
                    count(1)
                elif r < 0.70:
                    with contextlib.suppress(dque.Empty):
                        held.append(q.lease(timeout=0.05))
                    count(2)
                    settle(rng.randint(0, 5))
                elif r < 0.78:
                    leases = q.lease_many(rng.randint(2, 10))
                    held.extend(leases)
                    count(2, max(1, len(leases)))
                    settle(rng.randint(0, 5))
                elif r < 0.86:
                    with contextlib.suppress(dque.Empty):
                        q.peek()
                    count(4)
                elif r < 0.93:
                    size = q.size()
                    count(4)
                elif r < 0.998:
                    q.in_flight()
                    count(4)
                else:
                    # Hang up and attach anew. Either the old handle is gone before the new one connects,
                    # or (overlap) it is dropped afterwards. The leases still held are this process's:
                    # they survive, and are settled later through the new handle.
                    if rng.random() < 0.5:
                        settle(0)
                    leases = []
                    if overlap and rng.random() < 0.5:
                        fresh = dque.attach(name, parent)
                        q.close()
                        retired, retire_at = q, ops + rng.randint(1, 50)  # dropped a little later
                        q = fresh
                        del fresh
                    else:
                        q.close()
                        q = None
                        gc.collect()  # a handle whose call raised is kept by a reference cycle until collected
                        q = dque.attach(name, parent)
                    held[:] = [dque.Lease(q, lease.id, lease.item, lease.deliveries) for lease in held]
                    count(5)
            if rng.random() < 0.7:
                settle(0)
            # else: leave the leases to the owner, which releases them when we hang up
            q.close()
        except BaseException:
            traceback.print_exc()
            led.flush()
            os._exit(1)


# =========================================================================== the owner, watched


def owner_stats(pid: int) -> tuple[float, int, int]:
    """(resident MB, open fds, threads) of ``pid``."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


THREAD_TOLERANCE = 3  # allowed growth of the owner's threads


def flat(samples: list[float], tolerance: float, slack: float) -> tuple[bool, float, float]:
    """Medians of the first and last thirds, and whether the last stays within tolerance of the first."""
    if len(samples) < 3:
        return True, samples[0] if samples else 0.0, samples[-1] if samples else 0.0
    third = max(1, len(samples) // 3)
    first = statistics.median(samples[:third])
    last = statistics.median(samples[-third:])
    return last <= first + max(first * tolerance, slack), first, last


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Many processes doing mixed operations through one ProcessSafeDQue; watch the owner's "
        "memory and fds, check the accounting.",
        epilog="Ends with a summary line and a VERDICT line; exit status 1 if the verdict is not clean.",
    )
    p.add_argument("--procs", type=int, default=6, help="worker processes (default 6)")
    p.add_argument("--seconds", type=float, default=60.0, help="run time (default 60)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between report lines (default 5)")
    p.add_argument("--sample", type=float, default=0.5, help="seconds between owner samples (default 0.5)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--turbo", action="store_true", help="turbo mode (default: safe)")
    p.add_argument("--segment-size", type=int, default=200, help="segment size of the queue (default 200)")
    p.add_argument("--high", type=int, default=5000, help="queue size the workers steer under (default 5000)")
    p.add_argument("--warmup", type=float, default=0.15, help="share of the run ignored for flatness (default 0.15)")
    p.add_argument("--rss-tolerance", type=float, default=0.10, help="allowed memory growth (default 0.10 = 10%%)")
    p.add_argument("--rss-slack", type=float, default=3.0, help="allowed memory growth in MB at least (default 3)")
    p.add_argument(
        "--fd-tolerance", type=int, default=6, help="allowed growth of fds (default 6: three open segments)"
    )
    p.add_argument(
        "--no-overlap",
        action="store_true",
        help="when a worker re-attaches, always drop (and collect) the old handle before attaching the new one",
    )
    p.add_argument(
        "--dir", default=None, help="where to make this run's fresh work directory (default: $TMPDIR or /tmp)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 3 workers, 5 s")
    args = p.parse_args(argv)
    if args.quick:
        args.procs, args.seconds, args.interval, args.sample = min(args.procs, 3), min(args.seconds, 5.0), 1.0, 0.25
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    rng = random.Random(args.seed)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dque-soak-", dir=args.dir)  # a fresh directory, even under --dir
    ledgers = os.path.join(base, "ledgers")
    os.makedirs(ledgers, exist_ok=True)
    print(
        f"soak: seed {args.seed}, {args.procs} procs, {args.seconds:g} s, {'turbo' if args.turbo else 'safe'} mode, "
        f"segment size {args.segment_size}, in {base}",
        flush=True,
    )
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    counters = ctx.Array("q", args.procs * len(KINDS), lock=False)
    troubles = ctx.Array("q", args.procs, lock=False)
    stop = ctx.Event()
    problems: list[str] = []
    procs: list = []
    died: set[str] = set()
    samples: list[tuple[float, float, int, int]] = []  # (t, rss MB, fds, threads)
    q = None
    interrupted = False
    t0 = time.monotonic()
    ops_total = 0
    try:
        q = dque.ProcessSafeDQue(NAME, base, segment_size=args.segment_size, turbo=args.turbo)
        with open(os.path.join(q.path, "dque.owner")) as f:
            owner = json.load(f)["pid"]
        for k in range(args.procs):
            proc = ctx.Process(
                target=worker,
                args=(
                    k,
                    q.path,
                    rng.getrandbits(32),
                    os.path.join(ledgers, f"w{k}.txt"),
                    counters,
                    troubles,
                    stop,
                    args.high,
                    not args.no_overlap,
                ),
                name=f"soak-worker-{k}",
            )
            proc.start()
            procs.append(proc)
        t0 = time.monotonic()
        end = t0 + args.seconds
        next_report = t0 + args.interval
        last_ops, last_t = 0, t0
        last_kinds = [0] * len(KINDS)
        while True:
            now = time.monotonic()
            if now >= end:
                break
            time.sleep(min(args.sample, end - now))
            now = time.monotonic()
            try:
                rss, fds, threads = owner_stats(owner)
            except OSError:
                problems.append("the owner process is gone")
                break
            samples.append((now - t0, rss, fds, threads))
            for pr in procs:
                if not pr.is_alive() and pr.name not in died:
                    died.add(pr.name)  # reported; the others go on, so the owner is still watched
                    problems.append(f"worker {pr.name} exited early with {pr.exitcode} (its traceback is above)")
            if len(died) == len(procs):
                break
            if now >= next_report:
                next_report += args.interval
                kinds = [sum(counters[k * len(KINDS) + j] for k in range(args.procs)) for j in range(len(KINDS))]
                ops = sum(kinds)
                dt = now - last_t
                rates = " ".join(f"{n} {(a - b) / dt:.0f}" for n, a, b in zip(KINDS, kinds, last_kinds, strict=True))
                print(
                    f"  {now - t0:5.0f} s  {(ops - last_ops) / dt:7.0f} ops/s ({rates})  size {q.size():5d}  "
                    f"in flight {q.in_flight():3d}  owner: rss {rss:6.1f} MB, fds {fds:3d}, threads {threads:3d}",
                    flush=True,
                )
                last_ops, last_t, last_kinds = ops, now, kinds
        stop.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                problems.append(f"worker {proc.name} did not stop within 30 s")
            elif proc.exitcode != 0 and proc.name not in died:
                problems.append(f"worker {proc.name} exited with {proc.exitcode}")
        elapsed = time.monotonic() - t0
        ops_total = sum(counters[:])
        # the leases of workers that hung up are released by the owner as their connections close
        deadline = time.monotonic() + 10
        while q.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        if q.in_flight():
            problems.append(f"{q.in_flight()} leases still outstanding 10 s after every worker hung up")
        left: list[int] = []
        while True:
            batch = q.dequeue_many(1000)
            if not batch:
                break
            left.extend(batch)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping the workers", flush=True)
        elapsed = time.monotonic() - t0
        ops_total = sum(counters[:])
        left = []
    finally:
        stop.set()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if q is not None:
            q.close()  # stops the owner

    enq: list[int] = []
    taken: Counter = Counter()
    for k in range(len(procs)):
        with contextlib.suppress(FileNotFoundError), open(os.path.join(ledgers, f"w{k}.txt")) as f:
            for line in f:
                kind, _, value = line.partition(" ")
                if kind == "e":
                    enq.append(int(value))
                else:
                    taken[int(value)] += 1
    taken.update(left)
    enqueued = set(enq)
    lost = enqueued - set(taken)
    dups = {i for i, c in taken.items() if c > 1}
    phantoms = set(taken) - enqueued
    if not interrupted:
        if len(enq) != len(enqueued):
            problems.append("an id was enqueued twice (a bug in this script)")
        if lost:
            problems.append(f"{len(lost)} enqueued ids never came out: {sorted(lost)[:10]}")
        if dups:
            problems.append(f"{len(dups)} ids came out more than once: {sorted(dups)[:10]}")
        if phantoms:
            problems.append(f"{len(phantoms)} ids came out that were never enqueued: {sorted(phantoms)[:10]}")

    if sum(troubles[:]):
        problems.append(
            f"{sum(troubles[:])} leases held by workers were released behind their back (ack/release raised "
            "LeaseError; no ttl is used, so the owner must keep them until the holder hangs up)"
        )
    steady = [s for s in samples if s[0] >= args.warmup * args.seconds]
    rss_ok, rss0, rss1 = flat([s[1] for s in steady], args.rss_tolerance, args.rss_slack)
    fd_ok, fd0, fd1 = flat([s[2] for s in steady], 0.0, args.fd_tolerance)
    th_ok, th0, th1 = flat([s[3] for s in steady], 0.0, THREAD_TOLERANCE)
    if len(steady) < 6 and not interrupted:
        problems.append(f"only {len(steady)} owner samples after the warm-up: too short to judge flatness")
    if not rss_ok:
        problems.append(f"owner memory grew: {rss0:.1f} MB -> {rss1:.1f} MB")
    if not fd_ok:
        problems.append(f"owner fds grew: {fd0:g} -> {fd1:g}")
    if not th_ok:
        problems.append(f"owner threads grew: {th0:g} -> {th1:g}")
    for text in problems:
        print("PROBLEM: " + text)
    if not problems:
        shutil.rmtree(base, ignore_errors=True)
    elif problems:
        print(f"ledgers kept under {base}")
    peak = max((s[1] for s in samples), default=0.0)
    if interrupted:
        accounting = "items: not checked (interrupted)"
    else:
        accounting = f"items: {len(enqueued)}, lost: {len(lost)}, duplicated: {len(dups)}"
    print(
        f"soak: {elapsed:.0f} s, {len(procs)} procs, ops: {ops_total} ({ops_total / max(elapsed, 1e-9):.0f}/s), "
        f"{accounting}, memory: {'flat' if rss_ok else 'GREW'} ({rss0:.1f} -> {rss1:.1f} MB, peak {peak:.1f}), "
        f"fds: {'flat' if fd_ok else 'GREW'} ({fd0:g} -> {fd1:g}), "
        f"threads: {'flat' if th_ok else 'GREW'} ({th0:g} -> {th1:g})"
    )
    reasons = []
    if problems:
        reasons.append(count(len(problems), "problem"))
    if interrupted:
        reasons.append("interrupted")
    return verdict(reasons)


if __name__ == "__main__":
    sys.exit(main())
