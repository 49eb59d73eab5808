"""Who is woken, and what a failed call leaves: every path that frees room wakes a waiting putter, every path
that makes an item ready wakes takers and peekers, and a lease or ack that fails changes nothing (written as a
review of the engine split into SegmentStore and LeaseTable: behaviour that must not have changed)."""

import os
import threading
import time

import pytest

import dque
from dque import _segment
from dque.errors import Empty, Full, LeaseError, ShutDown

NAME = "q"


def _blocked_put(q, item, timeout=5.0):
    """Start a thread putting ``item``; returns (thread, result dict)."""
    result = {}

    def run():
        try:
            q.put(item, timeout=timeout)
            result["ok"] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001
            result["err"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while q._waiting_putters == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert q._waiting_putters == 1
    return t, result


def _blocked(fn, counter, q):
    result = {}

    def run():
        try:
            result["ok"] = fn()
        except BaseException as exc:  # noqa: BLE001
            result["err"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while getattr(q, counter) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert getattr(q, counter) == 1
    return t, result


def _fast(t, result):
    start = time.monotonic()
    t.join(3.0)
    assert not t.is_alive(), "blocked caller not woken"
    assert "err" not in result, result
    assert time.monotonic() - start < 1.0, "woken only by its timeout"


@pytest.mark.parametrize("how", ["dequeue", "get", "dequeue_many", "dequeue_many_1", "take_payloads"])
def test_a_take_wakes_a_waiting_putter(tmp_path, how):
    with dque.new(NAME, tmp_path, maxsize=2, segment_size=3) as q:
        q.enqueue_many([1, 2])
        t, r = _blocked_put(q, 3)
        if how == "dequeue":
            q.dequeue()
        elif how == "get":
            q.get()
        elif how == "dequeue_many":
            q.dequeue_many(2)
        elif how == "dequeue_many_1":
            q.dequeue_many(1)
        else:
            q.take_payloads(1)
        _fast(t, r)


@pytest.mark.parametrize("how", ["lease.ack", "q.ack", "ack_many", "with"])
def test_an_ack_wakes_a_waiting_putter(tmp_path, how):
    with dque.new(NAME, tmp_path, maxsize=2) as q:
        q.enqueue_many([1, 2])
        lease = q.lease()
        t, r = _blocked_put(q, 3)
        if how == "lease.ack":
            lease.ack()
        elif how == "q.ack":
            q.ack(lease.id)
        elif how == "ack_many":
            q.ack_many([lease.id])
        else:
            with lease:
                pass
        _fast(t, r)


def test_a_dead_letter_on_release_wakes_a_waiting_putter(tmp_path):
    with dque.new(NAME, tmp_path, maxsize=2, max_deliveries=1) as q:
        q.enqueue_many([1, 2])
        lease = q.lease()
        t, r = _blocked_put(q, 3)
        lease.release()  # max_deliveries=1: to the dead-letter queue
        _fast(t, r)
        assert q.size() == 2


def test_a_dead_letter_on_expiry_wakes_a_waiting_putter(tmp_path):
    with dque.new(NAME, tmp_path, maxsize=2, max_deliveries=1) as q:
        q.enqueue_many([1, 2])
        q.lease(ttl=0.3)
        t, r = _blocked_put(q, 3)
        t.join(3.0)
        assert not t.is_alive() and "ok" in r


def test_a_release_wakes_a_waiting_taker(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue(1)
        lease = q.lease()
        tt, rt = _blocked(lambda: q.get(timeout=5), "_waiting_takers", q)
        lease.release()
        _fast(tt, rt)
        assert rt["ok"] == 1


def test_a_release_wakes_a_waiting_peeker(tmp_path):
    # (Alone: with a taker waiting too, the taker may take the item first, and the peeker
    # then rightly goes on waiting.)
    with dque.new(NAME, tmp_path) as q:
        q.enqueue(1)
        lease = q.lease()
        tp, rp = _blocked(lambda: q.peek_block(timeout=5), "_waiting_peekers", q)
        lease.release()
        _fast(tp, rp)
        assert rp["ok"] == 1


def test_an_expiry_wakes_a_waiting_taker(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue(1)
        q.lease(ttl=0.2)
        t, r = _blocked(lambda: q.get(timeout=5), "_waiting_takers", q)
        t.join(3)
        assert r.get("ok") == 1


def test_a_put_payloads_wakes_a_blocked_lease_payloads(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        t, r = _blocked(lambda: q.lease_payloads(1, True, 5, None, owner="c"), "_waiting_takers", q)
        q.put_payloads([b"x"])
        _fast(t, r)
        assert r["ok"][0][1] == b"x"


def _no_room(monkeypatch):
    def reserve(self, n):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_segment.Segment, "reserve", reserve)


def _fill_room(q):
    # make every open segment's room exactly used up, so the next store reserves
    for seg in q._store.open_segments() if hasattr(q, "_store") else q._open_segments():
        seg.cap = seg.end


def test_a_failed_ack_changes_nothing(tmp_path, monkeypatch):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many([1, 2])
        a, b = q.lease(), q.lease()
        before = (q.unfinished_tasks, q.in_flight(), q.size())
        _fill_room(q)
        _no_room(monkeypatch)
        with pytest.raises(OSError):
            a.ack()
        with pytest.raises(OSError):
            q.ack(b.id)
        with pytest.raises(OSError):
            q.ack_many([a.id, b.id])
        assert (q.unfinished_tasks, q.in_flight(), q.size()) == before
        monkeypatch.undo()
        a.ack()
        q.ack(b.id)
        assert (q.unfinished_tasks, q.in_flight(), q.size()) == (0, 0, 0)


def test_a_failed_lease_changes_nothing(tmp_path, monkeypatch):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many([1, 2, 3])
        _fill_room(q)
        _no_room(monkeypatch)
        with pytest.raises(OSError):
            q.lease()
        with pytest.raises(OSError):
            q.lease(ttl=10)
        with pytest.raises(OSError):
            q.lease_many(2)
        with pytest.raises(OSError):
            q.lease_payloads(2, False, None, None, owner="c")
        assert (q.unfinished_tasks, q.in_flight(), q.size()) == (3, 0, 3)
        monkeypatch.undo()
        assert q.dequeue_many(5) == [1, 2, 3]


def test_unfinished_tasks_after_immediate_shutdown_with_leases(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many([1, 2, 3])
        a = q.lease()
        q.shutdown(immediate=True)
        assert q.unfinished_tasks == 1
        a.ack()
        assert q.unfinished_tasks == 0
        assert q.join_for(0.1)
        with pytest.raises(ShutDown):
            q.lease(block=False)


def test_turbo_flag_reaches_the_store(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        if not hasattr(q, "_store"):
            pytest.skip("base has no store")
        q.turbo_on()
        assert q._store.turbo and q._store.wake_syncer is not None
        q.turbo_off()
        assert not q._store.turbo and q._store.wake_syncer is None
        q.turbo_on(float("inf"))
        assert q._store.turbo and q._store.wake_syncer is None


def test_release_owner_wakes_a_taker(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.put_payloads([b"a", b"b"])
        got = q.lease_payloads(2, False, None, None, owner="c")
        assert [p for _, p, _ in got] == [b"a", b"b"]
        t, r = _blocked(lambda: q.take_payloads(2, True, 5), "_waiting_takers", q)
        assert q.release_owner("c") == 2
        _fast(t, r)
        assert r["ok"][0] == b"a"


def test_fork_child_refuses_and_parent_expires_leases(tmp_path):
    with dque.new(NAME, tmp_path) as q:
        q.enqueue_many([1, 2])
        q.lease(ttl=0.3)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                try:
                    q.dequeue()
                except dque.ForkedError:
                    code = 0
                q.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.8)
        assert q.in_flight() == 0
        assert q.dequeue_many(5) == [1, 2]
