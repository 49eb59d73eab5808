"""A/B: the engine rows of two dque source trees, taking turns in the same rounds.

For a change to the engine, "no regression beyond noise" is a claim about two
versions on the same machine at the same time. This runs each workload in a
fresh subprocess per version (``PYTHONPATH`` set to that tree's ``src``),
alternating A, B, A, B ... for ``--rounds`` rounds, and reports per row the
median (min, max) rate of each and of the per-round ratio B/A::

    git worktree add /tmp/before HEAD~3          # the tree to compare against
    python stress/ab.py --a /tmp/before/src --b src
    python stress/ab.py --quick                  # smoke run: this tree against itself

Rows (turbo mode unless said; ~100-byte dict items as in bench.py):
enqueue, dequeue (one item per call), dequeue_many(100), lease+ack (one per
call), enqueue_many(100) + dequeue_many(100) in safe mode (one fdatasync per batch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

WORKLOAD = r"""
import json, sys, tempfile, time
import dque
rows, items = json.loads(sys.argv[1]), int(sys.argv[2])
data = [{"name": "Joe", "id": i, "tags": ["a", "b"], "pad": "x" * 40} for i in range(items)]
out = {}
with tempfile.TemporaryDirectory(dir=sys.argv[3]) as d:
    if "enqueue" in rows or "dequeue" in rows:
        q = dque.new("a", d, turbo=True)
        t = time.perf_counter()
        for x in data:
            q.enqueue(x)
        out["enqueue"] = items / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(items):
            q.dequeue()
        out["dequeue"] = items / (time.perf_counter() - t)
        q.close()
    if "dequeue_many" in rows:
        q = dque.new("b", d, turbo=True)
        q.enqueue_many(data)
        t = time.perf_counter()
        while q.dequeue_many(100):
            pass
        out["dequeue_many"] = items / (time.perf_counter() - t)
        q.close()
    if "lease_ack" in rows:
        q = dque.new("c", d, turbo=True)
        q.enqueue_many(data)
        t = time.perf_counter()
        for _ in range(items):
            q.lease(block=False).ack()
        out["lease_ack"] = items / (time.perf_counter() - t)
        q.close()
    if "safe_batches" in rows:
        q = dque.new("e", d)
        n = min(items, 20000)
        t = time.perf_counter()
        for i in range(0, n, 100):
            q.enqueue_many(data[i : i + 100])
        while q.dequeue_many(100):
            pass
        out["safe_batches"] = n / (time.perf_counter() - t)
        q.close()
print(json.dumps(out))
"""

ROWS = ["enqueue", "dequeue", "dequeue_many", "lease_ack", "safe_batches"]


def run(src: str, rows: list[str], items: int, tmp: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    proc = subprocess.run(
        [sys.executable, "-c", WORKLOAD, json.dumps(rows), str(items), tmp], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def main() -> None:
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default=here, help="the source tree to compare against (its src directory)")
    p.add_argument("--b", default=here, help="the source tree under test (default: this one)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 2000 items")
    args = p.parse_args()
    rounds, items = (2, 2000) if args.quick else (args.rounds, args.items)
    rows = args.rows.split(",")
    results: dict[str, dict[str, list[float]]] = {"a": {r: [] for r in rows}, "b": {r: [] for r in rows}}
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        for n in range(rounds):
            order = ("a", "b") if n % 2 == 0 else ("b", "a")  # who goes first alternates too
            for who in order:
                got = run(getattr(args, who), rows, items, tmp)
                for row in rows:
                    results[who][row].append(got[row])
    print(f"A = {args.a}\nB = {args.b}\n{rounds} rounds, {items} items, turns taken A/B within each round")
    print(f"{'row':<14}{'A items/s median (min-max)':>32}{'B items/s median (min-max)':>32}{'B/A per round median (min-max)':>36}")
    for row in rows:
        a, b = results["a"][row], results["b"][row]
        ratios = [y / x for x, y in zip(a, b, strict=True)]

        def fmt(v: list[float], f: str = ",.0f") -> str:
            return f"{statistics.median(v):{f}} ({min(v):{f}}-{max(v):{f}})"

        print(f"{row:<14}{fmt(a):>32}{fmt(b):>32}{fmt(ratios, '.3f'):>36}")
    worst = min(statistics.median([y / x for x, y in zip(results["a"][r], results["b"][r], strict=True)]) for r in rows)
    print(f"rows: {len(rows)}, worst median ratio B/A: {worst:.3f}, VERDICT {'CLEAN' if worst >= 0.95 else 'SLOWER'}")


if __name__ == "__main__":
    main()
