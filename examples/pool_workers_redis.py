"""The main demo on Redis: examples/pool_workers.py with the line that opens the queues changed.

    REDIS_URL=redis://localhost:6379/0 python examples/pool_workers_redis.py [--jobs N] [--workers W] [--reset]

The same multiprocessing Pool of workers and the same worker code, on two
RedisQueues ("jobs", "results") in the Redis server at $REDIS_URL instead of
two ProcessSafeDQues in a directory. What differs from pool_workers.py: the
``with`` statement that opens the queues, REDIS_URL, the type hints naming
the class, ``--reset`` (deletes the queues' keys; ``--dir`` is not used) and
the "created" message (tests/test_examples.py checks that nothing else does).
Kill it and run it again: it carries on; a job a killed worker held comes
back once its lease runs out (``lease_ttl``, 30 s by default), not at once as
with ProcessSafeDQue, and is done again.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import dque

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
_jobs: dque.RedisQueue
_results: dque.RedisQueue


def _init(jobs: dque.RedisQueue, results: dque.RedisQueue) -> None:
    global _jobs, _results
    _jobs, _results = jobs, results  # unpickled here: each worker reconnects to the owners


def work(worker_no: int) -> int:
    done = 0
    while True:
        try:
            lease = _jobs.lease(timeout=0.5)
        except dque.Empty:
            return done
        with lease:  # acked when the block ends cleanly, released if it raises
            job = lease.item
            time.sleep(0.002)  # the "work"
            _results.enqueue({"job": job, "square": job * job, "deliveries": lease.deliveries, "pid": os.getpid()})
        done += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="dque-demo", help="where the queues live (default ./dque-demo)")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs to create on the first run")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reset", action="store_true", help="start over with a fresh set of jobs")
    args = parser.parse_args()

    if args.reset:  # (Redis: delete the two queues' keys instead of the directory)
        import redis

        with redis.Redis.from_url(REDIS_URL) as r:
            r.delete("jobs", "results", *r.scan_iter("jobs[:.]*"), *r.scan_iter("results[:.]*"))
    # Durable as the server is set up: see the README, "Beyond one machine".
    with dque.RedisQueue("jobs", REDIS_URL) as jobs, dque.RedisQueue("results", REDIS_URL) as results:
        if jobs.size() == 0 and results.size() == 0:
            jobs.enqueue_many(range(args.jobs))
            print(f"created {args.jobs} jobs in {REDIS_URL}")
        else:
            print(f"carrying on: {jobs.size()} jobs left, {results.size()} results so far")
        total = jobs.size() + jobs.in_flight()
        started = time.monotonic()
        with multiprocessing.Pool(args.workers, initializer=_init, initargs=(jobs, results)) as pool:
            pending = pool.map_async(work, range(args.workers))
            while not pending.ready():
                pending.wait(0.5)
                left = jobs.size()
                print(f"  {total - left:5d} done, {left:5d} left, {results.size():5d} results", flush=True)
            per_worker = pending.get()
        elapsed = time.monotonic() - started
        print(f"workers did {per_worker} jobs in {elapsed:.1f} s; {results.size()} results stored")
        print("run again with --reset to start over")


if __name__ == "__main__":
    main()
