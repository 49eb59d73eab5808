"""Processes for test_leases.py and test_process_leases.py (a test helper, not a test module).

Two uses:

* imported (``import lease_helpers``; pytest puts ``tests/`` on ``sys.path``), its
  module-level functions are ``multiprocessing.Process`` targets;
* run as a script, ``python lease_helpers.py ROLE ARGS...``, it is a process
  that the tests start with ``subprocess`` and usually SIGKILL.

Every role writes a ledger: one line per event, each line (or batch of lines)
one ``os.write`` to a file opened with ``O_APPEND``, so a SIGKILL never tears a
line and the ledger says exactly which calls returned. Words:

``l``            a lease call is about to start (its result may or may not count)
``L ITEM DELIV`` a lease of ITEM returned, with ``deliveries`` DELIV
``a ITEM``       an ack of ITEM is about to start
``A ITEM DELIV`` the ack of ITEM (leased with DELIV) returned
``R ITEM``       the release of ITEM returned
``D ITEM``       a plain dequeue of ITEM returned
``H``            the role holds its leases now and does nothing more
``W``            the role is about to wait in ``lease()``
``E``            the items were enqueued
``K ITEM``       the role kills itself while holding ITEM's lease
``X TYPE MSG``   a call raised unexpectedly (the role stops)
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback

import dque

NAME = "q"


class Ledger:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, *lines: str) -> None:
        if lines:
            os.write(self.fd, ("\n".join(lines) + "\n").encode())


def read_ledger(path) -> list[list[str]]:
    """The ledger's lines, split into words ([] if there is none yet)."""
    try:
        with open(path) as f:
            return [line.split() for line in f.read().splitlines()]
    except FileNotFoundError:
        return []


def hold_forever(log: Ledger) -> None:
    log("H")
    while True:
        time.sleep(1)


# --------------------------------------------------------------------------- DQue roles (engine)


def crash_hold(dirpath: str, turbo: str, seed: str, ledger: str) -> None:
    """Open the queue, lease, ack, release and dequeue by a seeded plan, then hold the rest until killed.

    Every call returned before ``H`` is logged, so after the kill the ledger
    says exactly what must be gone (acked, dequeued) and what must be back,
    with ``deliveries`` one more than its ``L`` lines.
    """
    log = Ledger(ledger)
    rng = random.Random(int(seed))
    q = dque.open(NAME, dirpath, turbo=turbo == "1")
    held: list[dque.Lease] = []
    for _ in range(rng.randint(15, 30)):
        roll = rng.random()
        if roll < 0.1:
            try:
                item = q.dequeue()
            except dque.Empty:
                continue
            log(f"D {item}")
        elif roll < 0.55:
            leases = q.lease_many(rng.randint(1, 5)) if rng.random() < 0.5 else [q.lease(block=False)]
            log(*(f"L {x.item} {x.deliveries}" for x in leases))
            held.extend(leases)
        elif held:
            rng.shuffle(held)  # settle in any order
            k = rng.randint(1, min(3, len(held)))
            settle, held = held[:k], held[k:]
            if roll < 0.85:
                if len(settle) > 1:
                    q.ack_many([x.id for x in settle])
                else:
                    settle[0].ack()
                log(*(f"A {x.item} {x.deliveries}" for x in settle))
            else:
                q.release_many([x.id for x in settle])
                log(*(f"R {x.item}" for x in settle))
    leases = q.lease_many(3)  # always hold some at the kill
    log(*(f"L {x.item} {x.deliveries}" for x in leases))
    hold_forever(log)


def crash_busy(dirpath: str, turbo: str, seed: str, ledger: str) -> None:
    """Lease and ack (and sometimes release) items of the queue until killed, logging before and after."""
    log = Ledger(ledger)
    rng = random.Random(int(seed))
    q = dque.open(NAME, dirpath, turbo=turbo == "1")
    held: list[dque.Lease] = []
    while True:
        log("l")
        leases = [q.lease(block=False)] if rng.random() < 0.5 else q.lease_many(rng.randint(1, 5))
        log(*(f"L {x.item} {x.deliveries}" for x in leases))
        held.extend(leases)
        rng.shuffle(held)
        while len(held) > rng.randint(0, 6):
            x = held.pop()
            if rng.random() < 0.1:
                q.release(x.id)
                log(f"R {x.item}")
            else:
                log(f"a {x.item}")
                x.ack()
                log(f"A {x.item} {x.deliveries}")


# --------------------------------------------------------------------------- ProcessSafeDQue roles


def pool_worker(q: dque.ProcessSafeDQue, ledger: str, kill_item: int, style: int) -> None:
    """A ``multiprocessing.Process`` target: lease, "work", ack, until nothing is left anywhere.

    Logs ``A ITEM DELIV`` after each ack returned. On its first delivery of
    ``kill_item`` it logs ``K ITEM`` and SIGKILLs itself while holding the lease
    (and, with ``style`` 1, the other leases of its batch).
    """
    log = Ledger(ledger)
    try:
        while True:
            if style == 1:
                leases = q.lease_many(3)
            else:
                leases = []
            if not leases:
                try:
                    leases = [q.lease(timeout=0.3)]
                except dque.Empty:
                    if q.size() == 0 and q.in_flight() == 0:
                        return
                    continue
            for x in leases:
                if x.item == kill_item and x.deliveries == 1:
                    log(f"K {x.item}")
                    os.kill(os.getpid(), signal.SIGKILL)
            sum(range(50))  # the "work"
            if len(leases) > 1:
                q.ack_many([x.id for x in leases])
            else:
                leases[0].ack()
            log(*(f"A {x.item} {x.deliveries}" for x in leases))
    except BaseException as exc:
        log(f"X {type(exc).__name__} {exc!r}".replace("\n", " "))
        raise


def holder(dirpath: str, ledger: str, count: str) -> None:
    """Attach to the owner, lease ``count`` items (one by one, then a batch), log them, hold until killed."""
    log = Ledger(ledger)
    q = dque.attach(NAME, dirpath)
    n = int(count)
    first = [q.lease(timeout=10) for _ in range(n // 2)]
    rest = q.lease_many(n - len(first))
    log(*(f"L {x.item} {x.deliveries}" for x in first + rest))
    hold_forever(log)


def waiter(dirpath: str, ledger: str) -> None:
    """Attach, log ``W``, and wait in ``lease()`` with no timeout (until killed)."""
    log = Ledger(ledger)
    q = dque.attach(NAME, dirpath)
    log("W")
    x = q.lease()
    log(f"L {x.item} {x.deliveries}")
    hold_forever(log)


class OnlyInProducerMain:
    """Defined here: run as a script, it pickles as ``__main__.OnlyInProducerMain``, which no other process has."""

    def __init__(self, value: int) -> None:
        self.value = value


def alien_producer(dirpath: str, ledger: str, *items: str) -> None:
    """Attach and enqueue ``items``: ``ALIEN`` is an item of a class only this process's ``__main__`` has."""
    log = Ledger(ledger)
    q = dque.attach(NAME, dirpath)
    q.enqueue_many([OnlyInProducerMain(1) if x == "ALIEN" else x for x in items])
    log("E")
    q.close()


ROLES = {
    "crash_hold": crash_hold,
    "crash_busy": crash_busy,
    "holder": holder,
    "waiter": waiter,
    "alien_producer": alien_producer,
}


if __name__ == "__main__":
    role, *argv = sys.argv[1:]
    try:
        ROLES[role](*argv)
    except BaseException:
        traceback.print_exc()
        raise
