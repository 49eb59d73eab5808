"""Simulated power cuts at thousands of random points, through tests/powercut.py.

Run it from the repository root with the project's virtualenv::

    python stress/power_cut.py                      # ~2000 cuts (a few minutes on 2 busy cores)
    python stress/power_cut.py --quick              # a few seconds (CI smoke run)
    python stress/power_cut.py --cuts 20000 --seconds 3600 --seed 7

``tests/powercut.py`` (``PowerLayer``) replaces the functions of ``dque._fs``
with a model of what a disk holds: each file's content as of its last
``datasync`` and the writes since, each directory's entries as of its last
sync. A power cut at I/O operation k stops the process there; ``materialize``
then writes what a reboot could find: only what was synced (``durable``), a
random prefix of the unsynced changes per file and directory (``random``), or
everything the OS had (``live``).

Each campaign (one seed) builds a random workload on a fresh queue with a
segment size of 2..6 (segments roll over and get deleted all the time):
enqueue, enqueue_many, dequeue, dequeue_many, lease, lease_many, ack,
ack_many (through the Lease and the queue), release, peek, size, in_flight,
close and reopen (outstanding leases fall back to the queue), and in turbo
mode turbo_sync; campaigns rotate between safe mode, turbo mode and switching
between the two. It runs the workload once to count its I/O operations, then
again with the power cut at random operations. After each cut it boots the
files a reboot could find (by default once per outcome), opens them with
``dque.open``, drains them (with dequeue_many, or with lease_many + ack_many,
which also checks the ``deliveries`` counts) and holds what came out against a
ledger of the calls that returned:

* safe mode: nothing acknowledged is lost, nothing acknowledged as taken (a
  dequeue or an ack that returned) comes back; the call in flight at the cut
  may have happened or not (an enqueue_many may leave a prefix of its batch;
  a dequeue_many or ack_many any of its items);
* turbo mode (max_delay=inf, so the sync points are exactly the turbo_sync,
  turbo_off and close calls of the workload: "time" is simulated by them):
  nothing acknowledged before the last sync is lost or comes back; with the
  ``live`` outcome (a crash that kept the OS's buffers) nothing at all;
* always: the queue opens (no DQueError), draining finds no damage, items
  come out whole, in order, never twice, and never one that was not enqueued;
  size() at open matches; the recovered queue takes and keeps new items.

A fraction of the boots (``--recovery-cuts``) also gets a second power cut
while the rebooted queue is opened and recovers (torn tails cut, used segments
deleted, a fresh tail made): the content after that second reboot must equal
what the first reboot held.

The run ends with::

    cuts: C, lost: 0, duplicated: 0, corrupt opens: 0
    VERDICT: CLEAN

(exit status 0), or ``VERDICT: NOT CLEAN (...)`` and exit status 1; the first
failures are printed with the I/O trace before the cut.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
sys.path.insert(0, TESTS)

from _items import Damaged, ident, item  # noqa: E402  (stress/_items.py)
from _verdict import count, verdict  # noqa: E402  (stress/_verdict.py)
from powercut import PowerCut, PowerLayer  # noqa: E402  (tests/powercut.py: the fault-injection layer)

import dque  # noqa: E402

NAME = "q"
INF = float("inf")
OUTCOMES = ("durable", "random", "live")
MODES = ("safe", "turbo", "switching")




class LiveMismatch(Exception):
    """The running queue disagreed with the model (no power cut involved)."""


# =========================================================================== the ledger


class Ledger:
    """The queue according to the calls that returned, and what must survive a power cut."""

    def __init__(self) -> None:
        self.order: list[int] = []  # undeleted ids in queue order (ready and leased)
        self.leased: set[int] = set()
        self.held: list[tuple[dque.Lease, int]] = []  # the driver's outstanding leases
        self.started: set[int] = set()  # every id handed to an enqueue call
        self.next_id = 0
        self.acked_enq: set[int] = set()
        self.sure_enq: set[int] = set()  # acknowledged, and synced (or safe mode)
        self.deleted: set[int] = set()  # acknowledged dequeues and acks
        self.sure_deleted: set[int] = set()
        self.deliveries: Counter = Counter()  # acknowledged leases per id
        self.sure_deliveries: Counter = Counter()
        self.pending: tuple = ("none",)  # the call in progress: ("enq", ids) | ("del", ids) | ("lease", ids) | (name,)
        self.created = False
        self.turbo = False
        self.ever_turbo = False

    def ready(self) -> list[int]:
        return [i for i in self.order if i not in self.leased]

    def new_ids(self, n: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        self.started.update(ids)
        self.pending = ("enq", ids)
        return ids

    def enqueued(self, ids: list[int]) -> None:
        self.order.extend(ids)
        self.acked_enq.update(ids)
        if not self.turbo:
            self.sure_enq.update(ids)

    def removed(self, ids: list[int]) -> None:
        gone = set(ids)
        self.order = [i for i in self.order if i not in gone]
        self.leased -= gone
        self.deleted |= gone
        if not self.turbo:
            self.sure_deleted |= gone

    def leased_ids(self, ids: list[int]) -> None:
        self.leased.update(ids)
        self.deliveries.update(ids)
        if not self.turbo:
            self.sure_deliveries.update(ids)

    def synced(self) -> None:
        self.sure_enq |= self.acked_enq
        self.sure_deleted |= self.deleted
        self.sure_deliveries = Counter(self.deliveries)

    def set_turbo(self, on: bool) -> None:
        self.turbo = on
        self.ever_turbo |= on


# =========================================================================== the workload


def make_steps(rng: random.Random, n: int, mode: str) -> list[tuple]:
    steps: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.22:
            steps.append(("enq",))
        elif r < 0.34:
            steps.append(("enqm", rng.randint(2, 7)))
        elif r < 0.44:
            steps.append(("deq",))
        elif r < 0.50:
            steps.append(("deqm", rng.randint(2, 6)))
        elif r < 0.58:
            steps.append(("lease",))
        elif r < 0.62:
            steps.append(("leasem", rng.randint(2, 5)))
        elif r < 0.70:
            steps.append(("ack", rng.random(), rng.random() < 0.5))
        elif r < 0.74:
            steps.append(("ackm", rng.randint(2, 4), rng.random()))
        elif r < 0.78:
            steps.append(("rel", rng.random()))
        elif r < 0.82:
            steps.append(("reopen",))
        elif r < 0.86:
            steps.append((rng.choice(("peek", "size")),))
        elif mode == "switching" and r < 0.93:
            steps.append((rng.choice(("turbo_on", "turbo_off")),))
        elif mode != "safe" and r < 0.93:
            steps.append(("sync",))
        else:
            steps.append(("enq",))
    return steps


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise LiveMismatch(what)


def drive(parent: str, steps: list[tuple], led: Ledger, *, segment_size: int, mode: str) -> None:
    """Run ``steps`` on a new queue ``parent/q``, keeping ``led``; PowerCut propagates."""
    q = None

    def open_queue() -> dque.DQue:
        led.pending = ("open",)
        qq = dque.open(NAME, parent)
        if led.turbo:
            led.pending = ("turbo_on",)
            qq.turbo_on(max_delay=INF)
        return qq

    def take_leases(k: int, r: float) -> list[tuple[dque.Lease, int]]:
        picked = []
        for _ in range(min(k, len(led.held))):
            picked.append(led.held.pop(int(r * len(led.held))))
        return picked

    try:
        led.pending = ("new",)
        q = dque.new(NAME, parent, segment_size=segment_size)
        led.created = True
        if mode == "turbo":
            led.pending = ("turbo_on",)
            q.turbo_on(max_delay=INF)  # no background syncer: the workload's sync calls are the sync points
            led.set_turbo(True)
        for step in steps:
            kind = step[0]
            if kind in ("enq", "enqm"):
                ids = led.new_ids(1 if kind == "enq" else step[1])
                if kind == "enq":
                    q.enqueue(item(ids[0]))
                else:
                    q.enqueue_many([item(i) for i in ids])
                led.enqueued(ids)
            elif kind in ("deq", "deqm"):
                n = 1 if kind == "deq" else step[1]
                want = led.ready()[:n]
                led.pending = ("del", want)
                if kind == "deq":
                    try:
                        got = [ident(q.dequeue())]
                    except dque.Empty:
                        got = []
                else:
                    got = [ident(x) for x in q.dequeue_many(n)]
                expect(got == want, f"dequeue took {got}, the ledger's head was {want}")
                led.removed(got)
            elif kind in ("lease", "leasem"):
                n = 1 if kind == "lease" else step[1]
                want = led.ready()[:n]
                led.pending = ("lease", want)
                if kind == "lease":
                    try:
                        leases = [q.lease(block=False)]
                    except dque.Empty:
                        leases = []
                else:
                    leases = q.lease_many(n)
                got = [ident(lease.item) for lease in leases]
                expect(got == want, f"lease took {got}, the ledger's head was {want}")
                for lease, i in zip(leases, got, strict=True):
                    expect(
                        lease.deliveries == led.deliveries[i] + 1,
                        f"lease of {i}: deliveries {lease.deliveries}, the ledger says {led.deliveries[i] + 1}",
                    )
                led.leased_ids(got)
                led.held.extend(zip(leases, got, strict=True))
            elif kind in ("ack", "ackm"):
                picked = take_leases(1 if kind == "ack" else step[1], step[1] if kind == "ack" else step[2])
                if not picked:
                    continue
                led.pending = ("del", [i for _, i in picked])
                if kind == "ack" and step[2]:
                    picked[0][0].ack()
                elif kind == "ack":
                    q.ack(picked[0][0].id)
                else:
                    q.ack_many([lease.id for lease, _ in picked])
                led.removed([i for _, i in picked])
            elif kind == "rel":
                picked = take_leases(1, step[1])
                if not picked:
                    continue
                led.pending = ("release",)
                q.release(picked[0][0].id)  # nothing is written: the item is live on disk throughout
                led.leased.discard(picked[0][1])
            elif kind == "peek":
                ready = led.ready()
                try:
                    got = [ident(q.peek())]
                except dque.Empty:
                    got = []
                expect(got == ready[:1], f"peek saw {got}, the ledger's head is {ready[:1]}")
            elif kind == "size":
                expect(q.size() == len(led.ready()), f"size() {q.size()}, the ledger says {len(led.ready())}")
                expect(q.in_flight() == len(led.held), f"in_flight() {q.in_flight()}, the ledger says {len(led.held)}")
            elif kind == "reopen":
                led.pending = ("close",)
                q.close()
                led.synced()
                led.held.clear()  # the leases die with the handle; their items are ready again
                led.leased.clear()
                q = None
                q = open_queue()
            elif kind == "sync":
                led.pending = ("turbo_sync",)
                q.turbo_sync()
                led.synced()
            elif kind == "turbo_on":
                led.pending = ("turbo_on",)
                q.turbo_on(max_delay=INF)
                led.set_turbo(True)
            elif kind == "turbo_off":
                led.pending = ("turbo_off",)
                q.turbo_off()  # syncs everything written so far
                led.set_turbo(False)
                led.synced()
            else:
                raise AssertionError(kind)
            led.pending = ("none",)
        led.pending = ("close",)
        q.close()
        led.synced()
        led.pending = ("none",)
    finally:
        if q is not None and not q.closed:
            with contextlib.suppress(PowerCut, Exception):
                q.close()  # the dead "process": release its fds and lock


# =========================================================================== checking a reboot


@dataclass
class Tally:
    cuts: int = 0
    recovery_cuts: int = 0
    boots: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.problems.append(text)


def drain(q: dque.DQue, rng: random.Random, tally: Tally, context: str) -> tuple[list[int], dict[int, int] | None]:
    """Everything in ``q``, in order; with leases (at random) also each item's prior deliveries."""
    got: list[int] = []
    prior: dict[int, int] | None = {} if rng.random() < 0.5 else None
    for _ in range(100_000):
        try:
            if prior is None:
                batch = [(x, None) for x in q.dequeue_many(rng.randint(1, 9))]
            else:
                try:
                    leases = q.lease_many(rng.randint(1, 9))
                except dque.Empty:  # DQue.lease_many(1) raises Empty on an empty queue instead of returning []
                    leases = []
                batch = [(lease.item, lease.deliveries) for lease in leases]
                q.ack_many([lease.id for lease in leases])
        except dque.CorruptedError as exc:
            tally.corrupt += 1
            tally.fail(f"damage found while draining after a power cut: {exc}\n{context}")
            continue
        if not batch:
            break
        for x, deliveries in batch:
            try:
                i = ident(x)
            except Damaged as exc:
                tally.corrupt += 1
                tally.fail(f"damaged item came out: {exc}\n{context}")
                continue
            got.append(i)
            if prior is not None:
                prior[i] = deliveries - 1
    return got, prior


def boot(dest: str, led: Ledger, *, lossless: bool, rng: random.Random, tally: Tally, context: str) -> list[int] | None:
    """Open the rebooted copy, drain it, hold it against the ledger; the ids found (None: no queue, or broken)."""
    tally.boots += 1
    try:
        q = dque.open(NAME, dest)
    except FileNotFoundError:
        if led.created:
            tally.corrupt += 1
            tally.fail(f"dque.new had returned, but after the power cut there is no queue\n{context}")
        return None
    except dque.DQueError as exc:
        tally.corrupt += 1
        tally.fail(f"open after a power cut raised {exc!r}\n{context}")
        return None
    try:
        size, in_flight = q.size(), q.in_flight()
        got, prior = drain(q, rng, tally, context)
        if size != len(got) or in_flight:
            tally.fail(f"size() {size} and in_flight() {in_flight} at open, {len(got)} items came out\n{context}")
        check(led, got, prior, lossless=lossless, tally=tally, context=context)
        q.enqueue(item(10**9))
    finally:
        q.close()
    with dque.open(NAME, dest) as q:  # the recovered queue takes appends and keeps them
        if q.dequeue_many(5) != [item(10**9)]:
            tally.fail(f"the recovered queue did not keep an item across a reopen\n{context}")
    return got


def check(
    led: Ledger, got: list[int], prior: dict[int, int] | None, *, lossless: bool, tally: Tally, context: str
) -> None:
    where = f"pending call {led.pending[0]} {list(led.pending[1]) if len(led.pending) > 1 else ''}"
    counts = Counter(got)
    twice = [i for i, c in counts.items() if c > 1]
    if twice:
        tally.duplicated += len(twice)
        tally.fail(f"ids came out twice: {sorted(twice)[:10]} ({where})\n{context}")
    if any(a >= b for a, b in zip(got, got[1:], strict=False)):
        tally.fail(f"out of order: {got[:40]} ({where})\n{context}")
    phantoms = set(got) - led.started
    if phantoms:
        tally.fail(f"ids that were never enqueued came out: {sorted(phantoms)[:10]} ({where})\n{context}")
    kind = led.pending[0]
    maybe_gone = set(led.pending[1]) if kind == "del" else set()
    maybe_added = list(led.pending[1]) if kind == "enq" else []
    found = set(got)
    if lossless:
        must = set(led.order) - maybe_gone
        back = found & led.deleted
        if maybe_added:
            extra = [i for i in got if i in set(maybe_added)]
            if extra != maybe_added[: len(extra)]:
                tally.fail(f"an interrupted enqueue_many left {extra}, not a prefix of {maybe_added}\n{context}")
    else:
        must = led.sure_enq - led.deleted - maybe_gone
        back = found & led.sure_deleted
        unexpected = found - set(led.order) - led.deleted - set(maybe_added)
        if unexpected:
            tally.fail(f"ids that were not in the queue came out: {sorted(unexpected)[:10]} ({where})\n{context}")
    lost = must - found
    if lost:
        tally.lost += len(lost)
        tally.fail(
            f"lost {len(lost)} acknowledged items: {sorted(lost)[:10]}; recovered {got[:30]} ({where})\n{context}"
        )
    if back:
        tally.duplicated += len(back)
        tally.fail(f"items whose dequeue/ack returned came back: {sorted(back)[:10]} ({where})\n{context}")
    if prior is not None:
        maybe_leased = set(led.pending[1]) if kind == "lease" else set()
        for i, d in prior.items():
            low = led.deliveries[i] if lossless else led.sure_deliveries[i]
            high = led.deliveries[i] + (i in maybe_leased)
            if not low <= d <= high:
                tally.fail(
                    f"item {i}: {d} earlier deliveries after the cut, expected {low}..{high} ({where})\n{context}"
                )
                break


def recovery_cut(first: str, base: str, expected: list[int], rng: random.Random, tally: Tally, context: str) -> None:
    """A second power cut while the rebooted queue ``first`` opens and recovers: the content must not change."""
    dry = os.path.join(base, "rdry")
    shutil.copytree(first, dry)
    layer = PowerLayer(dry, seed=rng.getrandbits(32))
    with layer.installed():
        dque.open(NAME, dry).close()
    total = layer.ops
    shutil.rmtree(dry)
    if total == 0:
        return
    k = rng.randint(1, total)
    live = os.path.join(base, "rlive")
    shutil.copytree(first, live)
    layer = PowerLayer(live, seed=rng.getrandbits(32), cut_at=k)
    with layer.installed():
        q = None
        try:
            q = dque.open(NAME, live)
            q.close()
        except PowerCut:
            pass
        finally:
            if q is not None and not q.closed:
                with contextlib.suppress(PowerCut, Exception):
                    q.close()
    tally.recovery_cuts += 1
    how = rng.choice(OUTCOMES)
    second = os.path.join(base, "rboot")
    layer.materialize(second, data=how, dirs=how)
    ctx = f"{context}\nsecond power cut during recovery at op {k} of {total}, outcome {how}\n{layer.describe(15)}"
    try:
        with dque.open(NAME, second) as q:
            got, _ = drain(q, rng, tally, ctx)
    except dque.DQueError as exc:
        tally.corrupt += 1
        tally.fail(f"open after a power cut during recovery raised {exc!r}\n{ctx}")
        got = expected
    if got != expected:
        missing = set(expected) - set(got)
        tally.lost += len(missing)
        tally.duplicated += len(set(got) - set(expected))
        tally.fail(f"a power cut during recovery changed the content: {expected[:20]} -> {got[:20]}\n{ctx}")
    for path in (live, second):
        shutil.rmtree(path, ignore_errors=True)


# =========================================================================== campaigns


def run_once(
    base: str, tag: str, steps: list[tuple], *, seed: int, cut_at: int | None, segment_size: int, mode: str
) -> tuple[PowerLayer, Ledger]:
    live = os.path.join(base, f"live-{tag}")
    os.mkdir(live)
    layer = PowerLayer(live, seed=seed, cut_at=cut_at)
    led = Ledger()
    with layer.installed(), contextlib.suppress(PowerCut):
        drive(live, steps, led, segment_size=segment_size, mode=mode)
    return layer, led


def campaign(
    base: str, seed: int, mode: str, args: argparse.Namespace, tally: Tally, deadline: float, budget: int
) -> None:
    rng = random.Random(seed)
    segment_size = rng.randint(2, 6)
    steps = make_steps(rng, rng.randint(args.min_steps, args.max_steps), mode)
    head = f"seed {seed} ({mode}, segment_size {segment_size}, {len(steps)} steps)"
    try:
        layer, led = run_once(base, "dry", steps, seed=seed, cut_at=None, segment_size=segment_size, mode=mode)
    except LiveMismatch as exc:
        tally.fail(f"{head}: the running queue disagreed with the ledger (no power cut): {exc}")
        return
    if layer.drift:
        tally.fail(f"{head}: the power-cut model lost track of the files: {layer.drift[:3]}")
    total = layer.ops
    dest = os.path.join(base, "boot-dry")
    layer.materialize(dest, data="durable", dirs="durable")  # after a clean close everything is durable
    boot(dest, led, lossless=True, rng=rng, tally=tally, context=f"{head}, no power cut")
    shutil.rmtree(dest)
    shutil.rmtree(os.path.join(base, "live-dry"))
    points = sorted(rng.sample(range(1, total + 1), min(total, budget)))
    keep = False
    for k in points:
        if time.monotonic() > deadline:
            return
        try:
            layer, led = run_once(
                base, str(k), steps, seed=seed * 7919 + k, cut_at=k, segment_size=segment_size, mode=mode
            )
        except LiveMismatch as exc:
            tally.fail(f"{head}: the running queue disagreed with the ledger before the cut at op {k}: {exc}")
            continue
        tally.cuts += 1
        if layer.cut is None:
            tally.fail(f"{head}: no cut at op {k}: this run made {layer.ops} I/O operations, the dry run {total}")
            continue
        if layer.drift:
            tally.fail(f"{head}: the power-cut model lost track of the files: {layer.drift[:3]}")
        for how in args.outcomes:
            dest = os.path.join(base, f"boot-{how}")
            layer.materialize(dest, data=how, dirs=how)
            context = f"{head}, power cut at op {k} of {total}, outcome {how}\n{layer.describe(15)}"
            lossless = not led.ever_turbo or how == "live"
            probe = None
            if rng.random() < args.recovery_cuts:
                probe = os.path.join(base, "probe")
                shutil.copytree(dest, probe)  # the same files, untouched by the check's own open
            before = len(tally.problems)
            got = boot(dest, led, lossless=lossless, rng=rng, tally=tally, context=context)
            if probe is not None:
                if got is not None:
                    recovery_cut(probe, base, got, rng, tally, context)
                shutil.rmtree(probe)
            if len(tally.problems) > before:  # keep what failed (the check's own open may have changed it)
                os.rename(dest, os.path.join(base, f"failed-{k}-{how}"))
                keep = True
            else:
                shutil.rmtree(dest)
        if not keep:
            shutil.rmtree(os.path.join(base, f"live-{k}"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Simulated power cuts at random I/O operations of random dque workloads (with leases).",
        epilog="Ends with 'cuts: C, lost: 0, duplicated: 0, corrupt opens: 0' and a VERDICT line; "
        "exit status 1 if the verdict is not clean.",
    )
    p.add_argument("--cuts", type=int, default=2000, help="power cuts to simulate (default 2000)")
    p.add_argument("--seconds", type=float, default=900.0, help="time bound: stop early after this (default 900)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--cuts-per-campaign", type=int, default=25, help="cut points per workload (default 25)")
    p.add_argument("--min-steps", type=int, default=25, help="fewest calls in a workload (default 25)")
    p.add_argument("--max-steps", type=int, default=70, help="most calls in a workload (default 70)")
    p.add_argument("--mode", choices=(*MODES, "all"), default="all", help="default: all, rotating per workload")
    p.add_argument(
        "--outcomes", default=",".join(OUTCOMES), help=f"what each cut's reboots find (default {','.join(OUTCOMES)})"
    )
    p.add_argument(
        "--recovery-cuts", type=float, default=0.15, help="share of boots that also get a cut during recovery"
    )
    p.add_argument(
        "--dir", default=None, help="where to make this run's fresh work directory (default: $TMPDIR or /tmp)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: ~60 cuts, a few seconds")
    p.add_argument(
        "--replay", type=int, default=None, metavar="SEED", help="run just the workload of this seed (from a failure)"
    )
    p.add_argument("--show", type=int, default=3, help="failures printed in full (default 3)")
    args = p.parse_args(argv)
    args.outcomes = [o for o in args.outcomes.split(",") if o]
    if not set(args.outcomes) <= set(OUTCOMES) or not args.outcomes:
        p.error(f"--outcomes: a comma-separated subset of {','.join(OUTCOMES)}")
    if args.quick:
        args.cuts, args.seconds, args.cuts_per_campaign = min(args.cuts, 60), min(args.seconds, 30.0), 10
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    modes = MODES if args.mode == "all" else (args.mode,)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dque-power-cut-", dir=args.dir)  # a fresh directory, even under --dir
    print(
        f"power_cut: seed {args.seed}, {args.cuts} cuts, up to {args.seconds:g} s, modes {','.join(modes)}, "
        f"outcomes {','.join(args.outcomes)}, in {base}",
        flush=True,
    )
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    tally = Tally()
    campaigns = 0
    interrupted = False
    master = random.Random(args.seed)
    last_report = t0
    try:
        if args.replay is not None:  # one workload, every cut point of it
            if args.mode == "all":
                p.error("--replay needs the --mode of the failing workload")
            os.mkdir(os.path.join(base, "replay"))
            campaign(os.path.join(base, "replay"), args.replay, args.mode, args, tally, deadline, 10**9)
            campaigns = 1
            for text in tally.problems[: args.show]:
                print("FAIL: " + text, flush=True)
        while args.replay is None and tally.cuts < args.cuts and time.monotonic() < deadline:
            mode = modes[campaigns % len(modes)]
            work = os.path.join(base, f"c{campaigns}")
            os.mkdir(work)
            shown = len(tally.problems)
            campaign(
                work,
                master.getrandbits(40),
                mode,
                args,
                tally,
                deadline,
                min(args.cuts_per_campaign, args.cuts - tally.cuts),
            )
            campaigns += 1
            for text in tally.problems[shown : max(shown, args.show)]:
                print("FAIL: " + text, flush=True)
            if len(tally.problems) == shown:
                shutil.rmtree(work, ignore_errors=True)
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                print(
                    f"  {last_report - t0:5.0f} s: {tally.cuts} cuts, {tally.recovery_cuts} during recovery, "
                    f"{tally.boots} boots, {len(tally.problems)} problems",
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", flush=True)
    finally:
        if not tally.problems:
            shutil.rmtree(base, ignore_errors=True)
    elapsed = time.monotonic() - t0
    print(
        f"{campaigns} workloads, {tally.cuts} power cuts + {tally.recovery_cuts} during recovery, "
        f"{tally.boots} reboots checked, {len(tally.problems)} problems, {elapsed:.1f} s"
    )
    if tally.problems:
        print(f"failing workloads kept under {base}")
    print(f"cuts: {tally.cuts}, lost: {tally.lost}, duplicated: {tally.duplicated}, corrupt opens: {tally.corrupt}")
    reasons = []
    if tally.problems:
        reasons.append(count(len(tally.problems), "problem"))
    if interrupted:
        reasons.append("interrupted")
    if tally.cuts == 0:
        reasons.append("no cut happened")
    return verdict(reasons)


if __name__ == "__main__":
    sys.exit(main())
