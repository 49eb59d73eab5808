"""The process that test_crash.py kills with SIGKILL (run as a script, not a test module).

    python crash_worker.py MODE PARENT NAME TURBO SEED LOGDIR

Opens the existing queue PARENT/NAME and works on it until killed, logging
every call to a ledger file in LOGDIR with one unbuffered ``os.write`` per
line (so the lines survive SIGKILL): ``b e FIRST COUNT`` before an enqueue of
the items FIRST..FIRST+COUNT-1 and ``e FIRST COUNT`` once it returned;
``b d MAX`` before a dequeue of up to MAX items and ``d ID ID ...`` once it
returned (no ids: the queue was empty).

MODE:
  enq      enqueue/enqueue_many forever (ids from 0) -> enq.log
  deq      dequeue/dequeue_many until killed (idles when empty) -> deq.log
  mixed    one thread, random enqueues and dequeues -> mixed.log
  threads  a producer thread (enq.log) and a consumer thread (deq.log) sharing the handle
  hold     open the queue, write LOGDIR/ready, sleep
  forkhold open the queue, fork a child that lives on (a minute at most); the child
           writes its pid to LOGDIR/ready
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import dque


def item(i: int) -> tuple[int, bytes]:
    return (i, bytes([i % 251]) * (i * 7 % 37))


def ident(x: object) -> int:
    if not (isinstance(x, tuple) and len(x) == 2 and x == item(x[0])):
        raise AssertionError(f"damaged item {x!r}")
    return x[0]


class Log:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, *words: object) -> None:
        os.write(self.fd, (" ".join(map(str, words)) + "\n").encode())


def producer(q: dque.DQue, log: Log, rng: random.Random) -> None:
    i = 0
    while True:
        n = 1 if rng.random() < 0.6 else rng.randint(1, 6)
        log("b e", i, n)
        if n == 1 and rng.random() < 0.8:
            q.enqueue(item(i))
        else:
            q.enqueue_many([item(j) for j in range(i, i + n)])
        log("e", i, n)
        i += n


def take(q: dque.DQue, log: Log, rng: random.Random, *, block: bool) -> list[int]:
    n = 1 if rng.random() < 0.6 else rng.randint(1, 6)
    log("b d", n)
    if n == 1:
        try:
            got = [ident(q.dequeue_block(timeout=0.05) if block else q.dequeue())]
        except dque.Empty:
            got = []
    else:
        got = [ident(x) for x in q.dequeue_many(n)]
    log("d", *got)
    return got


def consumer(q: dque.DQue, log: Log, rng: random.Random, *, block: bool) -> None:
    while True:
        if not take(q, log, rng, block=block) and not block:
            time.sleep(0.002)


def mixed(q: dque.DQue, log: Log, rng: random.Random) -> None:
    i = 0
    while True:
        if rng.random() < 0.6:
            n = 1 if rng.random() < 0.6 else rng.randint(1, 6)
            log("b e", i, n)
            if n == 1:
                q.enqueue(item(i))
            else:
                q.enqueue_many([item(j) for j in range(i, i + n)])
            log("e", i, n)
            i += n
        else:
            take(q, log, rng, block=False)


def ready(logdir: str, text: str) -> None:
    with open(os.path.join(logdir, "ready.tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(logdir, "ready.tmp"), os.path.join(logdir, "ready"))


def main() -> None:
    mode, parent, name, turbo, seed, logdir = sys.argv[1:]
    rng = random.Random(int(seed))
    q = dque.open(name, parent, turbo=turbo == "1")
    if mode == "enq":
        producer(q, Log(os.path.join(logdir, "enq.log")), rng)
    elif mode == "deq":
        consumer(q, Log(os.path.join(logdir, "deq.log")), rng, block=False)
    elif mode == "mixed":
        mixed(q, Log(os.path.join(logdir, "mixed.log")), rng)
    elif mode == "threads":
        threads = [
            threading.Thread(
                target=producer,
                args=(q, Log(os.path.join(logdir, "enq.log")), random.Random(rng.random())),
                daemon=True,
            ),
            threading.Thread(
                target=consumer,
                args=(q, Log(os.path.join(logdir, "deq.log")), random.Random(rng.random())),
                kwargs={"block": True},
                daemon=True,
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        raise SystemExit("a worker thread died")
    elif mode == "hold":
        ready(logdir, "ready")
        while True:
            time.sleep(1)
    elif mode == "forkhold":
        if os.fork() == 0:
            # The child: os.fork returned here after the at-fork hooks ran (filelock closes its
            # copy of the lock fd in them). It says so, then lives on without closing the queue
            # until the test reaps it (it exits by itself after a minute at most).
            ready(logdir, str(os.getpid()))
            time.sleep(60)
            os._exit(0)
        while True:
            time.sleep(1)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
