"""RedisQueue against a real redis-server (started here from PATH; skipped with a reason if absent).

One server per module (``--appendfsync always``), one fresh queue name per test.
Every wait has a deadline; no test asserts a tight upper time bound.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import SKIP_REASON, RedisServer, redis
from waiting import wait_until

import dque

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

PATIENCE = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(str(tmp_path_factory.mktemp("redis")))
    try:
        yield s.start()
    finally:
        s.stop()


@pytest.fixture
def name() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def open_q(server: RedisServer, name: str) -> Iterator:
    handles: list[dque.RedisQueue] = []

    def make(qname: str = name, **kwargs) -> dque.RedisQueue:
        q = dque.RedisQueue(qname, server.url, **kwargs)
        handles.append(q)
        return q

    yield make
    for q in handles:
        q.close()


# ------------------------------------------------------------------ basics


def test_fifo_and_api(open_q) -> None:
    q = open_q()
    assert q.empty() and q.size() == 0 and len(q) == 0
    for i in range(10):
        q.put(i)
    q.enqueue("a")
    q.enqueue_many(["b", "c"])
    assert q.qsize() == 13 and not q.empty()
    assert q.peek() == 0 and q.size() == 13
    assert [q.get(), q.get_nowait(), q.dequeue()] == [0, 1, 2]
    assert q.dequeue_many(4) == [3, 4, 5, 6]
    assert q.dequeue_block(timeout=1) == 7
    assert q.peek_block(timeout=1) == 8
    assert q.dequeue_many(100) == [8, 9, "a", "b", "c"]
    assert q.dequeue_many(5) == [] and q.dequeue_many(0) == []
    with pytest.raises(dque.Empty):
        q.dequeue()
    with pytest.raises(dque.Empty):
        q.peek()
    with pytest.raises(dque.Empty):
        q.get_nowait()


def test_two_handles_share_the_queue(open_q) -> None:
    a, b = open_q(), open_q()
    a.enqueue_many(range(5))
    assert b.size() == 5
    assert [b.get(), a.get(), b.get()] == [0, 1, 2]
    c = pickle.loads(pickle.dumps(a))  # a new handle on the same queue (for multiprocessing children)
    try:
        assert (c.name, c.url, c.get()) == (a.name, a.url, 3) and c.consumer != a.consumer
    finally:
        c.close()


def test_blocking_get_times_out_and_wakes(open_q) -> None:
    q = open_q()
    t0 = time.monotonic()
    with pytest.raises(dque.Empty):
        q.get(timeout=0.3)
    assert time.monotonic() - t0 >= 0.29
    with pytest.raises(dque.Empty):
        q.peek_block(timeout=0.1)
    got: list = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=PATIENCE)))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()
    open_q().put("x")
    t.join(PATIENCE)
    assert got == ["x"]


def test_bad_arguments(open_q) -> None:
    q = open_q()
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(TypeError):
        q.dequeue_many("3")
    with pytest.raises(TypeError):
        q.enqueue_many("abc")
    with pytest.raises(ValueError):
        open_q(maxsize=-1)
    with pytest.raises(ValueError):
        open_q(lease_ttl=0)
    with pytest.raises(TypeError):
        dque.RedisQueue(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.ack(3)  # type: ignore[arg-type]
    decoding = redis.Redis.from_url(q.url, decode_responses=True)
    with pytest.raises(ValueError):
        dque.RedisQueue("x", client=decoding)
    decoding.close()
    client = redis.Redis.from_url(q.url)
    mine = dque.RedisQueue(q.name, client=client)  # a ready client: used as is, and left open by close()
    assert mine.url == q.url
    mine.enqueue(1)
    mine.close()
    assert client.ping() and q.get() == 1
    client.close()


def test_maxsize_full_and_blocking_put(open_q) -> None:
    q = open_q(maxsize=2)
    q.put(1)
    lease = q.lease()
    q.put(2)
    assert q.full() and q.size() == 1 and q.in_flight() == 1
    with pytest.raises(dque.Full):
        q.put_nowait(3)
    with pytest.raises(dque.Full):
        q.enqueue(3)
    with pytest.raises(dque.Full):
        q.put(3, timeout=0.2)
    with pytest.raises(dque.Full):
        q.enqueue_many([3])
    threading.Timer(0.2, lease.ack).start()
    q.put(3, timeout=PATIENCE)  # room once the leased item is acked
    assert q.dequeue_many(5) == [2, 3]
    q.enqueue_many([4, 5])
    with pytest.raises(dque.Full):
        q.enqueue_many([6])
    assert q.size() == 2


# ------------------------------------------------------------------ leases


def test_lease_ack_release_in_flight(open_q) -> None:
    q = open_q()
    q.enqueue_many(["a", "b", "c"])
    la = q.lease()
    assert (la.item, la.deliveries) == ("a", 1)
    assert isinstance(la.id, str)
    assert q.size() == 2 and q.in_flight() == 1
    lb, lc = q.lease_many(5)
    assert (lb.item, lc.item) == ("b", "c") and q.lease_many(5) == []
    q.ack(lb.id)
    with pytest.raises(dque.LeaseError):
        q.ack(lb.id)
    with pytest.raises(dque.LeaseError):
        q.release(lb.id)
    with pytest.raises(dque.LeaseError):
        q.ack("1-0/1")
    with pytest.raises(dque.LeaseError):
        q.ack_many([la.id, la.id])  # all or nothing: la stays
    q.ack_many([la.id, lc.id])
    assert q.in_flight() == 0 and q.size() == 0 and q.lease_many(1) == []
    with pytest.raises(dque.Empty):
        q.lease(block=False)
    with pytest.raises(dque.Empty):
        q.lease(timeout=0.1)


def test_release_order_ahead_of_newer_items(open_q) -> None:
    q = open_q()
    q.enqueue_many(range(6))
    leases = q.lease_many(4)  # 0..3
    q.enqueue_many([6, 7])
    q.release(leases[2].id)
    q.release_many([leases[3].id, leases[0].id])  # released out of order: back in original order
    assert q.peek() == 0
    got = q.lease_many(10)
    assert [x.item for x in got] == [0, 2, 3, 4, 5, 6, 7]
    assert [x.deliveries for x in got] == [2, 2, 2, 1, 1, 1, 1]
    q.release(got[0].id)
    assert q.get() == 0


def test_lease_context_manager(open_q) -> None:
    q = open_q()
    q.enqueue_many([1, 2])
    with q.lease() as lease:
        assert lease.item == 1
    with pytest.raises(RuntimeError):
        with q.lease() as lease:
            raise RuntimeError
    assert q.in_flight() == 0
    assert q.lease().deliveries == 2  # item 2 came back


def test_lease_ttl_expires_and_counts(open_q) -> None:
    q = open_q()
    q.enqueue_many(["a", "b"])
    lease = q.lease(ttl=0.3)
    assert q.peek() == "b"
    again = wait_until(
        lambda: q.lease(timeout=0.1, ttl=5) if q.size() == 2 else None, "the expired lease back", PATIENCE
    )
    assert (again.item, again.deliveries) == ("a", 2)
    with pytest.raises(dque.LeaseError):
        lease.ack()
    again.ack()


def test_live_holder_keeps_its_lease(open_q) -> None:
    q = open_q(lease_ttl=0.5)
    q.enqueue("a")
    lease = q.lease()
    time.sleep(1.6)  # three lease_ttls: renewed in the background
    other = open_q(lease_ttl=0.5)
    assert other.size() == 0 and other.in_flight() == 1
    with pytest.raises(dque.Empty):
        other.lease(block=False)
    lease.ack()
    assert other.in_flight() == 0


def test_close_releases_this_handles_leases(open_q) -> None:
    a, b = open_q(), open_q()
    a.enqueue_many([1, 2])
    la = a.lease()
    a.close()
    with pytest.raises(dque.ClosedError):
        la.ack()
    lb = b.lease(block=False)
    assert (lb.item, lb.deliveries) == (1, 2)


def test_max_deliveries_dead_letters(open_q, name: str) -> None:
    q = open_q(max_deliveries=2)
    q.enqueue_many(["poison", "ok"])
    first = q.lease()
    first.release()
    second = q.lease()
    assert (second.item, second.deliveries) == ("poison", 2)
    second.release()  # the second hand-out without an ack: dead
    dead = open_q(name + ".dead")
    assert dead.size() == 1 and dead.peek() == "poison"
    assert q.size() == 1 and q.get() == "ok"
    assert q.unfinished_tasks == 1  # "ok" taken, not marked done; the dead letter counts as done
    # an expired lease at max_deliveries goes there too
    q.enqueue("slow")
    q.lease(ttl=0.2).release()
    q.lease(ttl=0.2)
    # (an expired lease is settled by the next call on the queue, from any handle)
    wait_until(lambda: q.in_flight() == 0 and dead.size() == 2, "the expired lease dead-lettered", PATIENCE)
    assert dead.dequeue_many(5) == ["poison", "slow"]


# ------------------------------------------------------------------ tasks, join


JOIN_HELPER = """
import sys, dque
q = dque.RedisQueue(sys.argv[1], sys.argv[2])
for _ in range(int(sys.argv[3])):
    q.get(timeout=20)
    q.task_done()
lease = q.lease(timeout=20)
lease.ack()
q.close()
"""


def test_join_across_processes(open_q, server: RedisServer, name: str, reap) -> None:
    q = open_q()
    q.enqueue_many(range(6))
    assert q.unfinished_tasks == 6
    proc = reap([sys.executable, "-c", JOIN_HELPER, name, server.url, "5"], env=_env())
    t0 = time.monotonic()
    assert not q._join_for(0.0)
    done = threading.Event()
    threading.Thread(target=lambda: (q.join(), done.set()), daemon=True).start()
    assert done.wait(PATIENCE), "join did not return"
    assert proc.wait(PATIENCE) == 0
    assert q.unfinished_tasks == 0 and time.monotonic() - t0 < PATIENCE
    with pytest.raises(ValueError):
        q.task_done()


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parent.parent / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ------------------------------------------------------------------ serializers


class Unloadable:
    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise RuntimeError("cannot load")


def test_serializers(open_q, name: str) -> None:
    j = open_q(serializer="json")
    j.enqueue({"a": [1, 2]})
    assert j.get() == {"a": [1, 2]}
    with pytest.raises(dque.SerializationError):
        j.enqueue({1, 2})
    with pytest.raises(dque.ConfigError):
        open_q(serializer="pickle")
    b = open_q(name + "-b", serializer="bytes")
    b.enqueue(b"\x00\xff")
    assert b.get() == b"\x00\xff"
    with pytest.raises(dque.SerializationError):
        b.enqueue("text")
    with pytest.raises(dque.SerializationError):
        open_q(name + "-p").enqueue(lambda: 1)


def test_undeserializable_items(open_q, name: str, server: RedisServer) -> None:
    q = open_q()
    q.enqueue_many([Unloadable(), "fine"])
    with pytest.raises(dque.SerializationError):
        q.peek()
    with pytest.raises(dque.SerializationError):
        q.lease()  # released again: still at the head
    assert q.size() == 2 and q.in_flight() == 0
    with pytest.raises(dque.SerializationError):
        q.get()  # moved to the dead letters, raw
    assert q.get() == "fine"
    assert open_q(name + ".dead").size() == 1
    client = redis.Redis.from_url(server.url)
    try:
        [(_, fields)] = client.xrange(name + ".dead")  # the raw payload, as it was stored
    finally:
        client.close()
    with pytest.raises(RuntimeError):
        pickle.loads(fields[b"d"])


# ------------------------------------------------------------------ close, shutdown, errors


def test_close_wakes_blocked_callers(open_q) -> None:
    q = open_q()
    errors: list[BaseException] = []

    def wait(fn) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=wait, args=(lambda: q.get(timeout=PATIENCE),)),
        threading.Thread(target=wait, args=(lambda: q.lease(timeout=PATIENCE),)),
        threading.Thread(target=wait, args=(lambda: q.peek_block(timeout=PATIENCE),)),
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    q.close()
    for t in threads:
        t.join(PATIENCE)
    assert [type(e) for e in errors] == [dque.ClosedError] * 3
    assert q.closed
    q.close()  # idempotent
    for call in (q.size, q.dequeue, lambda: q.put(1), q.in_flight, q.task_done):
        with pytest.raises(dque.ClosedError):
            call()


def test_shutdown(open_q) -> None:
    q = open_q()
    q.enqueue_many([1, 2])
    blocked: list[BaseException] = []
    other = open_q()
    t = threading.Thread(target=lambda: _catch(blocked, lambda: other.get(timeout=PATIENCE)))
    other.get()
    other.get()
    t.start()
    time.sleep(0.2)
    other.shutdown()
    t.join(PATIENCE)
    assert [type(e) for e in blocked] == [dque.ShutDown] and other.is_shutdown
    q.enqueue(3)
    with pytest.raises(dque.ShutDown):
        other.put(4)
    assert other.get() == 3  # takes go on while items are there
    with pytest.raises(dque.ShutDown):
        other.get(timeout=PATIENCE)
    q.enqueue(5)
    q.shutdown(immediate=True)
    assert q.size() == 0 and q.is_shutdown
    with pytest.raises(dque.ShutDown):
        q.get()
    q.join()  # returns at once after an immediate shutdown


def _catch(into: list, fn) -> None:
    try:
        fn()
    except BaseException as exc:
        into.append(exc)


def test_unreachable_server_is_a_backend_error() -> None:
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    from redis_server import free_port

    with pytest.raises(dque.BackendError) as info:
        dque.RedisQueue("x", f"redis://127.0.0.1:{free_port()}/0", socket_timeout=2)
    assert isinstance(info.value, dque.DQueError) and isinstance(info.value, ConnectionError)


def test_server_restart_keeps_everything(tmp_path) -> None:
    """SIGKILL and restart the server: items, leases (renewed again), returned order, deliveries, counters."""
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    s = RedisServer(str(tmp_path)).start()
    try:
        q = dque.RedisQueue("r", s.url, lease_ttl=1.0)
        q.enqueue_many(range(5))
        first, second, held = q.lease_many(3)
        q.release_many([second.id, first.id])
        s.kill()
        with pytest.raises(dque.BackendError):
            q.enqueue(9)
        s.start()
        time.sleep(2.5)  # > 2 lease_ttls: the live holder renews again once the server is back
        assert (q.size(), q.in_flight(), q.unfinished_tasks) == (4, 1, 5)
        held.ack()
        got = q.lease_many(10)
        assert [(x.item, x.deliveries) for x in got] == [(0, 2), (1, 2), (3, 1), (4, 1)]
        q.ack_many([x.id for x in got])
        assert q.unfinished_tasks == 0
        q.close()
    finally:
        s.stop()


def test_leases_expire_during_a_long_outage(tmp_path) -> None:
    """Down longer than lease_ttl: a live holder's lease is gone (ack: LeaseError), its item handed out again."""
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    s = RedisServer(str(tmp_path)).start()
    try:
        q = dque.RedisQueue("r", s.url, lease_ttl=0.5)
        q.enqueue("a")
        lease = q.lease()
        s.kill()
        time.sleep(1.0)
        s.start()
        with pytest.raises(dque.LeaseError):
            wait_until(lambda: _ack_fails_with_backend_error(lease), "an ack that reaches the server", PATIENCE)
        again = q.lease(timeout=PATIENCE)
        assert (again.item, again.deliveries) == ("a", 2)
        q.close()
    finally:
        s.stop()


def _ack_fails_with_backend_error(lease) -> bool:
    try:
        lease.ack()
    except dque.BackendError:
        return False
    return True


def test_import_without_redis_module() -> None:
    """``import dque`` works without redis-py; dque.RedisQueue then raises ImportError."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import dque\n"
        "assert dque.BackendError.__name__ == 'BackendError'\n"
        "try:\n    dque.RedisQueue\nexcept ImportError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


# ------------------------------------------------------------------ a model


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_a_model(open_q, name: str, seed: int) -> None:
    """Random puts, takes, leases, acks and releases on two handles, checked call by call against a model."""
    import heapq
    import random

    rng = random.Random(seed)
    handles = [open_q(max_deliveries=3), open_q(max_deliveries=3)]
    ready: list[tuple[int, int]] = []  # heap of (order, item): released items keep their place
    leases: dict[str, tuple[int, int, dque.RedisQueue]] = {}
    deliveries: dict[int, int] = {}
    dead: list[int] = []
    n = 0
    for _ in range(400):
        q = rng.choice(handles)
        op = rng.choice(
            ("put", "put", "many", "get", "lease", "lease", "lease_many", "ack", "release", "release", "peek")
        )
        if op == "put":
            q.enqueue(n)
            heapq.heappush(ready, (n, n))
            n += 1
        elif op == "many":
            q.enqueue_many(range(n, n + 3))
            for i in range(n, n + 3):
                heapq.heappush(ready, (i, i))
            n += 3
        elif op == "get":
            k = rng.choice((1, 2))
            want = [heapq.heappop(ready)[1] for _ in range(min(k, len(ready)))]
            assert q.dequeue_many(k) == want
        elif op in ("lease", "lease_many"):
            k = 1 if op == "lease" else rng.choice((1, 2, 3))
            want = [heapq.heappop(ready)[1] for _ in range(min(k, len(ready)))]
            got = q.lease_many(k)
            assert [x.item for x in got] == want
            for x in got:
                deliveries[x.item] = deliveries.get(x.item, 0) + 1
                assert x.deliveries == deliveries[x.item]
                leases[x.id] = (x.item, x.item, q)
        elif op in ("ack", "release") and leases:
            lease_id = rng.choice(sorted(leases))
            item, _, holder = leases.pop(lease_id)
            if q is not holder:
                with pytest.raises(dque.LeaseError):  # a lease is settled by the handle that took it
                    getattr(q, op)(lease_id)
            getattr(holder, op)(lease_id)
            if op == "release":
                if deliveries[item] >= 3:
                    dead.append(item)
                else:
                    heapq.heappush(ready, (item, item))
        elif op == "peek":
            if ready:
                assert q.peek() == ready[0][1]
            else:
                with pytest.raises(dque.Empty):
                    q.peek()
        assert (q.size(), q.in_flight()) == (len(ready), len(leases))
    assert open_q(name + ".dead").dequeue_many(1000) == dead
    assert dead and n > 100, "the run exercised too little"


# ------------------------------------------------------------------ the script path (_redis_wire)


def test_scripts_flushed_from_the_server_are_loaded_again(open_q, server: RedisServer) -> None:
    q = open_q()
    q.put(1)
    with redis.Redis.from_url(server.url) as r:
        r.script_flush()
    q.put(2)  # NOSCRIPT: loaded again, sent once more (it had not run)
    assert q.dequeue_many(10) == [1, 2] and q.unfinished_tasks == 2


def test_a_single_connection_client_works(server: RedisServer, name: str) -> None:
    client = redis.Redis.from_url(server.url, single_connection_client=True)
    try:
        q = dque.RedisQueue(name, client=client)
        q.enqueue_many(range(3))
        lease = q.lease(timeout=PATIENCE)
        lease.ack()
        assert q.dequeue_many(5) == [1, 2] and q.unfinished_tasks == 2
        q.close()
        assert client.ping()  # a given client stays open
    finally:
        client.close()


def test_threads_share_a_handle(open_q) -> None:
    """Many threads on one handle: each call has a connection of its own; nothing lost or mixed up."""
    q = open_q()
    errors: list[BaseException] = []

    def put(k: int) -> None:
        try:
            for i in range(200):
                q.put((k, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert not errors
    got = q.dequeue_many(10_000)
    assert len(got) == 1600
    for k in range(8):
        assert [i for kk, i in got if kk == k] == list(range(200))  # each thread's items in its order


def test_a_given_clients_connections_go_back_at_close(server: RedisServer, name: str) -> None:
    client = redis.Redis.from_url(server.url)
    try:
        q = dque.RedisQueue(name, client=client)
        q.put(1)
        q.close()
        assert not client.connection_pool._in_use_connections  # (redis-py's pool: nothing kept by the handle)
        assert client.ping()
    finally:
        client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_use_the_parents_connection(open_q) -> None:
    q = open_q()
    q.put("parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            for i in range(300):
                q.put(("child", i))
            code = 0
        finally:
            os._exit(code)
    peeks = [q.peek() for _ in range(300)]  # at the same time as the child's puts: the replies must not mix
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert peeks == ["parent"] * 300
    got = q.dequeue_many(1000)
    assert got == ["parent"] + [("child", i) for i in range(300)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_has_a_handle_of_its_own(server: RedisServer, name: str) -> None:
    """A handle inherited by fork (a Pool worker under fork): its own consumer, and its leases renewed."""
    q = dque.RedisQueue(name, server.url, lease_ttl=0.5)
    try:
        q.enqueue_many(["p", "c"])
        mine = q.lease(timeout=PATIENCE)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                assert q.consumer.split(":")[1] == str(os.getpid())
                lease = q.lease(timeout=PATIENCE)
                time.sleep(1.5)  # three lease_ttls: renewed by the child's own renewer
                lease.ack()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        mine.ack()  # the parent's lease was left alone by the child
        assert (q.size(), q.in_flight(), q.unfinished_tasks) == (0, 0, 0)
    finally:
        q.close()


def test_a_full_server_refuses_puts_and_still_drains(tmp_path) -> None:
    """maxmemory reached with noeviction: put is a BackendError (Redis's OOM answer); takes, leases, acks work."""
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    s = RedisServer(str(tmp_path)).start()
    try:
        with redis.Redis.from_url(s.url) as r:
            r.config_set("maxmemory", r.info("memory")["used_memory"] + 2_000_000)
            r.config_set("maxmemory-policy", "noeviction")
        q = dque.RedisQueue("full", s.url)
        with pytest.raises(dque.BackendError, match="maxmemory"):
            for _ in range(1000):
                q.enqueue_many(["x" * 1000] * 100)
        size = q.size()
        assert size > 0
        assert q.dequeue() == "x" * 1000
        assert len(q.dequeue_many(10)) == 10
        q.lease(block=False).ack()
        q.lease(block=False).release()
        assert q.size() == size - 12
        q.close()
    finally:
        s.stop()
