"""I/O errors at every file-system call of dque's workloads, as SQLite tests its I/O errors.

Run it from the repository root with the project's virtualenv::

    python stress/fault_sweep.py                    # every call of every workload (about a minute)
    python stress/fault_sweep.py --quick            # a few seconds (CI smoke run)
    python stress/fault_sweep.py --workload dequeue --mode EIO --n 7 -v   # one run, in detail

``tests/faults.py`` (``FaultLayer``) replaces the functions of ``dque._fs``
with wrappers that count the calls and make the N-th one raise an OSError
before it runs (so it has no effect): in the modes EIO, ENOSPC and EMFILE the
N-th call that is not a sync, in the mode ``sync`` the N-th ``datasync`` or
``sync_dir`` (with EIO). For each workload (a short deterministic script of
dque calls on a queue of segment size 3: enqueue, dequeue, batches, leases,
acks, releases, ttl expiry, dead letters, opening after a crash, close and
reopen, turbo mode) and each mode, N runs from 1 until a run no longer
reaches call N. Each run is checked against a model of the calls that
returned (see ``faults.Runner``): a call failed by a fault that is not a sync
must have changed nothing (the counts match, the same call tried again does
what it would have done); a failed sync must poison the handle (the next
call raises) and, on reopen, everything that returned must be there, once;
at the end the queue is reopened without faults, drained and compared item
by item.

The run ends with::

    workloads: W, faults injected: F, lost: 0, duplicated: 0, miscounted: 0, wrong errors: 0, not poisoned: 0, order: 0
    VERDICT: CLEAN

(exit status 0), or ``VERDICT: NOT CLEAN (...)`` and exit status 1, after the
distinct failures (one per workload, mode, failing call and kind of problem),
the first ``--show`` of them in full.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
sys.path.insert(0, TESTS)

import faults  # noqa: E402  (tests/faults.py: the fault-injection layer and the workloads)
from _verdict import count, verdict  # noqa: E402  (stress/_verdict.py)

COUNTERS = ("lost", "duplicated", "miscounted", "wrong_errors", "not_poisoned", "order")
QUICK_STRIDE = 9  # --quick: every 9th call (and the first)


def signature(res: faults.Result) -> str:
    """What a failure is, for deduplication: the step's call, the failing _fs call, the kinds of problem."""
    f = res.fault
    kinds = sorted({p.split(":", 1)[0] for p in res.problems if not p.startswith("note")})
    step = re.sub(r"^step \d+ ", "", f.step) if f else "-"
    step = re.sub(r"\(.*", "", step)
    return f"{step} / {f.name if f else '-'} / {','.join(kinds)}"


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("dque").setLevel(logging.CRITICAL)  # failed dead-letter moves are expected here
    p = argparse.ArgumentParser(
        description="Fault sweep: an OSError at each file-system call of dque's workloads, checked against a model.",
        epilog="Ends with 'workloads: W, faults injected: F, lost: 0, duplicated: 0, ...' and a VERDICT line; "
        "exit status 1 if the verdict is not clean.",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: every 9th call, a few seconds")
    p.add_argument("--stride", type=int, default=1, help="try every k-th call (default 1: all)")
    p.add_argument("--workload", action="append", choices=sorted(faults.WORKLOADS), help="only these (repeatable)")
    p.add_argument("--mode", action="append", choices=faults.MODES, help="only these modes (repeatable)")
    p.add_argument("--n", type=int, default=None, help="only this call number (with one --workload and --mode)")
    p.add_argument("--seconds", type=float, default=1800.0, help="time bound: stop early after this (default 1800)")
    p.add_argument("--show", type=int, default=3, help="failures printed in full (default 3)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every failing run's report")
    p.add_argument("--dir", default=None, help="where to make this run's work directory (default: $TMPDIR or /tmp)")
    args = p.parse_args(argv)
    stride = QUICK_STRIDE if args.quick else max(1, args.stride)
    workloads = args.workload or list(faults.WORKLOADS)
    modes = args.mode or list(faults.MODES)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dque-fault-sweep-", dir=args.dir)
    templates = os.path.join(base, "templates")
    os.makedirs(templates)
    print(
        f"fault_sweep: {len(workloads)} workloads, modes {','.join(modes)}, every {stride} call(s), in {base}",
        flush=True,
    )
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    totals = Counter()
    injected = 0
    runs = 0
    failing: dict[str, list[faults.Result]] = {}
    interrupted = timed_out = False
    try:
        for name in workloads:
            for mode in modes:
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                if args.n is not None:
                    results = [faults.run_once(name, mode, args.n, base, templates)]
                    calls = results[0].calls
                else:
                    calls, results = faults.sweep(name, mode, base, stride=stride, template_root=templates)
                runs += len(results)
                bad = 0
                for res in results:
                    if res.fault is not None:
                        injected += 1
                    for c in COUNTERS:
                        totals[c] += getattr(res, c)
                    if any(not p.startswith("note") for p in res.problems):
                        bad += 1
                        failing.setdefault(f"{name} {mode}: {signature(res)}", []).append(res)
                        if args.verbose:
                            print(res.report(), flush=True)
                print(f"  {name:24s} {mode:6s} {calls:4d} calls, {len(results):4d} runs, {bad:3d} failing", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", flush=True)
    elapsed = time.monotonic() - t0
    if failing:
        print(f"\n{len(failing)} distinct failures (workload mode: step / failing call / problems -> N values):")
        for key, results in failing.items():
            ns = [r.n for r in results]
            print(f"  {key} -> N={ns[:12]}{' ...' if len(ns) > 12 else ''}")
        print()
        for results in list(failing.values())[: args.show]:
            print("FAIL: " + results[0].report(), flush=True)
    else:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{runs} runs, {elapsed:.1f} s")
    print(
        f"workloads: {len(workloads)}, faults injected: {injected}, lost: {totals['lost']}, "
        f"duplicated: {totals['duplicated']}, miscounted: {totals['miscounted']}, "
        f"wrong errors: {totals['wrong_errors']}, not poisoned: {totals['not_poisoned']}, order: {totals['order']}"
    )
    reasons = []
    if failing:
        reasons.append(count(len(failing), "distinct failure"))
    if interrupted:
        reasons.append("interrupted")
    if timed_out:
        reasons.append("time bound reached")
    if injected == 0:
        reasons.append("no fault injected")
    return verdict(reasons)


if __name__ == "__main__":
    sys.exit(main())
