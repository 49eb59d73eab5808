"""The owner's event loop: blocking calls parked with their deadlines, served in the order they came.

Clients are agents (``proc_helpers.Agent``) in their own processes. "Parked"
is reached by waiting 0.3 s after sending the blocking call (the same
convention as ``test_blocked_client_does_not_stall_others``); the orders
checked are the owner's, item by item.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sys
import time

import proc_helpers
import pytest
from proc_helpers import owner

import dque
from dque import _owner, _wire

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="agents reach owners at abstract sockets"),
    pytest.mark.usefixtures("no_stray_processes"),
]

NAME = proc_helpers.NAME
PARKED = 0.3  # seconds after which a blocking call sent is surely parked in the owner


def agents(start_agent, n: int) -> list:
    started = [start_agent(f"a{i}") for i in range(n)]
    for a in started:
        a.ok("attach", {})
    return started


def test_parked_takes_are_served_in_the_order_they_came(qdir, start_agent):
    with owner(qdir) as q:
        waiters = agents(start_agent, 3)
        for a in waiters:
            a.send("call", "dequeue_block", 30)
            time.sleep(PARKED)
        assert all(a.pending() for a in waiters)
        q.enqueue_many(["a", "b", "c"])  # one put: the loop serves the parked, first come first
        assert [a.recv()["ok"] for a in waiters] == ["a", "b", "c"]
        for a in reversed(waiters):  # and again, parked in the other order, items put one by one
            a.send("call", "get", True, 30)
            time.sleep(PARKED)
        for item in ("d", "e", "f"):
            q.enqueue(item)
        assert [a.recv()["ok"] for a in reversed(waiters)] == ["d", "e", "f"]
        assert q.size() == 0
        for a in waiters:
            a.stop()


def test_parked_puts_on_a_full_queue_are_served_in_order(qdir, start_agent):
    with owner(qdir, maxsize=1) as q:
        q.enqueue("first")
        putters = agents(start_agent, 3)
        for i, a in enumerate(putters):
            a.send("call", "put", f"p{i}", True, 30)
            time.sleep(PARKED)
        assert all(a.pending() for a in putters)
        got = []
        for a in putters:
            got.append(q.get(timeout=10))  # makes room for exactly one parked put
            assert a.recv()["ok"] is None
        got.append(q.get(timeout=10))
        assert got == ["first", "p0", "p1", "p2"]
        for a in putters:
            a.stop()


def test_a_deadline_answers_empty_while_other_clients_are_served(qdir, start_agent):
    with owner(qdir) as q:
        waiter, busy = agents(start_agent, 2)
        for timeout in (0.5, 2.5):  # within one request, and over several (_WAIT_SLICE each)
            start = time.monotonic()
            waiter.send("call", "dequeue_block", timeout)
            calls, slowest = 0, 0.0
            while waiter.pending():
                t = time.monotonic()
                assert busy.ok("call", "size") == 0 and q.in_flight() == 0
                slowest = max(slowest, time.monotonic() - t)
                calls += 1
            answer = waiter.recv()
            elapsed = time.monotonic() - start
            assert answer.get("error") == "Empty", answer
            assert timeout - 0.05 <= elapsed < timeout + 2.0, elapsed
            assert calls >= 3 and slowest < 1.0, (calls, slowest)  # the others were served all along
        waiter.stop()
        busy.stop()


@pytest.mark.parametrize("call", [["dequeue_block", 30], ["lease", True, 30], ["peek_block", 30]])
def test_a_client_killed_while_parked_takes_nothing(qdir, start_agent, call):
    with owner(qdir) as q:
        doomed, other = agents(start_agent, 2)
        doomed.send("call", *call)
        other.send("call", "dequeue_block", 30)  # parked behind the doomed one
        time.sleep(PARKED)
        os.kill(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait(10)
        time.sleep(PARKED)  # the owner has seen the hang-up
        q.enqueue_many(["x", "y"])
        assert other.recv()["ok"] == "x"  # the dead client's place went to the next in line
        assert q.dequeue_many(10) == ["y"] and q.in_flight() == 0
        other.stop()


def test_safe_mode_requests_of_many_clients_share_syncs(qdir, start_agent):
    # Correctness of the group sync: every put and take of several clients at once is carried out and answered.
    with owner(qdir) as q:
        clients = agents(start_agent, 3)
        for round_ in range(20):
            for i, a in enumerate(clients):
                a.send("call", "enqueue_many", [f"{round_}-{i}-{k}" for k in range(3)])
            for a in clients:
                assert a.recv()["ok"] is None
        got = []
        while len(got) < 180:
            for a in clients:
                a.send("call", "dequeue_many", 7)
            for a in clients:
                got.extend(a.recv()["ok"])
        assert sorted(got) == sorted(f"{r}-{i}-{k}" for r in range(20) for i in range(3) for k in range(3))
        assert q.size() == 0 and not q.turbo
        for a in clients:
            a.stop()


def test_owner_runs_one_thread_per_process_not_per_client(qdir, start_agent):
    with owner(qdir) as q:
        clients = agents(start_agent, 4)
        for a in clients:
            a.send("call", "dequeue_block", 30)
        time.sleep(PARKED)
        pid = q._manager._process.pid
        threads = len(os.listdir(f"/proc/{pid}/task"))
        # The loop, the creator's watchdog, maybe an engine thread: not one per client (a thread per
        # connection made 8 here: accepter, 4 clients, watchdog, reaper, main).
        assert threads <= 4, threads
        q.enqueue_many(range(4))
        assert sorted(a.recv()["ok"] for a in clients) == [0, 1, 2, 3]
        for a in clients:
            a.stop()
        assert isinstance(q, dque.ProcessSafeDQue)


def test_a_wrong_authkey_is_refused_and_a_silent_stranger_stalls_nobody_for_long(qdir):
    with owner(qdir) as q:
        address = json.loads((qdir / NAME / "dque.owner").read_text())["address"]
        with pytest.raises((multiprocessing.AuthenticationError, EOFError, OSError)):
            _wire.dial(address, b"not the key", time.monotonic() + 5).close()
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            stranger.connect(address)  # and never answers the owner's challenge
            time.sleep(0.1)
            start = time.monotonic()
            q.enqueue("still served")
            assert q.dequeue() == "still served"
            assert time.monotonic() - start < _owner._HANDSHAKE + 1.0
        finally:
            stranger.close()
        other = dque.attach(NAME, qdir)  # the right key still gets in
        try:
            assert other.size() == 0
        finally:
            other.close()


def _take_and_report(q, n: int, got) -> None:
    for _ in range(n):
        got.put(q.get(timeout=10))


def test_a_put_and_the_parked_take_it_wakes_share_one_sync(qdir, monkeypatch):
    # The owner is forked after _fs.datasync is wrapped to count its calls in shared memory: the
    # count is the owner's own segment syncs. A consumer parked in get() is served in the put's
    # turn, so each item (a durable put and a durable take) costs one sync, not two.
    ctx = multiprocessing.get_context("fork")
    syncs = ctx.Value("q", 0)
    real = dque._fs.datasync

    def counting(fd: int) -> None:
        real(fd)
        with syncs.get_lock():
            syncs.value += 1

    monkeypatch.setattr(dque._fs, "datasync", counting)
    n = 10
    with owner(qdir, turbo=False, segment_size=10_000, context=ctx) as q:
        got = ctx.Queue()
        consumer = ctx.Process(target=_take_and_report, args=(q, n, got))
        consumer.start()
        try:
            time.sleep(PARKED + 0.5)  # connected and parked
            before = syncs.value
            for i in range(n):
                q.put(i)
                assert got.get(timeout=10) == i
                time.sleep(0.05)  # its next get() is parked before the next put
            taken_with = syncs.value - before
        finally:
            consumer.join(10)
        assert consumer.exitcode == 0
        assert taken_with == n, f"{taken_with} syncs for {n} items, each a put and the take it woke"
