"""Acknowledged delivery on a DQue: lease, ack, release, ttl, dead letters, join, crashes, a model.

A lease hides an item until it is acked (gone) or released (back at the head,
in its original order, ahead of newer items). The crash tests run
``lease_helpers.py`` in a subprocess that logs each call once it returned (one
``os.write`` per line, so the ledger survives the SIGKILL), kill it while it
holds leases, reopen the queue here and check item by item. Timing: ttl
expiry and "still blocked" checks wait with generous deadlines; nothing
asserts a tight upper time bound.
"""

from __future__ import annotations

import bisect
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import lease_helpers
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from waiting import wait_until

import dque
from dque import _fs

NAME = lease_helpers.NAME
HELPER = str(Path(lease_helpers.__file__).resolve())
PATIENCE = 30.0  # seconds: a wait longer than this is a hang (never reached when all is well)
WRONG_TYPES = (None, 1.5, "1", b"1", True, [1], object())


class Boom(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def drain(q: dque.DQue) -> list:
    """Everything left, by plain dequeue."""
    return q.dequeue_many(q.size() + 1)


def segment_files(qdir: Path) -> list[str]:
    return sorted(f for f in os.listdir(qdir) if f.endswith(".seg"))


def unknown_id(lease: dque.Lease):
    """A lease id of the right type that no lease has."""
    return lease.id + (10**9 if isinstance(lease.id, int) else "-unknown")


def state(q: dque.DQue) -> tuple[int, int]:
    return q.size(), q.in_flight()


def joined(q: dque.DQue, timeout: float = PATIENCE) -> bool:
    """Run q.join() in a thread; True if it returned within ``timeout``."""

    def join() -> None:
        try:
            q.join()
        except dque.ClosedError:
            pass  # (a join still waiting when the test closes the queue)

    t = threading.Thread(target=join, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive()


@pytest.fixture(params=[False, True], ids=["safe", "turbo"])
def turbo(request):
    return request.param


# --------------------------------------------------------------------------- basics


def test_lease_hides_the_item_and_ack_deletes_it(tmp_path, turbo):
    q = dque.new(NAME, tmp_path, turbo=turbo)
    try:
        q.enqueue_many(["a", "b"])
        x = q.lease()
        assert isinstance(x, dque.Lease)
        assert (x.item, x.deliveries) == ("a", 1)
        assert state(q) == (1, 1)
        assert len(q) == 1 and q.qsize() == 1 and not q.empty()
        assert q.peek() == "b"  # invisible to others: the next one is b
        y = q.lease()
        assert (y.item, y.deliveries) == ("b", 1) and x.id != y.id
        assert state(q) == (0, 2) and q.empty()
        with pytest.raises(dque.Empty):
            q.lease(block=False)
        with pytest.raises(dque.Empty):
            q.dequeue()
        x.ack()
        q.ack(y.id)
        assert state(q) == (0, 0)
    finally:
        q.close()
    with dque.open(NAME, tmp_path) as q:  # acked is gone for good
        assert state(q) == (0, 0)


def test_lease_many(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=3) as q:
        assert q.lease_many(5) == []  # empty: no error, no wait
        assert q.lease_many(0) == []
        q.enqueue_many(range(10))
        assert q.lease_many(0) == []
        first = q.lease_many(4)  # across a segment boundary
        assert [x.item for x in first] == [0, 1, 2, 3]
        assert all(x.deliveries == 1 for x in first) and len({x.id for x in first}) == 4
        rest = q.lease_many(100)
        assert [x.item for x in rest] == list(range(4, 10))
        assert state(q) == (0, 10)
        with pytest.raises(ValueError):
            q.lease_many(-1)
        with pytest.raises(TypeError):
            q.lease_many("3")
        q.ack_many(x.id for x in first + rest)  # any iterable
        assert state(q) == (0, 0)


def test_lease_many_of_one_on_an_empty_queue(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        assert q.lease_many(1) == []


def test_lease_waits_like_get(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        with pytest.raises(dque.Empty):
            q.lease(block=False)
        with pytest.raises(dque.Empty):
            q.lease(timeout=0.05)
        q.enqueue("x")
        for bad, error in ((-1, ValueError), ("1", TypeError)):  # checked before anything is taken
            with pytest.raises(error):
                q.lease(timeout=bad)
        assert q.dequeue() == "x"
        got = []
        t = threading.Thread(target=lambda: got.append(q.lease(timeout=PATIENCE)), daemon=True)
        t.start()
        time.sleep(0.1)
        q.enqueue("late")
        t.join(PATIENCE)
        assert not t.is_alive() and got[0].item == "late" and state(q) == (0, 1)
        got[0].ack()


def test_a_release_wakes_a_blocked_lease(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue("a")
        x = q.lease()
        got = []
        t = threading.Thread(target=lambda: got.append(q.lease(timeout=PATIENCE)), daemon=True)
        t.start()
        time.sleep(0.1)
        x.release()
        t.join(PATIENCE)
        assert not t.is_alive() and (got[0].item, got[0].deliveries) == ("a", 2)


def test_threads_lease_and_ack_every_item_once(tmp_path, turbo):
    n = 1000
    with dque.new(NAME, tmp_path, segment_size=7, turbo=turbo) as q:
        q.enqueue_many(range(n))
        acked: list[tuple[int, int]] = []
        errors = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                while True:
                    leases = q.lease_many(rng.randint(1, 4)) if rng.random() < 0.5 else []
                    if not leases:
                        try:
                            leases = [q.lease(timeout=0.2)]
                        except dque.Empty:
                            if q.size() == 0 and q.in_flight() == 0:
                                return
                            continue
                    rng.shuffle(leases)
                    keep = [x for x in leases if rng.random() < 0.9]
                    for x in leases:
                        if x not in keep:
                            x.release()
                    if len(keep) > 1:
                        q.ack_many([x.id for x in keep])
                    elif keep:
                        keep[0].ack()
                    acked.extend((x.item, x.deliveries) for x in keep)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PATIENCE)
        assert not errors and not any(t.is_alive() for t in threads)
        assert sorted(item for item, _ in acked) == list(range(n))
        assert state(q) == (0, 0)
        assert joined(q)


def test_close_wakes_a_blocked_lease(tmp_path):
    q = dque.new(NAME, tmp_path)
    errors = []

    def take():
        try:
            q.lease()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=take, daemon=True)
    t.start()
    time.sleep(0.1)
    q.close()
    t.join(PATIENCE)
    assert not t.is_alive() and isinstance(errors[0], dque.ClosedError)
    for call in (q.lease, lambda: q.lease_many(1), q.in_flight, lambda: q.ack(1), lambda: q.release(1)):
        with pytest.raises(dque.ClosedError):
            call()


@pytest.mark.parametrize("segment_size", [2, 3, 1000])
@pytest.mark.parametrize("reopen", [False, True])
def test_release_returns_items_ahead_of_newer_ones_in_order(tmp_path, segment_size, reopen):
    q = dque.new(NAME, tmp_path, segment_size=segment_size)
    try:
        q.enqueue_many(range(10))
        leases = [q.lease() for _ in range(7)]
        q.enqueue_many(range(10, 13))  # newer items
        for i in (5, 1, 6, 3, 0):  # released out of order
            leases[i].release()
        leases[4].ack()
        leases[2].ack()
        assert state(q) == (3 + 3 + 5, 0)
        if reopen:
            q.close()
            q = dque.open(NAME, tmp_path)
        want = [0, 1, 3, 5, 6, 7, 8, 9, 10, 11, 12]
        assert q.peek() == 0
        again = q.lease_many(100)
        assert [x.item for x in again] == want
        assert [x.deliveries for x in again] == [2 if i < 7 else 1 for i in want]
        # Released once more, in reverse, they come back in order again.
        for x in reversed(again):
            x.release()
        assert drain(q) == want  # a plain take of released items
        assert state(q) == (0, 0)
    finally:
        q.close()
    with dque.open(NAME, tmp_path) as q:
        assert state(q) == (0, 0)
        assert len(segment_files(tmp_path / NAME)) == 1  # every used segment was deleted


def test_release_interleaved_with_plain_takes(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=3) as q:
        q.enqueue_many(range(9))
        a = q.lease()  # 0
        assert q.dequeue() == 1
        b = q.lease()  # 2
        assert q.dequeue_many(2) == [3, 4]
        b.release()
        a.release()
        assert q.dequeue() == 0
        c = q.lease()
        assert (c.item, c.deliveries) == (2, 2)
        assert q.dequeue() == 5
        c.release()
        q.enqueue(9)
    with dque.open(NAME, tmp_path) as q:
        assert drain(q) == [2, 6, 7, 8, 9]


@pytest.mark.parametrize("segment_size", [1, 2, 3])
def test_acks_in_any_order(tmp_path, segment_size, turbo):
    rng = random.Random(segment_size)
    for round_ in range(3):
        name = f"q{round_}"
        with dque.new(name, tmp_path, segment_size=segment_size, turbo=turbo) as q:
            q.enqueue_many(range(20))
            leases = q.lease_many(20)
            rng.shuffle(leases)
            acked = set()
            while leases:
                batch = leases[: rng.randint(1, 4)]
                leases = leases[len(batch) :]
                if len(batch) == 1:
                    batch[0].ack()
                else:
                    q.ack_many([x.id for x in batch])
                acked |= {x.item for x in batch}
                assert state(q) == (0, len(leases))
                if rng.random() < 0.3:  # newer items in between, taken at once
                    q.enqueue("new")
                    assert q.dequeue() == "new"
            assert acked == set(range(20))
        with dque.open(name, tmp_path) as q:
            assert state(q) == (0, 0)
            q.enqueue("after")
            assert drain(q) == ["after"]
        if not turbo:  # (turbo deletes used segments in the background)
            assert len(segment_files(tmp_path / name)) == 1


def test_an_old_segment_waits_for_its_leased_item(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=2) as q:
        q.enqueue_many(range(10))
        first = q.lease()
        assert drain(q) == list(range(1, 10))
        files = segment_files(tmp_path / NAME)
        assert files[0] == "0000000000001.seg"  # kept while item 0 is leased
        q.enqueue_many([10, 11])
    with dque.open(NAME, tmp_path) as q:  # the lease is void: item 0 is back first
        assert drain(q) == [0, 10, 11]
    with dque.open(NAME, tmp_path) as q:
        q.enqueue_many(range(4))
        first = q.lease()
        assert q.dequeue_many(3) == [1, 2, 3]
        first.ack()
        assert state(q) == (0, 0)
    assert len(segment_files(tmp_path / NAME)) == 1


def test_size_and_in_flight(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=2, maxsize=5) as q:
        q.enqueue_many(range(5))
        assert state(q) == (5, 0)
        leases = q.lease_many(3)
        assert state(q) == (2, 3)
        assert q.full()  # leased items count against maxsize
        with pytest.raises(dque.Full):
            q.enqueue("x")
        leases[0].release()
        assert state(q) == (3, 2)
        leases[1].ack()
        assert state(q) == (3, 1) and not q.full()
        q.enqueue(5)
        assert state(q) == (4, 1)
        q.dequeue()
        assert state(q) == (3, 1)


# --------------------------------------------------------------------------- errors change nothing


def test_lease_errors_change_nothing(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=2) as q:
        q.enqueue_many(range(6))
        a, b, c = q.lease(), q.lease(), q.lease()
        a.ack()
        b.release()
        before = state(q)
        assert before == (4, 1)
        bad = [
            ("double ack", lambda: q.ack(a.id)),
            ("double ack, Lease", a.ack),
            ("release after ack", lambda: q.release(a.id)),
            ("release after ack, Lease", a.release),
            ("ack after release", lambda: q.ack(b.id)),
            ("ack after release, Lease", b.ack),
            ("double release", lambda: q.release(b.id)),
            ("unknown ack", lambda: q.ack(unknown_id(c))),
            ("unknown release", lambda: q.release(unknown_id(c))),
            ("ack_many with a stale one", lambda: q.ack_many([c.id, a.id])),
            ("ack_many with a released one", lambda: q.ack_many([c.id, b.id])),
            ("ack_many twice the same", lambda: q.ack_many([c.id, c.id])),
            ("release_many with a stale one", lambda: q.release_many([c.id, a.id])),
            ("release_many twice the same", lambda: q.release_many([c.id, c.id])),
        ]
        for what, call in bad:
            with pytest.raises(dque.LeaseError) as info:
                call()
            assert isinstance(info.value, KeyError) and isinstance(info.value, dque.DQueError), what
            assert state(q) == before, what
        for wrong in WRONG_TYPES:
            for call in (q.ack, q.release, lambda w: q.ack_many([c.id, w]), lambda w: q.release_many([c.id, w])):
                with pytest.raises(TypeError):
                    call(wrong)
                assert state(q) == before, wrong
        q.ack_many([])
        q.release_many([])
        assert state(q) == before
        # c is still outstanding and nothing else moved.
        assert c.item == 2
        c.ack()
        assert drain(q) == [1, 3, 4, 5]


def test_a_lease_from_before_a_reopen_is_void(tmp_path):
    q = dque.new(NAME, tmp_path)
    q.enqueue_many(["a", "b"])
    old = q.lease()
    q.close()
    with pytest.raises(dque.ClosedError):
        old.ack()
    with dque.open(NAME, tmp_path) as q:
        assert state(q) == (2, 0)
        with pytest.raises(dque.LeaseError):
            q.ack(old.id)
        with pytest.raises(dque.LeaseError):
            q.release(old.id)
        new = q.lease()
        assert (new.item, new.deliveries) == ("a", 2)
        with pytest.raises(dque.LeaseError):
            q.ack(old.id)
        new.ack()
        assert drain(q) == ["b"]


def test_lease_as_context_manager(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many(["a", "b", "c"])
        with q.lease() as x:
            assert x.item == "a" and q.in_flight() == 1
        assert state(q) == (2, 0)  # clean exit: acked
        with pytest.raises(Boom):
            with q.lease() as x:
                assert x.item == "b"
                raise Boom
        assert state(q) == (2, 0)  # exception: released
        with q.lease() as x:
            assert (x.item, x.deliveries) == ("b", 2)
            x.release()  # settled by hand: the exit does nothing more
        with q.lease() as x:
            assert x.item == "b"
            x.ack()
        assert drain(q) == ["c"]



@pytest.mark.parametrize("turbo", [False, True])
def test_a_lease_and_its_id_are_one_lease(tmp_path, turbo):
    with dque.new(NAME, tmp_path, segment_size=2, turbo=turbo) as q:
        q.enqueue_many(range(5))
        a, b, c = q.lease(), q.lease(), q.lease()
        q.ack(a.id)  # by id: the Lease object is settled too
        with pytest.raises(dque.LeaseError):
            a.ack()
        with pytest.raises(dque.LeaseError):
            with a:
                pass  # a clean exit acks: not outstanding any more
        q.release(b.id)
        with pytest.raises(dque.LeaseError):
            b.ack()
        c.ack()
        with pytest.raises(dque.LeaseError):
            q.ack(c.id)
        assert (a.item, a.deliveries, b.item, c.item) == (0, 1, 1, 2)  # unchanged once settled
        assert repr(c) == f"<Lease {c.id} deliveries=1 item=2>"
        assert state(q) == (3, 0)
        assert drain(q) == [1, 3, 4]


# --------------------------------------------------------------------------- ttl


def test_ttl_releases_a_lease_not_acked_in_time(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many(["a", "b"])
        x = q.lease(ttl=0.2)
        keep = q.lease()  # no ttl: never expires
        assert state(q) == (0, 2)
        wait_until(lambda: q.in_flight() == 1, "the ttl to expire")
        assert q.size() == 1 and q.peek() == "a"
        with pytest.raises(dque.LeaseError):
            x.ack()
        with pytest.raises(dque.LeaseError):
            x.release()
        y = q.lease()
        assert (y.item, y.deliveries) == ("a", 2)
        y.ack()
        assert state(q) == (0, 1)
        time.sleep(0.3)
        assert state(q) == (0, 1)
        keep.ack()


def test_ttl_on_lease_many_and_acked_in_time(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=2) as q:
        q.enqueue_many(range(5))
        expiring = q.lease_many(3, ttl=0.2)
        acked = q.lease(ttl=0.2)  # item 3, acked before its ttl
        acked.ack()
        long = q.lease(ttl=PATIENCE)  # item 4
        wait_until(lambda: q.in_flight() == 1, "the ttls to expire")
        time.sleep(0.3)  # nothing else comes back
        assert state(q) == (3, 1)
        again = q.lease_many(10)
        assert [(x.item, x.deliveries) for x in again] == [(0, 2), (1, 2), (2, 2)]
        q.ack_many([x.id for x in again])
        long.ack()
        with pytest.raises(dque.LeaseError):
            q.ack_many([x.id for x in expiring])
        assert state(q) == (0, 0)


def test_ttl_expired_inside_a_with_block(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue("a")
        with pytest.raises(Boom):  # the original exception, not a LeaseError
            with q.lease(ttl=0.1):
                wait_until(lambda: q.in_flight() == 0, "the ttl to expire")
                raise Boom
        with pytest.raises(dque.LeaseError):  # a clean exit acks: too late
            with q.lease(ttl=0.1) as x:
                wait_until(lambda: q.in_flight() == 0, "the ttl to expire")
        assert x.deliveries == 2 and state(q) == (1, 0)


def test_bad_ttl_takes_nothing(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue("a")
        for ttl, error in ((0, ValueError), (-1, ValueError), ("1", TypeError), (True, TypeError)):
            with pytest.raises(error):
                q.lease(ttl=ttl)
            with pytest.raises(error):
                q.lease_many(1, ttl=ttl)
            assert state(q) == (1, 0)


# --------------------------------------------------------------------------- group commit


def test_batches_share_one_fsync(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path)  # safe mode, one segment for all
    try:
        q.enqueue_many(range(120))
        calls = []
        real = _fs.datasync

        def counting(fd):
            calls.append(fd)
            return real(fd)

        monkeypatch.setattr(_fs, "datasync", counting)
        leases = q.lease_many(50)
        assert len(leases) == 50 and len(calls) == 1
        calls.clear()
        q.ack_many([x.id for x in leases])
        assert len(calls) == 1
        calls.clear()
        more = q.lease_many(50)
        assert len(calls) == 1
        calls.clear()
        q.release_many([x.id for x in more])  # a release writes nothing
        assert len(calls) == 0
        x = q.lease()
        assert len(calls) == 1
        x.ack()
        assert len(calls) == 2
    finally:
        monkeypatch.undo()
        q.close()


def test_turbo_lease_and_ack_do_not_sync(tmp_path, monkeypatch):
    q = dque.new(NAME, tmp_path, turbo=True)
    try:
        q.turbo_on(max_delay=float("inf"))  # no background sync either
        q.enqueue_many(range(60))
        calls = []
        monkeypatch.setattr(_fs, "datasync", calls.append)
        leases = q.lease_many(50)
        q.ack_many([x.id for x in leases[:25]])
        q.release_many([x.id for x in leases[25:]])
        q.lease().ack()
        assert calls == []
    finally:
        monkeypatch.undo()
        q.close()


# --------------------------------------------------------------------------- crashes (SIGKILL)


def run_role(reap, tmp_path: Path, role: str, *args: str):
    err = open(tmp_path / f"{role}.err", "wb")
    try:
        proc = reap([sys.executable, HELPER, role, *args], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    finally:
        err.close()
    return proc


def kill(proc, tmp_path: Path, role: str) -> None:
    assert proc.poll() is None, (tmp_path / f"{role}.err").read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / f"{role}.err").read_text() == ""


def wait_ledger(proc, ledger: Path, tmp_path: Path, role: str, ready) -> list[list[str]]:
    deadline = time.monotonic() + PATIENCE
    while True:
        lines = lease_helpers.read_ledger(ledger)
        if ready(lines):
            return lines
        assert proc.poll() is None, f"{role} exited: {(tmp_path / f'{role}.err').read_text()}"
        assert time.monotonic() < deadline, f"{role} made no progress in {PATIENCE} s"
        time.sleep(0.01)


def check_deliveries_logged(lines: list[list[str]]) -> Counter:
    """Each ``L`` line's deliveries is one more than the item's earlier ``L`` lines; returns the counts."""
    leased: Counter = Counter()
    for word, *rest in lines:
        if word == "L":
            item, deliveries = int(rest[0]), int(rest[1])
            leased[item] += 1
            assert deliveries == leased[item], (item, deliveries, leased[item])
    return leased


@pytest.mark.parametrize("seed", [1, 2])
def test_crash_while_holding_leases(tmp_path, reap, turbo, seed):
    n = 150
    with dque.new(NAME, tmp_path, segment_size=3) as q:
        q.enqueue_many(range(n))
    ledger = tmp_path / "ledger"
    proc = run_role(reap, tmp_path, "crash_hold", str(tmp_path), "1" if turbo else "0", str(seed), str(ledger))
    lines = wait_ledger(proc, ledger, tmp_path, "crash_hold", lambda ls: ls and ls[-1] == ["H"])
    kill(proc, tmp_path, "crash_hold")

    leased = check_deliveries_logged(lines)
    gone = {int(w[1]) for w in lines if w[0] in ("A", "D")}
    settled = Counter(int(w[1]) for w in lines if w[0] in ("A", "R"))
    held = {i for i in leased if leased[i] > settled[i]}  # leased at the kill
    assert held, "the role held no lease at the kill"
    want = [i for i in range(n) if i not in gone]

    with dque.open(NAME, tmp_path, turbo=turbo) as q:
        assert state(q) == (len(want), 0)
        back = q.lease_many(n + 1)
        assert [x.item for x in back] == want  # in order, exactly once; nothing acked came back
        for x in back:
            assert x.deliveries == leased[x.item] + 1, (x.item, x.deliveries, leased[x.item])
        assert held <= {x.item for x in back}
        q.ack_many([x.id for x in back[::2]])
        for x in back[1::2]:
            x.ack()
        assert state(q) == (0, 0)
    with dque.open(NAME, tmp_path) as q:
        assert state(q) == (0, 0)


def test_crash_while_busy(tmp_path, reap, turbo):
    n = 3000
    with dque.new(NAME, tmp_path, segment_size=7) as q:
        q.enqueue_many(range(n))
    ledger = tmp_path / "ledger"
    proc = run_role(reap, tmp_path, "crash_busy", str(tmp_path), "1" if turbo else "0", "7", str(ledger))
    wait_ledger(proc, ledger, tmp_path, "crash_busy", lambda ls: sum(w[0] == "A" for w in ls) >= 150)
    kill(proc, tmp_path, "crash_busy")
    lines = lease_helpers.read_ledger(ledger)

    leased = check_deliveries_logged(lines)
    acked = {int(w[1]) for w in lines if w[0] == "A"}
    in_flight_ack = {int(w[1]) for w in lines if w[0] == "a"} - acked  # its ack may or may not have landed
    assert len(in_flight_ack) <= 1
    lease_in_flight = lines[-1] == ["l"]
    with dque.open(NAME, tmp_path, turbo=turbo) as q:
        back = q.lease_many(n + 1)
    items = [x.item for x in back]
    assert items == sorted(set(items)), "out of order or twice"
    assert not set(items) & acked, "an acked item came back"
    assert set(range(n)) - acked - set(items) <= in_flight_ack, "an item was lost"
    extra = []
    for x in back:
        if x.deliveries != leased[x.item] + 1:
            extra.append(x.item)
            # Only a lease call in flight at the kill may have counted one more hand-out.
            assert lease_in_flight and x.deliveries == leased[x.item] + 2, (x.item, x.deliveries, leased[x.item])
    assert len(extra) <= 5


# --------------------------------------------------------------------------- dead letters


def dead_letters(tmp_path: Path) -> list:
    with dque.open(NAME + ".dead", tmp_path) as dead:
        return drain(dead)


def test_dead_letter_after_max_deliveries_releases(tmp_path, turbo):
    q = dque.new(NAME, tmp_path, segment_size=2, max_deliveries=2, turbo=turbo)
    try:
        assert q.max_deliveries == 2
        q.enqueue_many(["poison", "ok1", "ok2"])
        x = q.lease()
        x.release()
        x = q.lease()
        assert (x.item, x.deliveries) == ("poison", 2)
        x.release()  # handed out twice without an ack: moved, not handed out again
        assert state(q) == (2, 0)
        y = q.lease()
        assert (y.item, y.deliveries) == ("ok1", 1)
        y.ack()
        assert q.dequeue() == "ok2"
        q.task_done()
        assert joined(q), "join() does not count the dead letter as done"
    finally:
        q.close()
    assert dead_letters(tmp_path) == ["poison"]
    with dque.open(NAME, tmp_path) as q:
        assert state(q) == (0, 0)
        assert q.max_deliveries == 2  # stored in dque.json


def test_dead_letter_after_ttl_expiry(tmp_path):
    with dque.new(NAME, tmp_path, max_deliveries=1) as q:
        q.enqueue_many(["slow", "next"])
        q.lease(ttl=0.2)
        wait_until(lambda: q.in_flight() == 0, "the ttl to expire")
        assert state(q) == (1, 0)
        assert q.dequeue() == "next"
    assert dead_letters(tmp_path) == ["slow"]


def test_dead_letter_queue_held_elsewhere_retries_at_next_release(tmp_path):
    with dque.new(NAME, tmp_path, max_deliveries=1) as q:
        q.enqueue_many(["poison", "ok"])
        held = dque.new(NAME + ".dead", tmp_path)
        try:
            q.lease().release()  # cannot move it now: it stays, and is handed out again
            assert state(q) == (2, 0)
            x = q.lease()
            assert (x.item, x.deliveries) == ("poison", 2)
        finally:
            held.close()
        x.release()
        assert state(q) == (1, 0)
        assert q.dequeue() == "ok"
    assert dead_letters(tmp_path) == ["poison"]


def test_new_or_open_keeps_max_deliveries(tmp_path):
    dque.new(NAME, tmp_path, max_deliveries=3).close()
    with pytest.warns(UserWarning):
        q = dque.new_or_open(NAME, tmp_path, max_deliveries=5)
    with q:
        assert q.max_deliveries == 3
    for bad, error in ((-1, ValueError), ("2", TypeError), (1.0, TypeError)):
        with pytest.raises(error):
            dque.new("other", tmp_path, max_deliveries=bad)


def test_a_dead_letter_move_wakes_a_blocked_put(tmp_path):
    with dque.new(NAME, tmp_path, maxsize=1, max_deliveries=1) as q:
        q.enqueue("poison")
        x = q.lease()  # a leased item counts against maxsize
        done = threading.Event()

        def put():
            try:
                q.put("next", timeout=2)
                done.set()
            except (dque.Full, dque.ClosedError):
                pass

        t = threading.Thread(target=put, daemon=True)
        t.start()
        time.sleep(0.1)
        x.release()  # moved to the dead-letter queue: room for one
        assert done.wait(1.5), "the put was not woken"
        t.join(PATIENCE)
        assert drain(q) == ["next"]



@pytest.mark.parametrize("turbo", [False, True])
def test_an_ack_wakes_a_blocked_put(tmp_path, turbo):
    with dque.new(NAME, tmp_path, maxsize=1, turbo=turbo) as q:
        q.enqueue("a")
        x = q.lease()  # a leased item counts against maxsize
        started, done = threading.Event(), threading.Event()

        def put():
            started.set()
            try:
                q.put("b", timeout=PATIENCE)
                done.set()
            except (dque.Full, dque.ClosedError):
                pass

        t = threading.Thread(target=put, daemon=True)
        t.start()
        assert started.wait(PATIENCE)
        wait_until(lambda: q._waiting_putters == 1, "the put to block")  # the ack must wake it
        assert not done.is_set()
        x.ack()
        assert done.wait(PATIENCE), "the put was not woken"
        t.join(PATIENCE)
        assert drain(q) == ["b"]


def test_dead_letter_at_reopen(tmp_path):
    with dque.new(NAME, tmp_path, max_deliveries=2) as q:
        q.enqueue_many(["poison", "ok"])
        q.lease().release()
        x = q.lease()
        assert x.deliveries == 2  # not acked when the queue closes (or the process dies)
    with dque.open(NAME, tmp_path) as q:  # it would be handed out a third time: moved instead
        assert state(q) == (1, 0)
        assert drain(q) == ["ok"]
    assert dead_letters(tmp_path) == ["poison"]


def test_size_after_reopen_excludes_dead_letters_of_later_segments(tmp_path):
    with dque.new(NAME, tmp_path, segment_size=2, max_deliveries=2) as q:
        q.enqueue_many(["a0", "a1", "b0", "b1", "c0"])
        a0, a1, b0 = q.lease_many(3)
        a0.release()
        b0.release()
        a0, b0 = q.lease_many(2)
        assert (a0.item, a0.deliveries, b0.item, b0.deliveries) == ("a0", 2, "b0", 2)
        a1.release()  # segment 1 still has an item to hand out: segment 2 is not the head at open
    with dque.open(NAME, tmp_path) as q:
        # a0 and b0 are dead letters, never handed out again: 3 ready items, and 3 come out.
        assert (q.size(), drain(q)) == (3, ["a1", "b1", "c0"])
    assert dead_letters(tmp_path) == ["a0", "b0"]


def test_size_after_reopen_excludes_dead_letters_of_the_tail(tmp_path):
    """(Found by the model test.) A dead letter in the last segment, not the head at open: not
    counted as ready, moved when that segment becomes the head, and the counts stay right."""
    with dque.new(NAME, tmp_path, segment_size=2, max_deliveries=2) as q:
        q.enqueue_many(["a0", "a1", "b0", "b1", "c0"])
        leases = q.lease_many(5)
        leases[4].release()
        c0 = q.lease()
        assert (c0.item, c0.deliveries) == ("c0", 2)
    with dque.open(NAME, tmp_path) as q:
        assert (q.size(), q.in_flight()) == (4, 0)
        q.enqueue("d0")  # the tail fills and rolls over with the dead letter still in it
        assert q.size() == 5
        assert drain(q) == ["a0", "a1", "b0", "b1", "d0"]
        assert q.size() == 0
        q.enqueue("e0")
        assert (q.size(), drain(q)) == (1, ["e0"])
    assert dead_letters(tmp_path) == ["c0"]
    with dque.open(NAME, tmp_path) as q:
        assert q.size() == 0


# --------------------------------------------------------------------------- task_done / join


def test_join_waits_for_leased_items_to_be_acked(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many(["a", "b", "c"])
        leases = q.lease_many(3)
        done = threading.Event()
        t = threading.Thread(target=lambda: (q.join(), done.set()), daemon=True)
        t.start()
        assert not done.wait(0.3), "join() returned while items were leased"
        leases[1].ack()
        leases[0].release()  # a release is not done
        assert not done.wait(0.2)
        x = q.lease()
        assert x.item == "a"
        x.ack()
        assert not done.wait(0.1)
        leases[2].ack()  # the last one
        assert done.wait(PATIENCE), "join() did not return after the last ack"
        t.join(PATIENCE)
        with pytest.raises(ValueError):
            q.task_done()  # the acks counted: no task left


def test_join_with_plain_takes_and_acks(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many([1, 2])
        assert q.dequeue() == 1
        x = q.lease()
        x.ack()
        assert not joined(q, 0.2)  # the plain take still needs its task_done
        q.task_done()
        assert joined(q)


def test_join_counts_items_present_at_open(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many([1, 2])
        q.lease()  # void at close
    with dque.open(NAME, tmp_path) as q:
        assert not joined(q, 0.2)
        q.lease().ack()
        q.lease().ack()
        assert joined(q)


# --------------------------------------------------------------------------- the model


class LeaseModel(RuleBasedStateMachine):
    """Random lease/ack/release/enqueue/dequeue/close-reopen sequences against an in-memory model.

    The model: ``ready`` is the sorted list of the sequence numbers of ready
    items (a released item goes back in its original place, ahead of newer
    ones, so the ready items are always in enqueue order), ``leased`` maps a
    lease id to its item, ``deliveries`` counts the hand-outs of each item.
    On reopen every outstanding lease is void: its item is ready again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="dque-leases-")
        self.q: dque.DQue | None = None
        self.next = 0
        self.ready: list[int] = []
        self.leased: dict = {}  # lease id -> Lease
        self.deliveries: Counter = Counter()
        self.stale: list = []  # ids of leases no longer outstanding
        self.dead: list[int] = []
        self.moved_at_open = False
        self.max_deliveries = 0

    @staticmethod
    def item(seq: int):
        return (seq, b"x" * (seq * 7 % 40))

    @initialize(segment_size=st.integers(1, 4), turbo=st.booleans(), max_deliveries=st.sampled_from([0, 0, 2, 3]))
    def create(self, segment_size: int, turbo: bool, max_deliveries: int) -> None:
        self.max_deliveries = max_deliveries
        self.q = dque.new(NAME, self.tmp, segment_size=segment_size, turbo=turbo, max_deliveries=max_deliveries)

    def teardown(self) -> None:
        try:
            if self.q is not None:
                # Take what is ready (a dead letter found at open moves when its segment becomes the head).
                assert drain(self.q) == [self.item(s) for s in self.ready]
                self.q.close()
                if self.dead:
                    with dque.open(NAME + ".dead", self.tmp) as dead:
                        got, want = drain(dead), [self.item(s) for s in self.dead]
                        if self.moved_at_open:  # (moved when their segment becomes the head: any order)
                            got, want = sorted(got), sorted(want)
                        assert got == want
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _pick(self, k: int) -> list:
        ids = list(self.leased)
        return ids[k % len(ids) :] + ids[: k % len(ids)] if ids else []

    def _took(self, leases: list[dque.Lease], want: list[int]) -> None:
        assert [x.item for x in leases] == [self.item(s) for s in want]
        for x, s in zip(leases, want, strict=True):
            self.deliveries[s] += 1
            assert x.deliveries == self.deliveries[s], (s, x.deliveries, self.deliveries[s])
            assert x.id not in self.leased and x.id not in self.stale
            self.leased[x.id] = x
        del self.ready[: len(want)]

    def _released(self, lease_id) -> None:
        s = self.leased.pop(lease_id).item[0]
        self.stale.append(lease_id)
        if self.max_deliveries and self.deliveries[s] >= self.max_deliveries:
            self.dead.append(s)
        else:
            bisect.insort(self.ready, s)

    # --- adding and plain taking ------------------------------------------------

    @rule(n=st.integers(1, 4), many=st.booleans())
    def enqueue(self, n: int, many: bool) -> None:
        seqs = list(range(self.next, self.next + n))
        self.next += n
        if many:
            self.q.enqueue_many([self.item(s) for s in seqs])
        else:
            for s in seqs:
                self.q.enqueue(self.item(s))
        self.ready.extend(seqs)

    @rule(k=st.integers(0, 3))
    def dequeue(self, k: int) -> None:
        if k == 0:
            if self.ready:
                assert self.q.peek() == self.item(self.ready[0])
            else:
                with pytest.raises(dque.Empty):
                    self.q.peek()
        elif k == 1:
            if not self.ready:
                with pytest.raises(dque.Empty):
                    self.q.dequeue()
                return
            assert self.q.dequeue() == self.item(self.ready.pop(0))
        else:
            want = self.ready[:k]
            assert self.q.dequeue_many(k) == [self.item(s) for s in want]
            del self.ready[:k]

    # --- leases -----------------------------------------------------------------

    @rule()
    def lease(self) -> None:
        if not self.ready:
            with pytest.raises(dque.Empty):
                self.q.lease(block=False)
            return
        self._took([self.q.lease(block=False)], self.ready[:1])

    @rule(k=st.integers(0, 5))
    def lease_many(self, k: int) -> None:
        self._took(self.q.lease_many(k), self.ready[:k])

    @precondition(lambda self: self.leased)
    @rule(k=st.integers(0, 99), n=st.integers(1, 3), how=st.sampled_from(["q", "lease", "many"]))
    def ack(self, k: int, n: int, how: str) -> None:
        ids = self._pick(k)[: 1 if how != "many" else n]
        if how == "q":
            self.q.ack(ids[0])
        elif how == "lease":
            self.leased[ids[0]].ack()
        else:
            self.q.ack_many(ids)
        for i in ids:
            del self.leased[i]
            self.stale.append(i)

    @precondition(lambda self: self.leased)
    @rule(k=st.integers(0, 99), n=st.integers(1, 3), how=st.sampled_from(["q", "lease", "many"]))
    def release(self, k: int, n: int, how: str) -> None:
        ids = self._pick(k)[: 1 if how != "many" else n]
        if how == "q":
            self.q.release(ids[0])
        elif how == "lease":
            self.leased[ids[0]].release()
        else:
            self.q.release_many(ids)
        for i in ids:
            self._released(i)

    @precondition(lambda self: self.stale)
    @rule(k=st.integers(0, 99), what=st.sampled_from(["ack", "release", "ack_many", "release_many"]))
    def settle_stale(self, k: int, what: str) -> None:
        """Acking or releasing a lease that is not outstanding raises LeaseError and changes nothing."""
        stale = self.stale[k % len(self.stale)]
        if what.endswith("_many"):
            ids = [*list(self.leased)[:1], stale]
            call = lambda: getattr(self.q, what)(ids)  # noqa: E731
        else:
            call = lambda: getattr(self.q, what)(stale)  # noqa: E731
        with pytest.raises(dque.LeaseError):
            call()

    # --- handles ----------------------------------------------------------------

    @rule(how=st.sampled_from(["close", "crash", "no", "no", "no", "no"]), turbo=st.booleans())
    def reopen(self, how: str, turbo: bool) -> None:
        """Close and reopen, or reopen what a SIGKILL leaves (sometimes: "no" makes it rarer than the rest)."""
        if how == "no":
            return
        if how == "crash":
            # The files as they are now (every write is in the OS), with no clean close.
            qdir = os.path.join(self.tmp, NAME)
            snap = os.path.join(self.tmp, "snapshot")
            os.mkdir(snap)
            for name in os.listdir(qdir):
                try:
                    shutil.copyfile(os.path.join(qdir, name), os.path.join(snap, name))
                except FileNotFoundError:
                    pass  # a used segment deleted in the background (turbo) meanwhile
            self.q.close()
            shutil.rmtree(qdir)
            os.rename(snap, qdir)
        else:
            self.q.close()
        self.q = dque.open(NAME, self.tmp, turbo=turbo)
        for lease_id, x in self.leased.items():  # void: back in place, or a dead letter now
            s = x.item[0]
            if self.max_deliveries and self.deliveries[s] >= self.max_deliveries:
                self.dead.append(s)
                self.moved_at_open = True
            else:
                bisect.insort(self.ready, s)
            self.stale.append(lease_id)
        self.leased.clear()
        assert self.q.size() == len(self.ready)
        if self.ready:
            assert self.q.peek() == self.item(self.ready[0])

    # --- after every step -------------------------------------------------------

    @invariant()
    def counts_agree(self) -> None:
        if self.q is not None:
            assert self.q.size() == len(self.ready)
            assert self.q.in_flight() == len(self.leased)


LeaseModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("DQUE_LEASE_EXAMPLES", "50")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
)
TestLeaseModel = LeaseModel.TestCase
