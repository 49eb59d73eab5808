"""ProcessSafeDQue and attach: one owner process, clients in Pool workers, Processes and strangers.

Every kill here is a real SIGKILL. Every process a test starts is reaped, also
when the test fails: subprocesses through the ``reap`` fixture (agents are first
asked to exit, so that they stop the owners they created), pools and handles in
``finally`` blocks. The ``no_stray_processes`` fixture (``conftest.py``, used by
every test here) makes this process a child subreaper for the duration of each
test, so that orphans (the owner of a killed creator, say) come back here to be
reaped, and errors if any process the test started is still there, running or
unreaped, at its end.

The subprocess roles (producers, consumers, creators, the JSON command agent)
are in ``proc_helpers.py``, as are the Pool targets (importable under spawn
and forkserver) and the test side of them (``Role``, ``AgentProcess``, the
``/proc`` readers). The only timing assertions are the 2-second contracts, each
measured from the SIGKILL to the exception (``time.monotonic`` is system-wide
on Linux, so a timestamp written by another process compares with ours).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import pickle
import queue
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import proc_helpers
import pytest
from proc_helpers import (
    CONTRACT,
    HELPER,
    NAME,
    Role,
    descendants,
    failure,
    gone,
    owner,
    pool_of,
    reap_orphans,
    wait_gone,
)
from waiting import wait_until as wait_for

import dque
from dque import _config

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="owner addresses are Linux abstract sockets"),
    pytest.mark.usefixtures("no_stray_processes"),
]

CONTEXTS = ("fork", "spawn", "forkserver")


def owner_file(dirpath: Path) -> Path:
    return dirpath / NAME / "dque.owner"


def owner_pid(dirpath: Path) -> int:
    return json.loads(owner_file(dirpath).read_text())["pid"]


def raises_within(call, kind: type[BaseException], since: float) -> float:
    """Call ``call`` until it raises ``kind`` (a SIGKILLed process may take a moment to die): the delay since ``since``."""
    deadline = since + CONTRACT
    while True:
        try:
            call()
        except kind:
            return time.monotonic() - since
        assert time.monotonic() < deadline, f"{call} still returns {CONTRACT} s after the kill"
        time.sleep(0.005)


# --------------------------------------------------------------------------- 1. a Pool drains exactly once


@pytest.mark.parametrize("context", CONTEXTS)
def test_pool_drains_exactly_once(qdir, context):
    n = 20_000
    with owner(qdir, segment_size=500, context=context) as q:
        assert q.is_owner
        q.enqueue_many(range(n))
        assert q.size() == n
        with pool_of(4, context) as pool:
            results = pool.starmap(proc_helpers.drain, [(q, 97)] * 4, chunksize=1)
        taken = [item for _, items in results for item in items]
        assert len(taken) == n
        assert sorted(taken) == list(range(n))  # each item exactly once
        for _, items in results:
            assert items == sorted(items)  # FIFO as seen by each worker
        assert q.size() == 0 and q.empty()
        owner_proc = q._manager._process.pid
    assert gone(owner_proc)


# --------------------------------------------------------------------------- 2. the owner is killed


def test_owner_killed_during_traffic(qdir, tmp_path, reap):
    q = dque.ProcessSafeDQue(NAME, qdir, segment_size=50)
    try:
        pid = q._manager._process.pid
        assert owner_pid(qdir) == pid
        d = str(qdir)
        prod = Role(reap, tmp_path, "producer", "producer", d)
        many = Role(reap, tmp_path, "consumer", "many", d, "many")
        block = Role(reap, tmp_path, "consumer", "block", d, "block")
        wait_for(
            lambda: sum(x[0] == "+" for x in prod.lines()) >= 300 and sum(x[0] == "-" for x in many.lines()) >= 100,
            "traffic",
        )

        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        # Every call from this process fails within the contract, also after the first.
        assert raises_within(q.size, dque.OwnerGoneError, killed) < CONTRACT
        for call in (
            lambda: q.enqueue(1),
            lambda: q.enqueue_many([1, 2]),
            q.dequeue,
            lambda: q.dequeue_many(5),
            lambda: q.dequeue_block(timeout=None),
            q.peek,
            lambda: q.maxsize,
            q.join,
        ):
            with pytest.raises(dque.OwnerGoneError):
                call()
        assert time.monotonic() - killed < CONTRACT
        with pytest.raises(dque.OwnerGoneError):
            dque.attach(NAME, qdir)  # the owner file is stale: nobody answers at its address
        # ... and in every other process, the blocked one included.
        for role in (prod, many, block):
            assert role.exit_code() == 0, role.errfile.read_text()
            when, kind = failure(role.lines())
            assert kind == "OwnerGoneError"
            assert when - killed < CONTRACT, f"{role.ledger.stem} learned of the kill {when - killed:.2f} s late"
        assert wait_gone(pid, time.monotonic() + CONTRACT) is not None  # (SIGKILLed: gone once the kernel is done)
    finally:
        q.close()

    # A new owner starts at once, and holds exactly what the calls that returned say.
    q = dque.ProcessSafeDQue(NAME, qdir)
    try:
        remaining = []
        while batch := q.dequeue_many(1000):
            remaining.extend(batch)
    finally:
        q.close()
    enqueued = [int(x[1:]) for x in prod.lines() if x[0] == "+"]
    assert enqueued == list(range(len(enqueued)))
    in_flight_enqueue = len(enqueued)  # its call may or may not have happened
    taken = [int(x[1:]) for role in (many, block) for x in role.lines() if x[0] == "-"]
    assert len(taken) == len(set(taken)), "an item was taken twice"
    assert set(taken) <= set(enqueued) | {in_flight_enqueue}
    assert not set(remaining) & set(taken), "a dequeue that returned came back"
    assert remaining == sorted(remaining) and len(set(remaining)) == len(remaining)
    assert set(remaining) <= set(enqueued) | {in_flight_enqueue}
    # Items neither remaining nor logged as taken were taken by a call in flight at the kill
    # (at most 3 by dequeue_many(3), 1 by dequeue_block), so they were at the head.
    lost = set(enqueued) - set(taken) - set(remaining)
    assert len(lost) <= 4, f"acknowledged enqueues lost: {sorted(lost)}"
    assert not remaining or all(i < remaining[0] for i in lost)


def test_owner_killed_wakes_a_blocked_client(qdir, tmp_path, reap):
    q = dque.ProcessSafeDQue(NAME, qdir)
    try:
        q.enqueue("kept")
        pid = q._manager._process.pid
        block = Role(reap, tmp_path, "consumer", "block", str(qdir), "block")
        wait_for(lambda: block.lines()[-2:] == ["-kept", "W"], "the client to block")
        time.sleep(0.3)  # it is now waiting in the owner (if not, its call must fail just as fast)

        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        assert block.exit_code() == 0, block.errfile.read_text()
        lines = block.lines()
        assert lines[-2] == "W"  # the call that failed was the blocked one
        when, kind = failure(lines)
        assert kind == "OwnerGoneError" and when - killed < CONTRACT
        assert raises_within(q.size, dque.OwnerGoneError, killed) < CONTRACT
    finally:
        q.close()
    with owner(qdir) as q:  # starts at once
        assert q.size() == 0


# --------------------------------------------------------------------------- 3. the creator is killed


@pytest.mark.parametrize("context", CONTEXTS)
def test_creator_killed_owner_exits(qdir, tmp_path, reap, context):
    with open(tmp_path / "creator.stderr", "w") as err:
        creator = reap([sys.executable, HELPER, "creator", str(qdir), context], stdout=subprocess.PIPE, stderr=err)
    line = creator.stdout.readline()
    assert line, (tmp_path / "creator.stderr").read_text()
    pids = json.loads(line)
    orphans = descendants(creator.pid)  # the owner, and a forkserver and a resource tracker but with fork
    assert pids["owner"] in orphans
    with pytest.raises(dque.LockedError):
        dque.open(NAME, qdir)

    killed = time.monotonic()
    os.kill(creator.pid, signal.SIGKILL)
    creator.wait()
    seen = wait_gone(pids["owner"], killed + CONTRACT)
    reap_orphans(orphans)
    assert seen is not None, f"the owner still runs {CONTRACT} s after its creator was killed"
    with dque.open(NAME, qdir) as q:  # the lock is free, and what the creator enqueued is there
        assert q.dequeue_many(10) == ["one", "two"]


def test_creator_killed_with_a_live_fork_child_owner_exits(qdir, tmp_path, reap):
    with open(tmp_path / "creator.stderr", "w") as err:
        creator = reap(
            [sys.executable, HELPER, "creator", str(qdir), "spawn", "fork-child"], stdout=subprocess.PIPE, stderr=err
        )
    pids = json.loads(creator.stdout.readline())
    orphans = descendants(creator.pid)
    try:
        killed = time.monotonic()
        os.kill(creator.pid, signal.SIGKILL)
        creator.wait()
        assert wait_gone(pids["owner"], killed + CONTRACT) is not None, "the owner outlives its killed creator"
    finally:
        for pid in (pids["child"], pids["owner"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reap_orphans(orphans)


def test_forked_child_exiting_leaves_the_owner_alone(qdir, tmp_path, reap):
    with open(tmp_path / "fork_exit.stderr", "w") as err:
        proc = reap([sys.executable, HELPER, "fork_exit", str(qdir)], stdout=subprocess.PIPE, stderr=err)
    out, _ = proc.communicate(timeout=20)
    assert json.loads(out.splitlines()[0]) == {"size": 2, "owner_file": True}


# --------------------------------------------------------------------------- 4. a client is killed mid-call


def test_client_killed_mid_calls(qdir, tmp_path, reap):
    stop = tmp_path / "stop"
    mine_in: list[str] = []
    mine_out: list[str] = []
    q = dque.ProcessSafeDQue(NAME, qdir, segment_size=20)
    try:
        victim = Role(reap, tmp_path, "churn", "victim", str(qdir), "A", str(stop))
        other = Role(reap, tmp_path, "churn", "other", str(qdir), "B", str(stop))
        n = 0

        def work(rounds: int) -> None:
            nonlocal n
            for _ in range(rounds):
                q.enqueue(f"T:{n}")
                mine_in.append(f"T:{n}")
                n += 1
                with contextlib.suppress(dque.Empty):
                    mine_out.append(q.dequeue())

        def ops(role: Role) -> int:
            return sum(x[0] in "ed" for x in role.lines())

        deadline = time.monotonic() + 20
        while ops(victim) < 200 or ops(other) < 200:  # this process works alongside
            assert time.monotonic() < deadline, "the clients do not churn"
            work(5)
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert victim.proc.wait(10) == -signal.SIGKILL
        after = ops(other)
        work(20)  # this process carries on ...
        wait_for(lambda: ops(other) >= after + 100, "the other client to carry on")  # ... and so does the other
        stop.touch()
        assert other.exit_code() == 0, other.errfile.read_text()
        assert other.lines()[-1] == "S"
        assert failure(other.lines()) is None
        work(20)
        pid = q._manager._process.pid
    finally:
        q.close()
    assert gone(pid)

    with dque.open(NAME, qdir) as plain:  # closed cleanly: a plain open sees it all
        remaining = []
        while batch := plain.dequeue_many(1000):
            remaining.extend(batch)

    enq, deq = set(mine_in), list(mine_out)
    in_flight: set[str] = set()
    for role, tag in ((victim, "A"), (other, "B")):
        lines = role.lines()
        enq |= {f"{tag}:{x.split()[1]}" for x in lines if x.startswith("e ")}
        deq += [x.split()[1] for x in lines if x.startswith("d ") and x != "d -"]
    last = victim.lines()[-1]
    if last.startswith("E "):
        in_flight = {f"A:{last.split()[1]}"}
    assert len(deq) == len(set(deq)), "an item was dequeued twice"
    assert set(deq) <= enq | in_flight
    assert not set(remaining) & set(deq), "a dequeue that returned came back"
    assert len(remaining) == len(set(remaining))
    assert set(remaining) <= enq | in_flight
    lost = enq - set(deq) - set(remaining)
    # Only the victim's dequeue in flight may have taken an item that no ledger shows.
    assert len(lost) <= (1 if last == "D" else 0), f"lost {lost}; the victim's last line: {last!r}"
    for tag in "ABT":
        numbers = [int(x.split(":")[1]) for x in remaining if x.startswith(tag)]
        assert numbers == sorted(numbers)
        assert all(int(x.split(":")[1]) < min(numbers, default=1 << 60) for x in lost if x.startswith(tag))


def test_killed_client_leases_come_back(qdir, start_agent):
    with owner(qdir) as q:
        q.enqueue_many(["a", "b", "c", "d"])
        agent = start_agent()
        agent.ok("attach", {})
        assert [item for _, item, _ in agent.ok("lease", 2)] == ["a", "b"]
        assert q.in_flight() == 2 and q.size() == 2
        killed = time.monotonic()
        os.kill(agent.proc.pid, signal.SIGKILL)
        wait_for(lambda: q.in_flight() == 0, "the owner to release the dead client's leases", timeout=CONTRACT)
        assert time.monotonic() - killed < CONTRACT
        leases = q.lease_many(10)
        assert [(lease.item, lease.deliveries) for lease in leases] == [("a", 2), ("b", 2), ("c", 1), ("d", 1)]
        q.ack_many([lease.id for lease in leases])
        assert q.size() == 0 and q.in_flight() == 0


# --------------------------------------------------------------------------- 5. the queue is held elsewhere


def test_locked_in_this_process(qdir):
    held = dque.new(NAME, qdir)
    try:
        held.enqueue("x")
        before = set(descendants())
        started = time.monotonic()
        with pytest.raises(dque.LockedError):
            dque.ProcessSafeDQue(NAME, qdir)
        assert time.monotonic() - started < CONTRACT
        assert set(descendants()) <= before | proc_helpers.multiprocessing_helpers()  # refused before starting an owner
    finally:
        held.close()
    with owner(qdir) as q:
        assert q.dequeue() == "x"


def test_locked_by_another_process(qdir, tmp_path, start_agent):
    dque.new(NAME, qdir).close()
    agent = start_agent()
    assert agent.ok("open") == "held"
    for context in CONTEXTS:
        started = time.monotonic()
        with pytest.raises(dque.LockedError):
            dque.ProcessSafeDQue(NAME, qdir, context=context)
        assert time.monotonic() - started < CONTRACT
    agent.stop()
    with owner(qdir) as q:
        assert q.size() == 0


def test_owner_start_failure_is_raised_and_leaves_no_process(qdir):
    dque.new(NAME, qdir).close()  # a pickle queue
    with pytest.raises(dque.ConfigError):
        dque.ProcessSafeDQue(NAME, qdir, serializer="json")
    assert not owner_file(qdir).exists()
    with owner(qdir) as q:
        q.enqueue("fine")


def test_attach_mode_when_held_by_a_plain_handle(qdir):
    held = dque.new(NAME, qdir)
    try:
        with pytest.raises(dque.LockedError):
            dque.ProcessSafeDQue(NAME, qdir, if_locked="attach")
    finally:
        held.close()


# --------------------------------------------------------------------------- 6. two creators at once


@pytest.mark.parametrize(
    ("fresh", "if_locked"),
    [
        pytest.param(True, "raise", id="fresh-raise"),
        pytest.param(True, "attach", id="fresh-attach"),
        pytest.param(False, "raise", id="existing-raise"),
        pytest.param(False, "attach", id="existing-attach"),
    ],
)
def test_two_creators_race(qdir, tmp_path, start_agent, fresh, if_locked):
    if not fresh:
        dque.new(NAME, qdir).close()
    go = tmp_path / "go"
    agents = [start_agent(f"agent{i}") for i in range(2)]
    for agent in agents:
        agent.ok("info")  # started, dque imported
    for agent in agents:
        agent.send("race", str(go), {"if_locked": if_locked})
    go.touch()
    answers = [agent.recv() for agent in agents]
    winners = [a["ok"] for a in answers if "ok" in a and a["ok"]["is_owner"]]
    assert len(winners) == 1, answers
    if if_locked == "raise":
        assert sorted(a.get("error", "") for a in answers) == ["", "LockedError"], answers
    else:
        assert all("ok" in a for a in answers), answers
        first, second = agents
        first.ok("call", "enqueue", "from the first")
        second.ok("call", "enqueue", "from the second")
        assert first.ok("call", "size") == second.ok("call", "size") == 2
        assert second.ok("call", "dequeue") == "from the first"
        assert first.ok("call", "dequeue") == "from the second"
    owners = {a["ok"]["owner"] for a in answers if "ok" in a}
    assert len(owners) == 1
    for agent in agents:
        agent.stop()  # the winner's agent stops its owner (a loser's failed owner, if it got that far, is gone already)
    assert all(gone(pid) for pid in owners)


def test_attach_mode_while_the_winner_creates(qdir, monkeypatch):
    real_write = _config.write

    def slow_write(qdir_, config):  # fork-started owners inherit this: the winner holds the lock a while
        time.sleep(0.5)
        real_write(qdir_, config)

    monkeypatch.setattr(_config, "write", slow_write)
    made: list = []
    first = threading.Thread(target=lambda: made.append(dque.ProcessSafeDQue(NAME, qdir, context="fork")))
    first.start()
    try:
        wait_for(lambda: (qdir / NAME / "dque.lock").exists(), "the first owner to take the lock")
        time.sleep(0.1)
        second = dque.ProcessSafeDQue(NAME, qdir, context="fork", if_locked="attach")
        assert not second.is_owner
        second.close()
    finally:
        first.join()
        for q in made:
            q.close()


# --------------------------------------------------------------------------- 7. attach


def test_attach_from_a_subprocess(qdir, tmp_path, start_agent):
    with pytest.raises(FileNotFoundError):
        dque.attach(NAME, qdir)
    with pytest.raises(FileNotFoundError):
        dque.attach(NAME, tmp_path / "nowhere")
    agent = start_agent()
    assert agent.error("attach", {}) == "FileNotFoundError"

    q = dque.ProcessSafeDQue(NAME, qdir)
    try:
        assert stat.S_IMODE(os.stat(owner_file(qdir)).st_mode) == 0o600
        info = agent.ok("attach", {})
        assert info["is_owner"] is False and info["owner"] == q._manager._process.pid
        agent.ok("call", "enqueue", "from the agent")
        assert q.dequeue() == "from the agent"
        q.enqueue("from the creator")
        assert agent.ok("call", "dequeue") == "from the creator"
        agent.ok("call", "enqueue", "left")
        assert agent.ok("close") is None  # a client's close only disconnects
        assert q.size() == 1
        pid = q._manager._process.pid
    finally:
        q.close()
    assert gone(pid)
    assert not owner_file(qdir).exists()

    # No live owner after a close: OwnerGoneError; create=True starts one.
    assert agent.error("attach", {}) == "OwnerGoneError"
    with pytest.raises(dque.OwnerGoneError):
        dque.attach(NAME, qdir)
    info = agent.ok("attach", {"create": True})
    assert info["is_owner"] is True
    mine = dque.attach(NAME, qdir)
    assert not mine.is_owner and mine.dequeue() == "left"
    mine.enqueue("survives")
    mine.close()
    assert mine.closed

    # No live owner after a kill (the owner file is stale): the same.
    killed = time.monotonic()
    os.kill(info["owner"], signal.SIGKILL)
    assert wait_gone(info["owner"], killed + CONTRACT) is not None
    assert agent.error("call", "size") == "OwnerGoneError"
    with pytest.raises(dque.OwnerGoneError):
        dque.attach(NAME, qdir)
    q = dque.attach(NAME, qdir, create=True)
    try:
        assert q.is_owner
        assert stat.S_IMODE(os.stat(owner_file(qdir)).st_mode) == 0o600
        info = agent.ok("attach", {})
        assert info["is_owner"] is False and info["owner"] == q._manager._process.pid
        assert agent.ok("call", "dequeue") == "survives"
        agent.stop()
    finally:
        q.close()


def test_long_lived_pool_worker_follows_a_new_owner(qdir):
    with pool_of(1, "fork") as pool:
        with owner(qdir) as q:
            q.enqueue(1)
            assert pool.apply(proc_helpers.handle_size, (q,)) == 1
        with owner(qdir) as q:  # the same queue, a new owner
            assert pool.apply(proc_helpers.handle_size, (q,)) == 1


def test_pool_task_gets_a_handle_whose_owner_is_gone(qdir):
    with pool_of(1) as pool:
        q = dque.ProcessSafeDQue(NAME, qdir)
        try:
            killed = time.monotonic()
            os.kill(q._manager._process.pid, signal.SIGKILL)
            raises_within(q.size, dque.OwnerGoneError, killed)
            result = pool.apply_async(proc_helpers.handle_size, (q,))
            assert result.get(timeout=3) == "OwnerGoneError"  # not a worker gone and a result that never comes
        finally:
            q.close()


# --------------------------------------------------------------------------- 8. unpicklable items


def test_unpicklable_item_from_a_pool_worker(qdir):
    with owner(qdir) as q:
        q.enqueue_many(["a", "b"])
        with pool_of(2) as pool:
            outcomes = pool.starmap(proc_helpers.try_enqueue, [(q, w) for w in ("lambda", "lock", "many", "put")])
        assert outcomes == ["SerializationError"] * 4
        assert q.size() == 2
        assert q.dequeue_many(10) == ["a", "b"]


# --------------------------------------------------------------------------- 9. exceptions cross the boundary


def test_exception_types_cross_the_process_boundary(qdir, tmp_path, start_agent):
    agent = start_agent()
    q = dque.ProcessSafeDQue(NAME, qdir, maxsize=2)
    try:
        agent.ok("attach", {})
        assert agent.error("call", "task_done") == "ValueError"  # nothing was put
        for call in (
            ["dequeue"],
            ["get", False],
            ["dequeue_block", 0.05],
            ["get", True, 0.05],
            ["peek"],
            ["peek_block", 0.05],
        ):
            assert agent.error("call", *call) == "Empty", call
        for call in (q.dequeue, q.peek, lambda: q.dequeue_block(timeout=0.05), lambda: q.peek_block(timeout=0.05)):
            with pytest.raises(dque.Empty) as exc:
                call()
            assert type(exc.value) is dque.Empty and isinstance(exc.value, queue.Empty)
        assert q.dequeue_many(3) == []

        q.enqueue_many([1, 2])
        assert agent.ok("call", "full") is True and agent.ok("call", "maxsize") == 2
        for call in (["enqueue", 3], ["put", 3, False], ["put", 3, True, 0.05], ["enqueue_many", [3]]):
            assert agent.error("call", *call) == "Full", call
        for call in (lambda: q.enqueue(3), lambda: q.put(3, timeout=0.05), lambda: q.enqueue_many([3])):
            with pytest.raises(dque.Full) as exc:
                call()
            assert type(exc.value) is dque.Full and isinstance(exc.value, queue.Full)
        assert q.size() == 2
        assert agent.ok("call", "dequeue_many", 5) == [1, 2]

        # Closed handles: ClosedError for every call, and a second close is fine.
        agent.ok("close")
        agent.ok("close")
        assert agent.error("call", "size") == "ClosedError"
        assert agent.error("call", "enqueue", 1) == "ClosedError"
        # A caller blocked in another process when the owner closes hears of it.
        agent.ok("attach", {})
        agent.send("call", "dequeue_block", None)
        time.sleep(0.3)
        assert agent.pending()
        pid = q._manager._process.pid
    finally:
        q.close()
    assert gone(pid)
    assert agent.recv()["error"] in ("ClosedError", "OwnerGoneError")
    assert agent.error("call", "size") == "OwnerGoneError"  # the owner has gone: not this handle's fault
    agent.stop()
    q.close()  # idempotent
    assert q.closed
    for call in (
        lambda: q.enqueue(1),
        lambda: q.enqueue_many([1]),
        lambda: q.put(1),
        q.dequeue,
        lambda: q.dequeue_many(1),
        lambda: q.dequeue_block(timeout=None),
        lambda: q.get(timeout=1),
        q.peek,
        q.size,
        lambda: len(q),
        q.empty,
        q.full,
        lambda: q.maxsize,
        q.task_done,
        q.join,
        q.segment_numbers,
        q.turbo_sync,
    ):
        with pytest.raises(dque.ClosedError):
            call()
    with pytest.raises(dque.ClosedError):
        with q:
            pass


# --------------------------------------------------------------------------- 10. blocking calls do not stall others


def test_blocked_client_does_not_stall_others(qdir, tmp_path, start_agent):
    with owner(qdir) as q:
        blocked = start_agent("blocked")
        free = start_agent("free")
        blocked.ok("attach", {})
        free.ok("attach", {})
        got_blocked, got_free = [], []
        for i in range(15):
            blocked.send("call", "dequeue_block", None)
            if i == 0:
                time.sleep(0.3)  # surely waiting in the owner now
                for _ in range(20):
                    assert free.ok("call", "size") == 0 and q.size() == 0
                    assert free.error("call", "dequeue") == "Empty"
                assert blocked.pending()
            free.ok("call", "enqueue_many", [2 * i, 2 * i + 1])
            got_free.append(free.ok("call", "dequeue"))  # one of the two is left for it either way
            got_blocked.append(blocked.recv()["ok"])
        assert sorted(got_blocked + got_free) == list(range(30))

        # Threads too: one blocked on this process's handle while another thread uses it.
        result: list = []
        waiter = threading.Thread(target=lambda: result.append(q.dequeue_block(timeout=None)))
        waiter.start()
        try:
            time.sleep(0.3)
            for _ in range(20):
                assert q.size() == 0 and q.dequeue_many(5) == []
                with pytest.raises(dque.Empty):
                    q.peek()
            assert not result
        finally:
            q.enqueue("for the waiter")
            waiter.join(10)
        assert not waiter.is_alive() and result == ["for the waiter"]
        blocked.stop()
        free.stop()


# --------------------------------------------------------------------------- 11. messages of every size


def test_messages_of_every_size_cross_intact(qdir):
    # Around the sizes where the wire changes its ways: one write or two (16 KiB), one read or more (64 KiB).
    sizes = [0, 1, 16_370, 16_384, 16_400, 65_520, 65_536, 70_000, 3_000_000]
    items = [os.urandom(n) for n in sizes]
    with owner(qdir) as q:
        for item in items:
            q.enqueue(item)
            assert q.peek() == item and q.dequeue() == item
        q.enqueue_many(items)
        assert q.dequeue_many(len(items)) == items
        q.enqueue_many(items * 3)
        assert [q.dequeue_block(1) for _ in range(len(items) * 3)] == items * 3
        assert q.size() == 0
        # What the manager's proxies ask besides the queue's methods: answered, or a RemoteError.
        assert "Owner" in str(q._proxy)
        with pytest.raises(multiprocessing.managers.RemoteError, match="not exposed"):
            q._proxy._callmethod("_q")
        assert q.size() == 0


def test_wire_speaks_connection_bytes():
    from dque._process import _Wire

    a, b = multiprocessing.Pipe()
    try:
        wire = _Wire(b)
        big = os.urandom(100_000)
        messages = [("x", 1), big, ("#RETURN", [b"y" * 20_000])]
        for m in messages:  # sent ahead: several messages in one read
            a.send(m)
        assert [wire.recv() for _ in messages] == messages
        for m in messages:
            wire.send(m)
            assert a.recv() == m
        got: list = []
        reader = threading.Thread(target=lambda: got.append(wire.recv()))
        reader.start()
        body = pickle.dumps(big)
        header = struct.pack("!i", len(body))
        for chunk in (header[:2], header[2:] + body[:10], body[10:]):  # a message arriving in pieces
            time.sleep(0.05)
            os.write(a.fileno(), chunk)
        reader.join(10)
        assert got == [big]
        a.close()
        with pytest.raises(EOFError):
            wire.recv()
    finally:
        a.close()
        b.close()
