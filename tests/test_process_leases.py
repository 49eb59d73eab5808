"""Leases through ProcessSafeDQue: worker processes, killed workers, a killed owner, foreign items.

A lease belongs to the client process that took it: when that process dies
the owner releases its leases at once. Every kill here is a real SIGKILL;
every process a test starts is reaped, also when it fails (subprocesses
through ``reap``, ``multiprocessing`` children in ``finally`` blocks, and the
autouse fixture below checks that none is left). The workers and subprocess
roles are in ``lease_helpers.py``; they log each ack after it returned, one
``os.write`` per line, so the ledgers say exactly what was acked.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import lease_helpers
import pytest
from waiting import wait_until

import dque

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="owner addresses are Linux abstract sockets"
)

NAME = lease_helpers.NAME
HELPER = str(Path(lease_helpers.__file__).resolve())
PATIENCE = 30.0  # seconds: a wait longer than this is a hang (never reached when all is well)
CONTRACT = 2.0  # seconds: from a client's SIGKILL to the release of its leases


@pytest.fixture(autouse=True)
def no_children_left():
    """Fail the test if a multiprocessing child (a worker, an owner) outlives it; reap them all."""
    yield
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    left = multiprocessing.active_children()
    for p in left:
        p.kill()
        p.join()
    assert not left, f"processes left behind: {left}"


@contextlib.contextmanager
def owner(dirpath: Path, **kwargs):
    q = dque.ProcessSafeDQue(NAME, dirpath, context="fork", **kwargs)
    try:
        yield q
    finally:
        q.close()


def state(q) -> tuple[int, int]:
    return q.size(), q.in_flight()


def run_role(reap, tmp_path: Path, role: str, *args: str) -> subprocess.Popen:
    with open(tmp_path / f"{role}.err", "wb") as err:
        return reap([sys.executable, HELPER, role, *args], stdin=subprocess.DEVNULL, stdout=err, stderr=err)


def role_error(tmp_path: Path, role: str) -> str:
    return (tmp_path / f"{role}.err").read_text()


def wait_ledger(proc, ledger: Path, tmp_path: Path, role: str, word: str) -> list[list[str]]:
    """Wait until the role's ledger has a line starting with ``word``; its lines."""

    def ready():
        lines = lease_helpers.read_ledger(ledger)
        if any(w[0] == word for w in lines):
            return lines
        assert proc.poll() is None, f"{role} exited ({proc.returncode}): {role_error(tmp_path, role)}"
        return None

    return wait_until(ready, f"{role} to log {word}")


# --------------------------------------------------------------------------- the API through the owner


def test_the_lease_api_through_the_owner(tmp_path):
    with owner(tmp_path / "qs", segment_size=2, max_deliveries=3) as q:
        q.enqueue_many(range(8))
        a = q.lease()
        assert isinstance(a, dque.Lease) and (a.item, a.deliveries) == (0, 1)
        batch = q.lease_many(3)
        assert [x.item for x in batch] == [1, 2, 3]
        assert state(q) == (4, 4)
        q.release_many([batch[2].id, batch[0].id])
        batch[1].ack()
        assert state(q) == (6, 1)
        with pytest.raises(dque.LeaseError) as info:  # raised here, with its types
            q.ack(batch[1].id)
        assert isinstance(info.value, KeyError)
        with pytest.raises(dque.LeaseError):
            q.release_many([a.id, batch[1].id])  # all or nothing
        with pytest.raises(dque.LeaseError):
            q.ack_many([a.id, a.id])
        with pytest.raises(TypeError):
            q.ack("nope")
        assert state(q) == (6, 1)
        with q.lease() as x:
            assert (x.item, x.deliveries) == (1, 2)
        with pytest.raises(KeyboardInterrupt):  # any exception releases
            with q.lease() as x:
                raise KeyboardInterrupt
        assert state(q) == (5, 1)
        a.release()
        assert [x.item for x in q.lease_many(10, ttl=0.2)] == [0, 3, 4, 5, 6, 7]
        wait_until(lambda: q.in_flight() == 0, "the ttls to expire")  # 3 expired on its 3rd hand-out: dead
        again = q.lease_many(10)
        assert [(x.item, x.deliveries) for x in again] == [(0, 3), (4, 2), (5, 2), (6, 2), (7, 2)]
        again[0].release()  # handed out 3 times: a dead letter too
        q.ack_many([x.id for x in again[1:]])
        assert state(q) == (0, 0)
        t = threading.Thread(target=q.join, daemon=True)
        t.start()
        t.join(PATIENCE)
        assert not t.is_alive()
    with dque.open(NAME + ".dead", tmp_path / "qs") as dead:
        assert dead.dequeue_many(10) == [3, 0]


# --------------------------------------------------------------------------- workers, one killed


def test_workers_ack_every_item_exactly_once_despite_a_killed_worker(tmp_path):
    n, kill_item = 5000, 1234
    ctx = multiprocessing.get_context("fork")
    workers: list = []
    with owner(tmp_path / "qs", segment_size=100, turbo=True) as q:
        try:
            q.enqueue_many(range(n))
            for w in range(4):  # two lease one at a time, two in batches of 3
                p = ctx.Process(target=lease_helpers.pool_worker, args=(q, str(tmp_path / f"w{w}"), kill_item, w % 2))
                p.start()
                workers.append(p)
            for p in workers:
                p.join(PATIENCE)
        finally:
            for p in workers:
                if p.is_alive():
                    p.kill()
                p.join()
        codes = sorted(p.exitcode for p in workers)
        assert codes == [-signal.SIGKILL, 0, 0, 0], codes
        assert state(q) == (0, 0)
        t = threading.Thread(target=q.join, daemon=True)  # every item was acked: join returns
        t.start()
        t.join(PATIENCE)
        assert not t.is_alive()

    lines = [w for i in range(4) for w in lease_helpers.read_ledger(tmp_path / f"w{i}")]
    assert not [w for w in lines if w[0] == "X"], [w for w in lines if w[0] == "X"]
    assert [w for w in lines if w[0] == "K"] == [["K", str(kill_item)]]
    acks = Counter(int(w[1]) for w in lines if w[0] == "A")
    assert set(acks) == set(range(n)), f"never acked: {sorted(set(range(n)) - set(acks))[:20]}"
    assert [i for i, c in acks.items() if c != 1] == [], "acked more than once"
    deliveries = {int(w[1]): int(w[2]) for w in lines if w[0] == "A"}
    assert deliveries[kill_item] == 2  # redelivered once its worker died
    redelivered = {i for i, d in deliveries.items() if d != 1}
    assert kill_item in redelivered and len(redelivered) <= 3  # the killed worker's batch, at most
    assert {deliveries[i] for i in redelivered} == {2}


# --------------------------------------------------------------------------- a client killed


def test_killed_client_leases_are_released_at_once(tmp_path, reap):
    with owner(tmp_path / "qs") as q:
        q.enqueue_many(range(10))
        ledger = tmp_path / "holder.log"
        proc = run_role(reap, tmp_path, "holder", str(tmp_path / "qs"), str(ledger), "6")
        lines = wait_ledger(proc, ledger, tmp_path, "holder", "H")
        assert [(int(w[1]), int(w[2])) for w in lines if w[0] == "L"] == [(i, 1) for i in range(6)]
        assert state(q) == (4, 6)
        mine = q.lease()  # this process's lease is not the holder's
        assert mine.item == 6

        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_until(lambda: q.in_flight() == 1, "the owner to release the killed client's leases")
        elapsed = time.monotonic() - killed
        assert elapsed < CONTRACT, f"released {elapsed:.2f} s after the kill"
        assert role_error(tmp_path, "holder") == ""

        assert state(q) == (9, 1)  # back at the head, in order, ahead of the rest
        back = q.lease_many(20)
        assert [(x.item, x.deliveries) for x in back] == [(i, 2) for i in range(6)] + [(i, 1) for i in range(7, 10)]
        q.ack_many([x.id for x in back])
        mine.ack()
        assert state(q) == (0, 0)


def test_a_client_killed_while_waiting_in_lease_holds_nothing(tmp_path, reap):
    with owner(tmp_path / "qs") as q:
        ledger = tmp_path / "waiter.log"
        proc = run_role(reap, tmp_path, "waiter", str(tmp_path / "qs"), str(ledger))
        wait_ledger(proc, ledger, tmp_path, "waiter", "W")
        time.sleep(0.3)  # now waiting in the owner (if not yet, the kill comes first: just as good)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        q.enqueue("a")
        # The owner may hand the item to the dead client's call before it notices; then it releases it.
        wait_until(lambda: state(q) == (1, 0), "the item to be ready", timeout=CONTRACT * 5)
        time.sleep(0.5)  # (a slice of the owner's wait) nothing takes it later
        assert state(q) == (1, 0)
        x = q.lease()
        assert x.item == "a" and x.deliveries in (1, 2)
        x.ack()
        assert [w for w in lease_helpers.read_ledger(ledger) if w[0] == "L"] == []


# --------------------------------------------------------------------------- the owner killed


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_owner_killed_with_leases_outstanding(tmp_path, reap, turbo):
    qdir = tmp_path / "qs"
    q = dque.ProcessSafeDQue(NAME, qdir, segment_size=7, turbo=turbo, context="fork")
    try:
        q.enqueue_many(range(100))
        leases = q.lease_many(30)  # 0..29
        acked = leases[::3]
        q.ack_many([x.id for x in acked[:5]])
        for x in acked[5:]:
            x.ack()
        released = [leases[1], leases[4]]
        q.release_many([x.id for x in released[:1]])
        released[1].release()
        assert state(q) == (72, 18)
        # Another client holds some too (the released ones come first).
        ledger = tmp_path / "holder.log"
        proc = run_role(reap, tmp_path, "holder", str(qdir), str(ledger), "4")
        lines = wait_ledger(proc, ledger, tmp_path, "holder", "H")
        assert [(int(w[1]), int(w[2])) for w in lines if w[0] == "L"] == [(1, 2), (4, 2), (30, 1), (31, 1)]
        assert state(q) == (68, 22)

        os.kill(q._manager._process.pid, signal.SIGKILL)

        def owner_gone() -> bool:
            try:
                q.size()
            except dque.OwnerGoneError:
                return True
            return False

        wait_until(owner_gone, "OwnerGoneError")
    finally:
        q.close()
    proc.kill()
    proc.wait()

    gone = {x.item for x in acked}
    with owner(qdir) as q:  # a new owner starts at once
        want = [i for i in range(100) if i not in gone]
        assert state(q) == (len(want), 0)
        back = q.lease_many(200)
        assert [x.item for x in back] == want  # in order, exactly once; nothing acked came back
        leased_before = {x.item for x in leases} | {30, 31}
        assert [x.deliveries for x in back] == [
            (3 if x.item in (1, 4) else 2) if x.item in leased_before else 1 for x in back
        ]
        q.ack_many([x.id for x in back])
    with owner(qdir) as q:
        assert state(q) == (0, 0)


# --------------------------------------------------------------------------- items this process cannot load


def test_an_item_the_consumer_cannot_load_stays_in_the_queue(tmp_path, reap):
    qdir = tmp_path / "qs"
    with owner(qdir) as q:
        proc = run_role(reap, tmp_path, "alien_producer", str(qdir), str(tmp_path / "p.log"), "ALIEN", "plain")
        assert proc.wait(PATIENCE) == 0, role_error(tmp_path, "alien_producer")
        assert state(q) == (2, 0)
        for _ in range(3):  # every attempt fails the same way, and the item stays at the head
            with pytest.raises(dque.SerializationError):
                q.lease()
            assert state(q) == (2, 0)
            with pytest.raises(dque.SerializationError):
                q.lease_many(5)
            assert state(q) == (2, 0)
        with pytest.raises(dque.SerializationError):
            q.peek()
        assert state(q) == (2, 0)


def test_an_item_the_consumer_cannot_load_becomes_a_dead_letter(tmp_path, reap):
    qdir = tmp_path / "qs"
    with owner(qdir, max_deliveries=2) as q:
        proc = run_role(reap, tmp_path, "alien_producer", str(qdir), str(tmp_path / "p.log"), "ALIEN", "plain")
        assert proc.wait(PATIENCE) == 0, role_error(tmp_path, "alien_producer")
        with pytest.raises(dque.SerializationError):
            q.lease()
        assert state(q) == (2, 0)
        with pytest.raises(dque.SerializationError):
            q.lease()
        assert state(q) == (1, 0)  # handed out twice: moved to the dead-letter queue
        x = q.lease()
        assert (x.item, x.deliveries) == ("plain", 1)
        x.ack()
    with dque.open(NAME + ".dead", qdir) as dead:
        assert dead.size() == 1
        with pytest.raises(dque.SerializationError):  # (this process has no such class either)
            dead.peek()


def test_lease_many_with_an_item_the_consumer_cannot_load_leaks_nothing(tmp_path, reap):
    qdir = tmp_path / "qs"
    with owner(qdir) as q:
        proc = run_role(
            reap, tmp_path, "alien_producer", str(qdir), str(tmp_path / "p.log"), "plain0", "ALIEN", "plain1"
        )
        assert proc.wait(PATIENCE) == 0, role_error(tmp_path, "alien_producer")
        try:
            got = q.lease_many(3)
        except dque.SerializationError:
            assert state(q) == (3, 0)  # all or nothing: every lease of the call released
        else:
            assert [x.item for x in got] == ["plain0"]  # or, like DQue.lease_many, the loadable prefix
            assert state(q) == (2, 1)


def test_a_lease_outlives_the_thread_that_took_it(tmp_path):
    """Leases belong to the client process, not to one thread's connection: a thread that
    leases and ends does not release; acking from another thread of the process works."""
    with owner(tmp_path) as q:
        q.enqueue_many(["a", "b"])
        client = dque.attach(NAME, tmp_path)
        taken = []
        worker = threading.Thread(target=lambda: taken.append(client.lease(block=False)))
        worker.start()
        worker.join()
        del worker
        gc.collect()  # the ended thread's connection is gone
        time.sleep(0.5)  # what the owner would need to notice and release
        assert state(q) == (1, 1)
        client.ack(taken[0].id)
        assert state(q) == (1, 0)
        assert q.dequeue() == "b"
        client.close()
