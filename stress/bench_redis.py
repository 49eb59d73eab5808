"""RedisQueue against a raw redis-py loop doing the same commands, and against the file backends.

    python stress/bench_redis.py                 # 5 rounds, both fsync settings
    python stress/bench_redis.py --quick         # smoke run, a few seconds (CI)
    python stress/bench_redis.py --before /tmp/old/src   # also time another tree's RedisQueue

The script starts its own ``redis-server`` (from PATH) on a free port in a
temporary directory, once with ``--appendonly yes --appendfsync always`` and
once with ``--appendonly yes --appendfsync no`` (the two settings are labelled
in the table), and stops it by pid. Items are ~100-byte dicts, pickled by
every contender (the raw loop too: the same bytes go over the wire).

Rows, and what each contender does per call:

- ``put``: RedisQueue ``put(item)`` (one EVALSHA of its put script: XADD +
  INCRBY of the task counter); raw: a non-transactional pipeline of
  ``XADD <name> * d <payload>`` and ``INCR <name>:tasks``, one round trip;
  file: ``DQue.enqueue(item)``.
- ``take``: RedisQueue ``dequeue()`` (one EVALSHA of its take script: settle
  expired leases, look at the returned set, XREADGROUP COUNT 1, XACK, XDEL);
  raw: ``XREADGROUP GROUP g c COUNT 1 STREAMS <name> >`` then a pipeline of
  ``XACK`` + ``XDEL`` of its id: two round trips, the fewest without a
  script; file: ``DQue.dequeue()``.
- ``put x100``: RedisQueue ``enqueue_many(100 items)`` (one EVALSHA: 100 XADD
  + INCRBY); raw: one pipeline of 100 XADD + ``INCRBY 100``; file:
  ``DQue.enqueue_many``.
- ``take x100``: RedisQueue ``dequeue_many(100)`` (one EVALSHA); raw:
  ``XREADGROUP COUNT 100`` then one pipeline of ``XACK`` + ``XDEL`` of the
  100 ids; file: ``DQue.dequeue_many(100)``.

Reference (put row only, no target): ``raw XADD alone``, a plain
``client.xadd`` per item (no task counter, so not the same work).

File contenders: ``DQue`` turbo (no fsync per call) and safe (fdatasync per
call) in a temporary directory on the same disk. The contenders of a row take
turns within each of ``--rounds`` rounds, in an order that alternates from
round to round; the table gives items/s as median (min-max) over the rounds,
and each contender's ratio to the raw loop as the median (min-max) of the
per-round ratios. The last line is the verdict, one target per row and
setting: RedisQueue >= 0.8x the raw loop. The exit status is 0 whatever the
verdict (and 0, with a SKIP line, when there is no redis-server or redis-py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import dque  # noqa: E402

TARGET = 0.8
BATCH = 100
SETTINGS = ("always", "no")
ROWS = ("put", "take", f"put x{BATCH}", f"take x{BATCH}")
PICKLE = pickle.HIGHEST_PROTOCOL

try:
    import redis
except ImportError:  # pragma: no cover - depends on the environment
    redis = None  # type: ignore[assignment]


def items_of(n: int) -> list[dict[str, Any]]:
    return [{"name": "Joe", "id": i, "tags": ["a", "b"], "pad": "x" * 40} for i in range(n)]


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One redis-server of ours: AOF on, the given appendfsync, no RDB snapshots; ended by pid."""

    def __init__(self, binary: str, appendfsync: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="dque-bench-redis-")
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--appendonly", "yes",
                "--appendfsync", appendfsync, "--save", "", "--daemonize", "no", "--logfile", "redis.log"]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1) as c:
                    if c.ping():
                        return
            except redis.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- contenders
# Each contender is make(ctx) -> (fill(items), timed(items) -> seconds, close()); fill is untimed.

Run = Callable[[str, list[Any]], float]


def redisqueue_run(cls: Any, url: str, client: Any) -> Run:
    def run(row: str, data: list[Any]) -> float:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        q = cls(name, url)
        try:
            if row.startswith("take"):
                for i in range(0, len(data), BATCH):
                    q.enqueue_many(data[i : i + BATCH])
            t = time.perf_counter()
            if row == "put":
                for x in data:
                    q.put(x)
            elif row == "take":
                for _ in data:
                    q.dequeue()
            elif row.startswith("put"):
                for i in range(0, len(data), BATCH):
                    q.enqueue_many(data[i : i + BATCH])
            else:
                while q.dequeue_many(BATCH):
                    pass
            return time.perf_counter() - t
        finally:
            q.close()
            client.flushdb()

    return run


def raw_run(client: Any) -> Run:
    def run(row: str, data: list[Any]) -> float:
        name = f"raw-{uuid.uuid4().hex[:8]}"
        tasks = name + ":tasks"
        client.xgroup_create(name, "g", id="0", mkstream=True)
        try:
            if row.startswith("take"):
                for i in range(0, len(data), BATCH):
                    p = client.pipeline(transaction=False)
                    for x in data[i : i + BATCH]:
                        p.xadd(name, {"d": pickle.dumps(x, PICKLE)})
                    p.execute()
            t = time.perf_counter()
            if row == "put":
                for x in data:
                    p = client.pipeline(transaction=False)
                    p.xadd(name, {"d": pickle.dumps(x, PICKLE)})
                    p.incr(tasks)
                    p.execute()
            elif row == "take":
                for _ in data:
                    [[_, [(entry, fields)]]] = client.xreadgroup("g", "c", {name: ">"}, count=1)
                    pickle.loads(fields[b"d"])
                    p = client.pipeline(transaction=False)
                    p.xack(name, "g", entry)
                    p.xdel(name, entry)
                    p.execute()
            elif row.startswith("put"):
                for i in range(0, len(data), BATCH):
                    p = client.pipeline(transaction=False)
                    for x in data[i : i + BATCH]:
                        p.xadd(name, {"d": pickle.dumps(x, PICKLE)})
                    p.incrby(tasks, BATCH)
                    p.execute()
            else:
                while True:
                    got = client.xreadgroup("g", "c", {name: ">"}, count=BATCH)
                    if not got or not got[0][1]:
                        break
                    ids = []
                    for entry, fields in got[0][1]:
                        ids.append(entry)
                        pickle.loads(fields[b"d"])
                    p = client.pipeline(transaction=False)
                    p.xack(name, "g", *ids)
                    p.xdel(name, *ids)
                    p.execute()
            return time.perf_counter() - t
        finally:
            client.flushdb()

    return run


def xadd_alone_run(client: Any) -> Run:
    """The put row only (a reference, no target): XADD alone, no counter, no pipeline object."""

    def run(row: str, data: list[Any]) -> float:
        name = f"xadd-{uuid.uuid4().hex[:8]}"
        try:
            t = time.perf_counter()
            for x in data:
                client.xadd(name, {"d": pickle.dumps(x, PICKLE)})
            return time.perf_counter() - t
        finally:
            client.flushdb()

    return run


def file_run(turbo: bool, root: str) -> Run:
    def run(row: str, data: list[Any]) -> float:
        d = tempfile.mkdtemp(dir=root)
        q = dque.new("q", d, turbo=turbo)
        try:
            if row.startswith("take"):
                for i in range(0, len(data), BATCH):
                    q.enqueue_many(data[i : i + BATCH])
            t = time.perf_counter()
            if row == "put":
                for x in data:
                    q.enqueue(x)
            elif row == "take":
                for _ in data:
                    q.dequeue()
            elif row.startswith("put"):
                for i in range(0, len(data), BATCH):
                    q.enqueue_many(data[i : i + BATCH])
            else:
                while q.dequeue_many(BATCH):
                    pass
            return time.perf_counter() - t
        finally:
            q.close()
            shutil.rmtree(d, ignore_errors=True)

    return run


def load_before(src: str, tmp: str) -> Any:
    """Another tree's RedisQueue: its ``dque`` package copied here as ``dque_before`` (relative imports only)."""
    shutil.copytree(os.path.join(src, "dque"), os.path.join(tmp, "dque_before"))
    sys.path.insert(0, tmp)
    return importlib.import_module("dque_before").RedisQueue


# --------------------------------------------------------------------------- report


def fmt(values: list[float], spec: str) -> str:
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def bench_setting(
    setting: str, binary: str, args: argparse.Namespace, before: Any, root: str
) -> dict[str, dict[str, list[float]]]:
    server = Server(binary, setting)
    client = redis.Redis.from_url(server.url)
    try:
        contenders: dict[str, Run] = {
            "raw redis-py": raw_run(client),
            "RedisQueue": redisqueue_run(dque.RedisQueue, server.url, client),
        }
        if before is not None:
            contenders["RedisQueue (before)"] = redisqueue_run(before, server.url, client)
        contenders["raw XADD alone"] = xadd_alone_run(client)
        contenders["DQue turbo"] = file_run(True, root)
        contenders["DQue safe"] = file_run(False, root)
        rates: dict[str, dict[str, list[float]]] = {row: {c: [] for c in contenders} for row in args.rows.split(",")}
        names = list(contenders)
        for n in range(args.rounds):
            for row in args.rows.split(","):
                single = not row.endswith(f"x{BATCH}")
                data = items_of(args.single if single else args.batched)
                order = names if n % 2 == 0 else names[::-1]
                for who in order:
                    if who == "raw XADD alone" and row != "put":
                        continue
                    if who == "DQue safe" and single and len(data) > args.safe_single:
                        data_here = data[: args.safe_single]
                    else:
                        data_here = data
                    seconds = contenders[who](row, data_here)
                    rates[row][who].append(len(data_here) / seconds)
        return rates
    finally:
        client.close()
        server.stop()


def report(setting: str, rates: dict[str, dict[str, list[float]]]) -> list[tuple[str, float]]:
    print(f"\nappendfsync {setting} (appendonly yes):")
    print(f"  {'row':<10}{'contender':<21}{'items/s median (min-max)':>30}{'vs raw, per-round ratio':>30}")
    targets = []
    for row, by in rates.items():
        raw = by["raw redis-py"]
        for who, values in by.items():
            if not values:
                continue
            ratios = [v / r for v, r in zip(values, raw, strict=True)]
            print(f"  {row:<10}{who:<21}{fmt(values, ',.0f'):>30}{fmt(ratios, '.2f') + 'x':>30}")
            if who == "RedisQueue":
                targets.append((f"{row} (fsync {setting})", statistics.median(ratios)))
    return targets


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--single", type=int, default=3000, help="items in the one-per-call rows (default 3000)")
    p.add_argument("--batched", type=int, default=30000, help=f"items in the x{BATCH} rows (default 30000)")
    p.add_argument("--safe-single", type=int, default=500, help="at most this many for DQue safe one per call")
    p.add_argument("--settings", default=",".join(SETTINGS), help="appendfsync settings to run (always,no)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"rows to run (default: {','.join(ROWS)})")
    p.add_argument("--before", help="a source tree's src directory: also time its RedisQueue, as 'before'")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of small sizes, a few seconds")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.single, args.batched, args.safe_single = 2, 300, 2000, 100
    binary = shutil.which("redis-server")
    if binary is None or redis is None:
        why = "no redis-server binary on PATH" if binary is None else "no redis module (pip install 'dque[redis]')"
        print(f"bench_redis: SKIP ({why})")
        return 0
    started = time.monotonic()
    print("dque Redis benchmark" + (" (--quick)" if args.quick else ""))
    print(
        f"{args.rounds} rounds; {args.single} items one per call (DQue safe: {min(args.single, args.safe_single)}), "
        f"{args.batched} in batches of {BATCH}; contenders take turns within each round, order alternating"
    )
    targets: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="dque-bench-redis-files-", dir=".") as root:
        before = load_before(args.before, root) if args.before else None
        for setting in args.settings.split(","):
            targets += report(setting, bench_setting(setting, binary, args, before, root))
    print(f"\n({time.monotonic() - started:.1f} s)")
    parts = [f"RedisQueue/raw {goal}: {r:.2f}x {'PASS' if r >= TARGET else 'MISS'}" for goal, r in targets]
    print(f"targets: RedisQueue >= {TARGET}x the raw redis-py loop, median of the per-round ratios")
    print("VERDICT" + (" (quick sizes, indicative only)" if args.quick else "") + ": " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
