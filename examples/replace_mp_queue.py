"""One producer, several consumers: with multiprocessing.Queue, then with dque, side by side.

    python examples/replace_mp_queue.py [--items N] [--consumers C]

The program is the same in both runs; only the queue differs. With
multiprocessing.Queue the items live in memory (and in a feeder thread: put()
returns before the item is delivered), so a crash loses them. With
dque.ProcessSafeDQue they are on disk when put() returns, survive a crash or
restart, and the queue can hold more than memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time

import dque

STOP = None


def consumer(q, results) -> None:
    # The same code for both queues: get() until the stop marker.
    total = 0
    while True:
        item = q.get()
        if item is STOP:
            break
        total += item["n"]
    results.put(total)


def run(label: str, q, results, items: int, consumers: int) -> None:
    procs = [multiprocessing.Process(target=consumer, args=(q, results)) for _ in range(consumers)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for i in range(items):
        q.put({"n": i})
    for _ in procs:
        q.put(STOP)
    totals = [results.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    assert sum(totals) == sum(range(items)), "lost or duplicated items"
    print(f"{label:32s} {items} items, {consumers} consumers: {elapsed:6.2f} s ({items / elapsed:9,.0f} items/s), sum ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--consumers", type=int, default=4)
    args = parser.parse_args()

    # 1. The standard library: in memory, lost on a crash.
    run("multiprocessing.Queue", multiprocessing.Queue(), multiprocessing.Queue(), args.items, args.consumers)

    # 2. dque: the same program; the queue is durable (turbo: a killed process loses nothing).
    with tempfile.TemporaryDirectory() as tmp:
        with dque.ProcessSafeDQue("work", tmp, turbo=True) as q, dque.ProcessSafeDQue("results", tmp) as results:
            run("dque.ProcessSafeDQue (turbo)", q, results, args.items, args.consumers)


if __name__ == "__main__":
    main()
