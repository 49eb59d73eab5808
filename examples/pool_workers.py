"""The main demo: a multiprocessing Pool of workers draining one durable queue.

    python examples/pool_workers.py [--dir DIR] [--jobs N] [--workers W] [--reset]

The first run fills the queue "jobs" with N jobs; every worker leases jobs
from it, "works" (squares the number, sleeps a little), puts a result on the
durable queue "results" and acks the job. Kill it at any moment (Ctrl-C, or
kill -9 of the whole process group) and run it again: it carries on with the
jobs that are left. No job is lost: one a worker was holding when it was
killed comes back (its lease was never acked) and is done again, so a job may
have two results, never none.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import dque

_jobs: dque.ProcessSafeDQue
_results: dque.ProcessSafeDQue


def _init(jobs: dque.ProcessSafeDQue, results: dque.ProcessSafeDQue) -> None:
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

    if args.reset:
        import shutil

        shutil.rmtree(args.dir, ignore_errors=True)
    # Turbo mode: a killed process loses nothing; a power cut at most the last second.
    with dque.ProcessSafeDQue("jobs", args.dir, turbo=True) as jobs, dque.ProcessSafeDQue(
        "results", args.dir, turbo=True
    ) as results:
        if jobs.size() == 0 and results.size() == 0:
            jobs.enqueue_many(range(args.jobs))
            print(f"created {args.jobs} jobs in {os.path.abspath(args.dir)}")
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
