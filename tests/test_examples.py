"""The examples run as they are: the README's main demo (and its kill-and-rerun), and the others."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dque

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(args, **kwargs) -> str:
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_basic_example(tmp_path):
    out = run([EXAMPLES / "basic.py", tmp_path])
    assert "dequeue_block -> {'name': 'late item', 'id': 4}" in out
    assert "every change is on disk" in out


def test_replace_mp_queue_example():
    out = run([EXAMPLES / "replace_mp_queue.py", "--items", "300", "--consumers", "2"])
    assert out.count("sum ok") == 2


def results_count(out: str) -> int:
    return int(re.search(r"(\d+) results stored", out).group(1))


def test_pool_workers_example_runs_to_the_end(tmp_path):
    out = run([EXAMPLES / "pool_workers.py", "--dir", tmp_path / "demo", "--jobs", "400", "--workers", "2"])
    assert "created 400 jobs" in out
    assert results_count(out) == 400


def test_pool_workers_example_carries_on_after_a_kill(tmp_path):
    demo = tmp_path / "demo"
    args = [sys.executable, str(EXAMPLES / "pool_workers.py"), "--dir", str(demo), "--jobs", "3000", "--workers", "2"]
    # Its own session, so that the kill takes the pool workers and the owners with it, as Ctrl-C would.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "done" not in line and time.monotonic() < deadline:  # wait for the first progress line
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    out = run(args[1:])
    left = int(re.search(r"carrying on: (\d+) jobs left", out).group(1))
    assert 0 < left < 3000
    # Every job has a result; a job leased by a worker when it was killed was done again.
    with dque.open("results", demo) as results:
        jobs = [r["job"] for r in results.dequeue_many(results.size())]
    assert set(jobs) == set(range(3000))
    assert len(jobs) - 3000 <= 2  # at most one redone job per worker
