"""RedisQueue crash tests: SIGKILLed consumers and a SIGKILLed redis-server, checked item by item.

The client processes log each call once it returned, with one ``os.write``
per line (``O_APPEND``), so a SIGKILL never tears or loses a line written:
``b <op> <item>`` before a call, ``<op> <item>`` after it returned, ``x <op>
<item>`` if it raised (its outcome unknown). Every wait has a deadline, and
every process started here is SIGKILLed by pid at the end.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_server import SKIP_REASON, RedisServer
from waiting import wait_until

import dque

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

PATIENCE = 20.0
LEASE_TTL = 1.0
SRC = str(Path(__file__).resolve().parent.parent / "src")

CONSUMER = """
import os, sys, time, dque
url, name, log, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
q = dque.RedisQueue(name, url, lease_ttl=float(sys.argv[5]))
held = []
while len(held) < count:
    lease = q.lease(timeout=20)
    held.append(lease)
    os.write(fd, f"lease {lease.item} {lease.deliveries}\\n".encode())
os.write(fd, b"ready\\n")
time.sleep(600)  # holding the leases (renewed in the background) until SIGKILLed
"""

PRODUCER = """
import os, random, sys, time, dque
url, name, log, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(seed)
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
def note(text):
    os.write(fd, (text + "\\n").encode())
q = dque.RedisQueue(name, url, lease_ttl=1.0, socket_timeout=2.0)
i = 0
while True:
    batch = [i + k for k in range(rng.choice((1, 1, 1, 3)))]
    i += len(batch)
    words = " ".join(map(str, batch))
    note("b put " + words)
    try:
        q.enqueue_many(batch) if len(batch) > 1 else q.enqueue(batch[0])
    except dque.BackendError:
        note("x put " + words)
        time.sleep(0.01)
        continue
    note("put " + words)
    if rng.random() < 0.6:
        try:
            leases = q.lease_many(rng.choice((1, 2)))
        except dque.BackendError:
            continue
        for lease in leases:
            note(f"b ack {lease.item}")
            try:
                lease.ack()
            except dque.BackendError:
                note(f"x ack {lease.item}")
                continue
            except dque.LeaseError:
                continue  # expired while the server was away: it is back in the queue
            note(f"ack {lease.item}")
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line]


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=PATIENCE)


def test_killed_consumers_leases_come_back_within_lease_ttl(tmp_path: Path) -> None:
    server = RedisServer(str(tmp_path)).start()
    procs: list[subprocess.Popen] = []
    try:
        url, name = server.url, "crash-consumers"
        q = dque.RedisQueue(name, url, lease_ttl=LEASE_TTL)
        q.enqueue_many(range(20))
        logs = [tmp_path / f"consumer{n}.log" for n in range(2)]
        for log in logs:
            cmd = [sys.executable, "-c", CONSUMER, url, name, str(log), "4", str(LEASE_TTL)]
            procs.append(subprocess.Popen(cmd, env=_env()))
        wait_until(lambda: all(["ready"] in _lines(log) for log in logs), "the consumers holding leases", PATIENCE)
        held = sorted(int(w[1]) for log in logs for w in _lines(log) if w[0] == "lease")
        assert len(held) == 8 and all(w[2] == "1" for log in logs for w in _lines(log) if w[0] == "lease")
        time.sleep(3 * LEASE_TTL)  # live holders keep their leases: renewed in the background
        assert q.in_flight() == 8 and q.size() == 12
        for proc in procs:
            os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for proc in procs:
            proc.wait(PATIENCE)
        wait_until(lambda: q.in_flight() == 0, "the dead consumers' leases back", PATIENCE, poll=0.05)
        back_after = time.monotonic() - killed_at
        assert back_after <= LEASE_TTL + 2.0, f"leases came back after {back_after:.2f} s (lease_ttl {LEASE_TTL} s)"
        assert q.size() == 20
        leases = q.lease_many(30)
        got = {lease.item: lease.deliveries for lease in leases}
        assert sorted(got) == list(range(20))  # every item, once
        assert {i for i, d in got.items() if d == 2} == set(held)  # the killed ones' items, delivery counted
        assert all(got[i] == 1 for i in range(20) if i not in held)
        assert [lease.item for lease in leases] == list(range(20))  # back ahead of newer items, in order
        q.ack_many([lease.id for lease in leases])
        assert q.size() == 0 and q.in_flight() == 0
        q.close()
    finally:
        for proc in procs:
            _kill(proc)
        server.stop()


def test_killed_consumers_leases_at_max_deliveries_go_to_the_dead_letters(tmp_path: Path) -> None:
    server = RedisServer(str(tmp_path)).start()
    proc = None
    try:
        url, name = server.url, "crash-dead"
        q = dque.RedisQueue(name, url, lease_ttl=LEASE_TTL, max_deliveries=1)
        q.enqueue_many(range(6))
        log = tmp_path / "consumer.log"
        proc = subprocess.Popen([sys.executable, "-c", CONSUMER, url, name, str(log), "3", str(LEASE_TTL)], env=_env())
        wait_until(lambda: ["ready"] in _lines(log), "the consumer holding leases", PATIENCE)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(PATIENCE)
        wait_until(lambda: q.in_flight() == 0, "the dead consumer's leases settled", PATIENCE, poll=0.05)
        dead = dque.RedisQueue(name + ".dead", url)
        assert dead.dequeue_many(10) == [0, 1, 2]  # handed out once, never acked: dead letters
        assert q.dequeue_many(10) == [3, 4, 5]
        assert q.unfinished_tasks == 3  # the dead letters count as done
        dead.close()
        q.close()
    finally:
        if proc is not None:
            _kill(proc)
        server.stop()


BATCHER = """
import os, sys, dque
url, name, log = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
q = dque.RedisQueue(name, url)
for b in range(10**6):
    os.write(fd, f"b {b}\\n".encode())
    q.enqueue_many([(b, i, bytes(200)) for i in range(500)])
    os.write(fd, f"put {b}\\n".encode())
"""


def test_killed_client_puts_whole_batches_or_nothing(tmp_path: Path) -> None:
    """SIGKILL a client in the middle of enqueue_many calls of 500 items: each batch is there whole or not at all."""
    server = RedisServer(str(tmp_path)).start()
    procs: list[subprocess.Popen] = []
    rng = random.Random()
    try:
        name = "crash-batches"
        for n in range(4):
            log = tmp_path / f"batcher{n}.log"
            proc = subprocess.Popen([sys.executable, "-c", BATCHER, server.url, name, str(log)], env=_env())
            procs.append(proc)
            wait_until(lambda log=log: len(_lines(log)) > 4, "the client at work", PATIENCE, poll=0.01)
            time.sleep(rng.uniform(0.0, 0.05))
            _kill(proc)
        q = dque.RedisQueue(name, server.url)
        items = q.dequeue_many(10**6)
        q.close()
        batches: dict[tuple[int, int], list[int]] = {}
        client = -1
        for b, i, _ in items:
            if b == 0 and i == 0:
                client += 1  # each client numbers its batches from 0, in order
            batches.setdefault((client, b), []).append(i)
        assert all(got == list(range(500)) for got in batches.values()), "a batch is there in part"
        for n in range(4):
            words = _lines(tmp_path / f"batcher{n}.log")
            done = {int(w[1]) for w in words if w[0] == "put"}
            begun = {int(w[1]) for w in words if w[0] == "b"}
            there = {b for (c, b) in batches if c == n}
            assert done <= there <= begun, f"client {n}: returned {sorted(done)}, there {sorted(there)}"
    finally:
        for proc in procs:
            _kill(proc)
        server.stop()


def _server_kills(tmp_path: Path, appendonly: bool) -> dict[str, set[int]]:
    """SIGKILL the server 3 times under a producer's puts and acks; restart it each time; drain and compare."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(str(tmp_path / "redis"), appendonly=appendonly).start()
    log = tmp_path / "producer.log"
    rng = random.Random()
    seed = rng.randrange(2**32)
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, server.url, "crash-server", str(log), str(seed)], env=_env()
    )
    try:
        for _ in range(3):
            start = len(_lines(log))
            wait_until(lambda s=start: len(_lines(log)) > s + 200, "the producer at work", PATIENCE, poll=0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            server.kill()  # SIGKILL in the middle of puts and acks
            time.sleep(rng.uniform(0.05, 0.3))
            server.start()  # same directory: the AOF
        start = len(_lines(log))
        wait_until(lambda: len(_lines(log)) > start + 100, "the producer after restarts", PATIENCE)
        _kill(producer)
        server.kill()
        server.start()

        put, put_doubt, acked, ack_doubt = set(), set(), set(), set()
        for words in _lines(log):
            op, items = words[0], {int(w) for w in words[2 if words[0] in ("b", "x") else 1 :]}
            if op == "put":
                put |= items
            elif op == "ack":
                acked |= items
            elif op in ("b", "x") and words[1] == "put":
                put_doubt |= items
            elif op in ("b", "x") and words[1] == "ack":
                ack_doubt |= items
        put_doubt -= put
        ack_doubt -= acked
        assert put and acked, "the producer did no work"

        q = dque.RedisQueue("crash-server", server.url, lease_ttl=LEASE_TTL)
        wait_until(lambda: q.in_flight() == 0, "the killed producer's leases back", PATIENCE, poll=0.05)
        drained = q.dequeue_many(10**6)
        q.close()
        found = set(drained)
        print(f"puts: {len(put)}, acks: {len(acked)}, in doubt: {len(put_doubt)} puts, {len(ack_doubt)} acks")
        return {
            "lost": put - acked - ack_doubt - found,
            "back": acked & found,
            "unknown": found - put - put_doubt,
            "twice": set() if len(drained) == len(found) else {x for x in found if drained.count(x) > 1},
            "out of order": set() if drained == sorted(drained) else {-1},  # (returned items are older ones)
        }
    finally:
        _kill(producer)
        server.stop()


def test_killed_server_loses_no_acknowledged_put_and_returns_no_acked_item(tmp_path: Path) -> None:
    """With ``--appendonly yes --appendfsync always``: every acknowledged put and ack survives a SIGKILL."""
    found = _server_kills(tmp_path, appendonly=True)
    assert all(not v for v in found.values()), {k: sorted(v)[:10] for k, v in found.items() if v}


def test_the_server_kill_check_sees_loss_without_aof(tmp_path: Path) -> None:
    """The same run without persistence loses acknowledged puts, and the check says so (it is not vacuous)."""
    found = _server_kills(tmp_path, appendonly=False)
    assert found["lost"]
