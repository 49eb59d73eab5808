"""Safe-mode ProcessSafeDQue through the owner: items/s, syncs per item, and single-client latency.

    python stress/owner_syncs.py [--items 3000] [--consumers 4] [--single 1000] [--json]

``pairs``: 1 producer (this process) -> ``--consumers`` consumer processes, each item a durable
``put`` and a durable ``get(timeout)``, as procs_ab.py's safe row. The owner is started with the
``fork`` context after ``dque._fs.datasync`` is wrapped to count its calls in shared memory, so
the count is the owner's own fdatasyncs (segment syncs; directory syncs are not counted).

``single``: one client process alone doing ``put`` then ``get`` in a loop against a safe owner:
microseconds per put+get pair (median of the loop's pairs), and syncs per pair.

Findings of 2026-12-06 (2-core VM shared with other test runs; medians [min-max] of 5 rounds):
the safe row already costs 1.00 syncs per item with 4 consumers (the consumer's next get arrives
with the producer's next put and is carried out in the same group), so issue 10's hypothesis of
two syncs per item does not hold for it. A trace of the owner showed it never waiting in poll: each
item is one sync (~125-200 us here) plus ~130 us of the owner's work in series, and the next put
cannot be sent before the last put's reply (which follows its sync): per item >= sync + the
producer's round trip, so 0.8x the fdatasync loop is out of reach for one producer of durable puts.
Tried in _owner.py and not kept (< 10%, within noise): a second gather (poll(0)) before the group
sync, 3,105 [2,292-3,291] -> 2,972 [2,795-3,195] items/s (syncs per item 1.00 -> 1.00; with 1
consumer 1.34 -> 1.15, items/s unchanged); that plus replies to takes deferred until the next
sync starts, 2,977 [2,660-3,219] -> 2,568 [791-2,909]. Single-client put+get: 455 -> 497 us.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any


def _counting(counter: Any) -> None:
    from dque import _fs

    real = _fs.datasync

    def datasync(fd: int) -> None:
        real(fd)
        with counter.get_lock():
            counter.value += 1

    _fs.datasync = datasync


def _consumer(q: Any, out: Any) -> None:
    n = 0
    while True:
        item = q.get(timeout=30)
        if item is None:
            q.put(None)  # for the next consumer
            break
        n += 1
    out.put(n)


def pairs(items: int, consumers: int) -> dict[str, float]:
    import dque

    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("q", 0)
    _counting(counter)
    tmp = tempfile.mkdtemp(prefix="owner_syncs-")
    try:
        q = dque.ProcessSafeDQue("q", tmp, turbo=False, segment_size=100_000, context=ctx)
        out = ctx.Queue()
        procs = [ctx.Process(target=_consumer, args=(q, out)) for _ in range(consumers)]
        for p in procs:
            p.start()
        q.size()
        time.sleep(0.5)  # the consumers connect and park
        data = [{"name": "item", "id": i, "payload": "x" * 60} for i in range(items)]
        before = counter.value
        start = time.perf_counter()
        for item in data:
            q.put(item)
        q.put(None)
        got = sum(out.get(timeout=120) for _ in procs)
        elapsed = time.perf_counter() - start
        syncs = counter.value - before
        for p in procs:
            p.join()
        assert got == items, (got, items)
        q.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rate": items / elapsed, "syncs_per_item": syncs / items}


def _single_client(q: Any, n: int, out: Any) -> None:
    times = []
    for i in range(n):
        t = time.perf_counter()
        q.put(i)
        assert q.get(timeout=10) == i
        times.append(time.perf_counter() - t)
    out.put(times)


def single(n: int) -> dict[str, float]:
    import dque

    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("q", 0)
    _counting(counter)
    tmp = tempfile.mkdtemp(prefix="owner_syncs-")
    try:
        q = dque.ProcessSafeDQue("q", tmp, turbo=False, segment_size=100_000, context=ctx)
        q.size()
        out = ctx.Queue()
        before = counter.value
        p = ctx.Process(target=_single_client, args=(q, n, out))
        p.start()
        times = out.get(timeout=120)
        p.join()
        syncs = counter.value - before
        q.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"pair_us": statistics.median(times) * 1e6, "syncs_per_pair": syncs / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--single", type=int, default=1000, help="put+get pairs of the single-client loop")
    parser.add_argument("--only", choices=("pairs", "single"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict[str, float] = {}
    if args.only != "single":
        result.update(pairs(args.items, args.consumers))
    if args.only != "pairs":
        result.update(single(args.single))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v:,.3f}")


if __name__ == "__main__":
    sys.exit(main())
