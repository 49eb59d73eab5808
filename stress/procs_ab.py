"""Cross-process A/B: 1 producer -> 4 consumer processes, ~100-byte dicts, contenders in turns within rounds.

    python stress/procs_ab.py [--rounds 3] [--items 20000] [--batch-items 50000] [--before SRC] [--after SRC]

Each contender runs in a fresh interpreter (so ``--before``/``--after`` may point at two
source trees of dque: ``git archive <commit> src | tar -x -C /tmp/before``), in the same
round as every other; the table gives the median items/s of the rounds with min and max.
Time runs from the first put to the last consumer's exit (every item taken).

Contenders: ProcessSafeDQue one item per call (turbo and safe), batches of 100 (turbo and safe);
``Manager().Queue()`` one item per call; ``multiprocessing.Queue`` one item per call and
with lists of 100 items per put; and the rate of a loop of 64-byte writes each followed by
``fdatasync`` (the safe rows' reference: each item there is a durable put and a durable take).

A run of 2026-12-06 (2-core VM shared with other work, 5 rounds, before = thread-per-client owner,
after = the event-loop owner), items/s median (min - max):
turbo per item 9,728 (8,434 - 14,598) -> 11,260 (10,041 - 13,762); safe per item 2,493 -> 3,087;
batches of 100 turbo 220,851 -> 256,272, safe 96,252 -> 124,878; Manager().Queue() 9,213;
mp.Queue per item 85,508, lists of 100 2,160,819; fdatasync loop 8,313.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

CONSUMERS = 4
BATCH = 100


def _item(i: int) -> dict[str, Any]:
    return {"name": "item", "id": i, "payload": "x" * 60}  # ~100 bytes pickled


def _dque_consumer(q: Any, batched: bool, out: Any) -> None:
    n = 0
    stop = False
    while not stop:
        got = q.dequeue_many(BATCH) if batched else []
        if not got:
            got = [q.get(timeout=30)]
        for item in got:
            if item is None:
                if stop:
                    q.enqueue(None)  # a second sentinel: for another consumer
                stop = True
            else:
                n += 1
    out.put(n)


def _mp_consumer(q: Any, batched: bool, out: Any) -> None:
    n = 0
    while True:
        got = q.get(timeout=30)
        if got is None:
            break
        n += len(got) if batched else 1
    out.put(n)


def _fdatasync_rate(seconds: float = 1.0) -> float:
    """64-byte writes each followed by fdatasync, per second, into pre-allocated room (the safe-mode reference)."""
    fd, path = tempfile.mkstemp(prefix="procs_ab-")
    try:
        os.posix_fallocate(fd, 0, 1 << 24)
        os.fsync(fd)
        n, end = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            os.pwrite(fd, b"x" * 64, 64 * n)
            os.fdatasync(fd)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)


def run_one(kind: str, items: int) -> float:
    """Items per second of one contender, 1 producer (this process) -> CONSUMERS processes."""
    if kind == "fdatasync":
        return _fdatasync_rate()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    batched = "batch" in kind
    tmp = tempfile.mkdtemp(prefix="procs_ab-")
    manager = None
    if kind.startswith("dque"):
        import dque

        q: Any = dque.ProcessSafeDQue("q", tmp, turbo="turbo" in kind, segment_size=10_000)
        target: Any = _dque_consumer
    elif kind.startswith("manager"):
        manager = ctx.Manager()
        q, target = manager.Queue(), _mp_consumer
    else:
        q, target = ctx.Queue(), _mp_consumer
    procs = [ctx.Process(target=target, args=(q, batched, out)) for _ in range(CONSUMERS)]
    for p in procs:
        p.start()
    data = [_item(i) for i in range(items)]
    start = time.perf_counter()
    if kind.startswith("dque"):
        if batched:
            for i in range(0, items, BATCH):
                q.enqueue_many(data[i : i + BATCH])
        else:
            for item in data:
                q.put(item)
        q.enqueue_many([None] * CONSUMERS)
    elif batched:
        for i in range(0, items, BATCH):
            q.put(data[i : i + BATCH])
        for _ in range(CONSUMERS):
            q.put(None)
    else:
        for item in data:
            q.put(item)
        for _ in range(CONSUMERS):
            q.put(None)
    got = sum(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    assert got == items, (kind, got, items)
    if kind.startswith("dque"):
        q.close()
    if manager is not None:
        manager.shutdown()
    return items / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=20_000, help="items of the one-per-call rows")
    parser.add_argument("--batch-items", type=int, default=50_000, help="items of the batch rows")
    parser.add_argument("--before", help="a dque source tree (its src/) to compare with --after")
    parser.add_argument("--after", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, items = args.one.split(":")
        print(json.dumps(run_one(kind, int(items))))
        return
    trees = {"after": args.after} if not args.before else {"before": args.before, "after": args.after}
    contenders: list[tuple[str, str, str, int]] = []  # (label, kind, src, items)
    for kind, n in (
        ("dque-turbo", args.items),
        ("dque-safe", args.items // 4),
        ("dque-batch-turbo", args.batch_items),
        ("dque-batch-safe", args.batch_items),
    ):
        for tree, src in trees.items():
            contenders.append((f"{kind} ({tree})", kind, src, n))
    contenders += [
        ("Manager().Queue() per item", "manager", "", args.items),
        ("mp.Queue per item", "mpqueue", "", args.items),
        ("mp.Queue lists of 100", "mpqueue-batch", "", args.batch_items),
        ("fdatasync loop (64 B writes, one process)", "fdatasync", "", 0),
    ]
    results: dict[str, list[float]] = {label: [] for label, *_ in contenders}
    for r in range(args.rounds):
        for label, kind, src, n in contenders:
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            if src:
                env["PYTHONPATH"] = os.path.abspath(src)
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--one", f"{kind}:{n}"],
                env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if proc.returncode:
                print(f"{label}: failed\n{proc.stderr}", file=sys.stderr)
                continue
            results[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1} done", file=sys.stderr)
    print(f"| contender (1 producer -> {CONSUMERS} consumers) | items/s median | min - max |")
    print("|---|---:|---:|")
    for label, rates in results.items():
        if rates:
            print(f"| {label} | {statistics.median(rates):,.0f} | {min(rates):,.0f} - {max(rates):,.0f} |")


if __name__ == "__main__":
    main()
