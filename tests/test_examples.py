"""The examples run as they are: the README's main demo (and its kill-and-rerun), and the others."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_pool_workers_redis_differs_from_the_main_demo_only_where_it_says() -> None:
    """examples/pool_workers_redis.py is pool_workers.py with the queues opened on Redis: no other change."""
    import difflib

    def code(name: str) -> list[str]:
        text = (EXAMPLES / name).read_text()
        return text[text.index('"""\n', 3) + 4 :].splitlines()  # after the module docstring

    changed = [
        line[1:].strip()
        for line in difflib.unified_diff(code("pool_workers.py"), code("pool_workers_redis.py"), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    allowed = ("ProcessSafeDQue", "RedisQueue", "REDIS_URL", "args.reset", "import shutil", "import redis")
    allowed += ("shutil.rmtree", "r.delete(", "# Turbo mode", "# Durable as", '"results", args.dir', ") as results:")
    allowed += ('print(f"created {args.jobs} jobs in',)
    assert changed and all(any(a in line for a in allowed) for line in changed), changed


def test_pool_workers_redis_example_runs_to_the_end(tmp_path):
    from redis_server import SKIP_REASON, RedisServer

    if SKIP_REASON is not None:
        pytest.skip(f"pool_workers_redis.py needs a Redis server: {SKIP_REASON}")
    server = RedisServer(str(tmp_path)).start()
    try:
        env = dict(os.environ, REDIS_URL=server.url)
        example = EXAMPLES / "pool_workers_redis.py"
        out = run([example, "--jobs", "400", "--workers", "2"], env=env)
        assert "created 400 jobs" in out and results_count(out) == 400
        out = run([example, "--jobs", "400", "--workers", "2"], env=env)  # a second run: nothing left to do
        assert "carrying on: 0 jobs left, 400 results so far" in out
        out = run([example, "--jobs", "300", "--workers", "2", "--reset"], env=env)
        assert "created 300 jobs" in out and results_count(out) == 300
        with dque.RedisQueue("results", server.url) as results:
            assert sorted(r["job"] for r in results.dequeue_many(1000)) == list(range(300))
    finally:
        server.stop()
