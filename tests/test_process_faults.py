"""ProcessSafeDQue when the owner stops answering, when client threads end, and without abstract sockets.

A SIGSTOPped owner is the hard case: its listening socket still accepts, so
nothing but a deadline ends a client's wait. Every test that stops the owner
sends SIGCONT in a ``finally`` block before it closes anything. Processes are
checked for and reaped by the ``no_stray_processes`` fixture (``conftest.py``);
the roles, and the test side of them, are in ``proc_helpers.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import proc_helpers
import pytest
from proc_helpers import CONTRACT, HELPER, Role, failure, owner, pool_of, stopped
from waiting import wait_until

import dque
from dque import _process

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGSTOP on Linux"),
    pytest.mark.usefixtures("no_stray_processes"),
]

NAME = proc_helpers.NAME
DEADLINE = _process.REPLY_TIMEOUT
BOUND = 10.0  # seconds: a stopped owner's error comes before this, even on a loaded machine


@contextlib.contextmanager
def owner_stopped(pid: int):
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: stopped(pid), "the owner to stop")
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def timed(call) -> tuple[float, BaseException | None, object]:
    start = time.monotonic()
    try:
        result = call()
    except BaseException as exc:
        return time.monotonic() - start, exc, None
    return time.monotonic() - start, None, result


# --------------------------------------------------------------------------- 1. a stopped owner


def test_a_stopped_owner_never_hangs_a_client(qdir, tmp_path, reap):
    items = list(range(5))
    with owner(qdir) as q:
        pid = q._manager._process.pid
        q.enqueue_many(items)
        c = dque.attach(NAME, qdir)

        calls = {
            "dequeue_block(timeout=1)": lambda: c.dequeue_block(timeout=1),
            "dequeue_block()": lambda: c.dequeue_block(),
            "size()": c.size,
            "enqueue()": lambda: c.enqueue("never"),
            "put(timeout=None)": lambda: c.put("never either"),
            "attach()": lambda: dque.attach(NAME, qdir),
        }
        outcomes: dict[str, tuple] = {}
        connected = threading.Barrier(len(calls) + 1)
        go = threading.Event()

        def run(name: str, call) -> None:
            c.size()  # this thread's connection, made before the stop (attach() makes its own after)
            connected.wait()
            go.wait()
            outcomes[name] = timed(call)

        threads = [threading.Thread(target=run, args=item) for item in calls.items()]
        for t in threads:
            t.start()
        try:
            connected.wait(30)
            with owner_stopped(pid):
                go.set()
                for t in threads:
                    t.join(3 * BOUND)
                assert not any(t.is_alive() for t in threads), "a call still hangs"
        finally:
            go.set()
            for t in threads:
                t.join(3 * BOUND)
        for name, (elapsed, exc, result) in outcomes.items():
            assert isinstance(exc, dque.OwnerGoneError), f"{name}: {exc!r}, returned {result!r}"
            assert isinstance(exc, ConnectionError)
            assert f"within {DEADLINE:g} s" in str(exc), f"{name}: {exc}"
            assert DEADLINE - 0.5 <= elapsed < BOUND, f"{name} took {elapsed:.2f} s"

        # Going on: the owner carried out none of the calls it read too late; a fresh handle and the old one work.
        time.sleep(0.5)
        fresh = dque.attach(NAME, qdir)
        assert fresh.size() == len(items) and c.size() == len(items)
        assert [fresh.dequeue() for _ in items] == items  # item by item: none lost, none twice, in order
        with pytest.raises(dque.Empty):
            c.dequeue()
        c.enqueue("after")
        assert fresh.dequeue_block(timeout=5) == "after"
        fresh.close()
        c.close()


def test_a_stopped_owner_wakes_a_client_blocked_in_another_process(qdir, tmp_path, reap):
    with owner(qdir) as q:
        pid = q._manager._process.pid
        q.enqueue("kept")
        block = Role(reap, tmp_path, "consumer", "block", str(qdir), "block")
        wait_until(lambda: block.lines()[-2:] == ["-kept", "W"], "the client to block")
        time.sleep(0.3)  # waiting in the owner now
        with owner_stopped(pid):
            stopped_at = time.monotonic()
            assert block.exit_code(timeout=3 * BOUND) == 0, block.errfile.read_text()
        when, kind = failure(block.lines())
        assert kind == "OwnerGoneError"
        assert when - stopped_at < BOUND, f"the blocked client learned of it {when - stopped_at:.2f} s late"
        assert block.lines()[-2] == "W"  # the call that failed was the blocked one
        # What comes after the owner resumes is not lost to the client that gave up: its wait, resumed, may take
        # "a" before it notices the hang-up, but then its reply fails and "a" is put back (at the tail).
        q.enqueue_many(["a", "b"])
        time.sleep(2 * _process._SLICE)
        got = q.dequeue_many(10)
        assert sorted(got) == ["a", "b"], got


def test_a_stopped_owner_fails_a_new_creator_quickly(qdir):
    with owner(qdir) as q:
        pid = q._manager._process.pid
        with owner_stopped(pid):
            elapsed, exc, _ = timed(lambda: dque.ProcessSafeDQue(NAME, qdir, if_locked="attach"))
        assert isinstance(exc, dque.LockedError), exc  # held, and its owner does not answer
        assert elapsed < 2 * BOUND
        assert q.size() == 0


# --------------------------------------------------------------------------- 2. leases belong to the process


def test_a_lease_taken_by_an_ended_thread_is_acked_by_the_main_thread(qdir):
    with owner(qdir) as q:
        q.enqueue_many(["a", "b", "c"])
        with pool_of(1, "fork") as pool:  # a process whose only connection is that thread's
            assert pool.apply(proc_helpers.lease_in_a_thread, (str(qdir),)) == ("a", "acked")
            assert q.in_flight() == 0 and q.size() == 2
            time.sleep(0.5)
            leases = q.lease_many(10)
            assert [(x.item, x.deliveries) for x in leases] == [("b", 1), ("c", 1)]  # "a" never came back
            q.ack_many([x.id for x in leases])
        assert q.size() == 0 and q.in_flight() == 0


def test_a_killed_client_releases_the_leases_of_all_its_threads(qdir, start_agent):  # noqa: F811
    with owner(qdir) as q:
        q.enqueue_many(list("abcdefg"))
        agent = start_agent()
        agent.ok("attach", {})
        assert [x[1] for x in agent.ok("lease", 2)] == ["a", "b"]
        assert [x[1] for x in agent.ok("thread_lease", 3)] == ["c", "d", "e"]
        time.sleep(0.5)  # the thread's connection is closed: nothing is released for that
        assert q.in_flight() == 5 and q.size() == 2
        killed = time.monotonic()
        os.kill(agent.proc.pid, signal.SIGKILL)
        wait_until(lambda: q.in_flight() == 0, "the owner to release the killed client's leases", timeout=CONTRACT)
        assert time.monotonic() - killed < CONTRACT
        leases = q.lease_many(10)
        assert [(x.item, x.deliveries) for x in leases] == [(i, 2) for i in "abcde"] + [("f", 1), ("g", 1)]
        q.ack_many([x.id for x in leases])
        assert q.size() == 0 and q.in_flight() == 0


# --------------------------------------------------------------------------- 3. no abstract socket address


def test_the_portable_address_a_socket_file_in_a_private_directory(tmp_path, reap):
    env = dict(os.environ, DQUE_SIMULATE_POSIX="1")
    with open(tmp_path / "posix.stderr", "w") as err:
        proc = reap(
            [sys.executable, HELPER, "posix_round_trip", str(tmp_path / "qs")],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, (tmp_path / "posix.stderr").read_text()
    got = json.loads(out.splitlines()[-1])
    assert got["abstract"] is False and got["pidfd"] is False
    assert got["address"].startswith("/") and got["is_socket"]
    assert got["sockdir_mode"] == 0o700
    assert got["drained"] == list(range(100))
    assert got["child_exit"] == 0
    assert got["released_after"] < 5  # pid polling: a child that exited gives its lease back
    assert got["attached"] == [["x", 2], ["y", 1]]
    assert got["left"] == 0
    assert got["sockdir_after_close"] is False
    assert got["killed_sockdir_after_close"] is False
    assert not os.path.exists(os.path.dirname(got["address"]))
