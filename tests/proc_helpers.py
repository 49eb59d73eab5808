"""Processes for the ProcessSafeDQue tests (a test helper, not a test module).

The child side, the process roles, and the test side: starting roles and
agents (``Role``, ``AgentProcess``), reading their ledgers, and the processes
a test leaves behind, via ``/proc`` (``descendants``, ``leftovers``, ``subreaper``;
the ``no_stray_processes`` fixture in ``conftest.py`` and the contract suite's
``backend`` fixture are built on them).

The roles have two uses:

* imported (``import proc_helpers``: pytest puts ``tests/`` on ``sys.path``, and
  spawn/forkserver children get the parent's ``sys.path``), its module-level
  functions are Pool and Process targets under every start method;
* run as a script, ``python proc_helpers.py ROLE ARGS...``, it is a client or a
  creator that the tests start with ``subprocess``, outside multiprocessing.

Roles that run until stopped write a ledger: one line per event, each line one
``os.write`` to a file opened with ``O_APPEND``, so a SIGKILL never tears a line
and the ledger says exactly which calls returned. ``R`` says the role is ready;
``X <monotonic time> <exception type>`` is its last line when a call raised
(``time.monotonic`` is system-wide on Linux, so the tests compare it with the
moment they sent a SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from waiting import wait_until

import dque

NAME = "q"
HELPER = str(Path(__file__).resolve())  # this file, run as a script: ``python HELPER ROLE ARGS...``
CONTRACT = 2.0  # seconds: from a SIGKILL to the errors/exit it must cause
LINUX = sys.platform.startswith("linux")


# --------------------------------------------------------------------------- Pool / Process targets


def drain(q: dque.ProcessSafeDQue, batch: int) -> tuple[int, list]:
    """Take items until the queue stays empty for a moment: (this worker's pid, the items in order)."""
    got: list = []
    while True:
        try:
            got.append(q.dequeue_block(timeout=0.3))
        except dque.Empty:
            return os.getpid(), got
        got.extend(q.dequeue_many(batch))


def try_enqueue(q: dque.ProcessSafeDQue, what: str) -> str:
    """Enqueue something unpicklable made here; the name of the exception raised (or "returned")."""
    if what == "lambda":
        call = lambda: q.enqueue(lambda: None)  # noqa: E731
    elif what == "lock":
        call = lambda: q.enqueue(threading.Lock())  # noqa: E731
    elif what == "many":
        call = lambda: q.enqueue_many(["fine", threading.Lock(), "fine too"])  # noqa: E731
    elif what == "put":
        call = lambda: q.put(lambda: None, timeout=1)  # noqa: E731
    else:
        raise ValueError(what)
    try:
        call()
    except Exception as exc:
        return type(exc).__name__
    return "returned"


def handle_size(q: dque.ProcessSafeDQue) -> object:
    """``q.size()`` as seen in this process, or the exception's type name."""
    try:
        return q.size()
    except Exception as exc:
        return type(exc).__name__


def lease_in_a_thread(dirpath: str) -> tuple[object, str]:
    """In a process with no other connection to the owner: a thread attaches, leases one item and ends;
    then the main thread attaches and acks that lease. (The item, "acked" or the ack's exception type.)"""
    got: list = []
    taker = threading.Thread(target=lambda: got.append(dque.attach(NAME, dirpath).lease(block=False)))
    taker.start()
    taker.join()
    item, lease_id = got[0].item, got[0].id
    del got[:]
    gc.collect()  # the thread's handle and connection are gone
    time.sleep(0.5)  # what an owner would need to notice it
    try:
        dque.attach(NAME, dirpath).ack(lease_id)
    except Exception as exc:
        return item, type(exc).__name__
    return item, "acked"


def lease_and_exit(q: dque.ProcessSafeDQue) -> None:
    """Lease one item and exit normally without acking it."""
    q.lease(block=False)


def posix_round_trip(dirpath: str) -> None:
    """Run with DQUE_SIMULATE_POSIX=1: a round trip over a socket file; prints what the test checks, as JSON."""
    import stat

    from dque import _process

    def address_of(q: dque.ProcessSafeDQue) -> str:
        with open(os.path.join(q.path, "dque.owner")) as f:
            return json.load(f)["address"]

    out: dict = {"abstract": _process._ABSTRACT, "pidfd": _process._PIDFD}
    ctx = multiprocessing.get_context("fork")  # (spawn would start a resource tracker, orphaned at our exit)
    q = dque.ProcessSafeDQue(NAME, dirpath)
    address = out["address"] = address_of(q)
    sockdir = os.path.dirname(address)
    out["sockdir_mode"] = stat.S_IMODE(os.stat(sockdir).st_mode)
    out["is_socket"] = stat.S_ISSOCK(os.stat(address).st_mode)
    q.enqueue_many(range(100))
    with ctx.Pool(2) as pool:
        results = pool.starmap(drain, [(q, 7)] * 2)
    out["drained"] = sorted(i for _, items in results for i in items)
    q.enqueue_many(["x", "y"])
    child = ctx.Process(target=lease_and_exit, args=(q,))
    child.start()
    child.join()
    out["child_exit"] = child.exitcode
    start = time.monotonic()
    while q.in_flight() and time.monotonic() - start < 10:
        time.sleep(0.02)
    out["released_after"] = time.monotonic() - start
    other = dque.attach(NAME, dirpath)
    leases = other.lease_many(10)
    out["attached"] = [(x.item, x.deliveries) for x in leases]
    other.ack_many([x.id for x in leases])
    out["left"] = q.size() + q.in_flight()
    other.close()
    q.close()
    out["sockdir_after_close"] = os.path.exists(sockdir)
    # The owner killed: the creator's close still removes the socket's directory.
    q = dque.ProcessSafeDQue(NAME, dirpath)
    sockdir2 = os.path.dirname(address_of(q))
    owner = q._manager._process
    os.kill(owner.pid, signal.SIGKILL)
    owner.join()
    q.close()
    out["killed_sockdir_after_close"] = os.path.exists(sockdir2)
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------------------- subprocess roles


def _ledger(path: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    return write


def _fail(write, exc: BaseException) -> None:
    write(f"X {time.monotonic():.6f} {type(exc).__name__}")
    os._exit(0)


def producer(dirpath: str, ledger: str) -> None:
    """Enqueue 0, 1, 2, ... and log ``+i`` after each enqueue returned."""
    write = _ledger(ledger)
    q = dque.attach(NAME, dirpath)
    write("R")
    i = 0
    try:
        while True:
            q.enqueue(i)
            write(f"+{i}")
            i += 1
    except Exception as exc:
        _fail(write, exc)


def consumer(dirpath: str, ledger: str, mode: str) -> None:
    """Take items and log ``-i`` for each one a call returned.

    ``many``: ``dequeue_many(3)`` in a loop; ``block``: logs ``W`` and waits in
    ``dequeue_block(timeout=None)``, again and again.
    """
    write = _ledger(ledger)
    q = dque.attach(NAME, dirpath)
    write("R")
    try:
        while True:
            if mode == "many":
                got = q.dequeue_many(3)
                if got:
                    write("\n".join(f"-{i}" for i in got))
                else:
                    time.sleep(0.001)
            else:
                write("W")
                write(f"-{q.dequeue_block(timeout=None)}")
    except Exception as exc:
        _fail(write, exc)


def churn(dirpath: str, ledger: str, tag: str, stopfile: str) -> None:
    """Enqueue ``tag:n`` and dequeue, alternately, until ``stopfile`` appears.

    Logs ``E n`` before and ``e n`` after an enqueue, ``D`` before and ``d item``
    (``d -`` for Empty) after a dequeue, so the last line names the call in flight.
    """
    write = _ledger(ledger)
    q = dque.attach(NAME, dirpath)
    write("R")
    n = 0
    try:
        while not os.path.exists(stopfile):
            write(f"E {n}")
            q.enqueue(f"{tag}:{n}")
            write(f"e {n}")
            n += 1
            write("D")
            try:
                item = q.dequeue()
            except dque.Empty:
                item = "-"
            write(f"d {item}")
    except Exception as exc:
        _fail(write, exc)
    q.close()
    write("S")


def creator(dirpath: str, context: str, fork_child: str = "") -> None:
    """Create a ProcessSafeDQue, enqueue two items, print the pids as JSON, then sleep until killed.

    With ``fork_child`` it also starts a fork-context ``multiprocessing.Process``
    that sleeps (a long-lived child, like a worker process).
    """
    q = dque.ProcessSafeDQue(NAME, dirpath, context=context or None)
    q.enqueue_many(["one", "two"])
    info = {"creator": os.getpid(), "owner": q._manager._process.pid}
    if fork_child:
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,), daemon=True)
        child.start()
        info["child"] = child.pid
    print(json.dumps(info), flush=True)
    time.sleep(120)


def fork_exit(dirpath: str) -> None:
    """Create a ProcessSafeDQue, os.fork() a child that enqueues and exits normally, then use the queue."""
    q = dque.ProcessSafeDQue(NAME, dirpath)
    q.enqueue("parent")
    pid = os.fork()
    if pid == 0:
        try:
            q.enqueue("child")
        finally:
            sys.exit(0)  # a normal exit: atexit handlers run in the child
    os.waitpid(pid, 0)
    try:
        result = {"size": q.size(), "owner_file": os.path.exists(os.path.join(q.path, "dque.owner"))}
    except Exception as exc:
        result = {"error": type(exc).__name__}
    print(json.dumps(result), flush=True)
    q.close()


class Agent:
    """Runs JSON commands read from stdin, one per line, and answers each with one JSON line.

    The answer is ``{"ok": result}`` or ``{"error": type name, "msg": text}``.
    Commands: ``["create", kwargs]``, ``["attach", kwargs]``, ``["race", gofile,
    kwargs]`` (create once ``gofile`` exists), ``["open"]`` (a plain dque.open
    that holds the lock), ``["call", name, *args]`` on the current handle (an attribute if not callable),
    ``["lease", n]`` (lease_many, the leases kept), ``["thread_lease", n]`` (the same from a thread that ends),
    ``["close"]``, ``["info"]``; ``["exit"]`` closes the handle and exits normally.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath
        self.handle = None
        self.leases: list = []

    def info(self) -> dict:
        h = self.handle
        out = {"pid": os.getpid()}
        if isinstance(h, dque.ProcessSafeDQue):
            out["is_owner"] = h.is_owner
            with open(os.path.join(h.path, "dque.owner")) as f:
                out["owner"] = json.load(f)["pid"]
        return out

    def run(self, op: str, *args):
        if op == "create":
            self.handle = dque.ProcessSafeDQue(NAME, self.dirpath, **args[0])
            return self.info()
        if op == "attach":
            self.handle = dque.attach(NAME, self.dirpath, **args[0])
            return self.info()
        if op == "race":
            gofile, kwargs = args
            while not os.path.exists(gofile):
                time.sleep(0.0005)
            self.handle = dque.ProcessSafeDQue(NAME, self.dirpath, **kwargs)
            return self.info()
        if op == "open":
            self.handle = dque.open(NAME, self.dirpath)
            return "held"
        if op == "call":
            name, *rest = args
            result = getattr(self.handle, name)
            if callable(result):
                result = result(*rest)
            return list(result) if isinstance(result, tuple) else result
        if op == "lease":  # lease_many(n), kept here: [[id, item, deliveries], ...]
            leases = self.handle.lease_many(args[0])
            self.leases.extend(leases)
            return [[lease.id, lease.item, lease.deliveries] for lease in leases]
        if op == "thread_lease":  # lease_many(n) in a thread with a handle of its own, which then ends
            got: list = []
            taker = threading.Thread(target=lambda: got.extend(dque.attach(NAME, self.dirpath).lease_many(args[0])))
            taker.start()
            taker.join()
            self.leases.extend(got)
            return [[lease.id, lease.item, lease.deliveries] for lease in got]
        if op == "close":
            self.handle.close()
            return None
        if op == "info":
            return self.info()
        raise ValueError(f"unknown command {op!r}")

    def main(self) -> None:
        for line in sys.stdin:  # (EOF may never come: forked processes can hold the other end of the pipe)
            op, *args = json.loads(line)
            if op == "exit":
                break
            try:
                answer = {"ok": self.run(op, *args)}
            except Exception as exc:
                answer = {"error": type(exc).__name__, "msg": str(exc)}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
        if self.handle is not None:
            self.handle.close()


# =========================================================================== the test side
#
# Everything below runs in the test process: it starts the roles above and checks what they did.

# --------------------------------------------------------------------------- processes, via /proc


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0].decode(), int(fields[1])


def descendants(root: int | None = None) -> dict[int, str]:
    """pid -> state of every process below ``root`` (this process by default), zombies included
    (Linux; {} elsewhere)."""
    if not LINUX:
        return {}
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = defaultdict(list)
    states = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                states[int(entry)] = st[0]
                children[st[1]].append(int(entry))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found[child] = states[child]
            todo.append(child)
    return found


def gone(pid: int) -> bool:
    """The process has exited: it does not exist, or it is a zombie (it holds no files or locks)."""
    st = _stat(pid)
    return st is None or st[0] in ("Z", "X")


def wait_gone(pid: int, deadline: float) -> float | None:
    """Poll until ``pid`` has exited; the monotonic time it was seen gone, or None at the deadline."""
    while True:
        now = time.monotonic()
        if gone(pid):
            return now
        if now > deadline:
            return None
        time.sleep(0.005)


def stopped(pid: int) -> bool:
    """Every thread of ``pid`` is stopped (a SIGSTOP has taken effect, not just been sent)."""
    tasks = os.listdir(f"/proc/{pid}/task")
    states = []
    for tid in tasks:
        with contextlib.suppress(FileNotFoundError):
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                raw = f.read()
            states.append(raw[raw.rindex(b")") + 2 :].split()[0])
    return bool(states) and all(s in (b"T", b"t") for s in states)


def multiprocessing_helpers() -> set[int]:
    """This process's forkserver and resource tracker: they live as long as it does, by design."""
    pids = set()
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    for pid in (getattr(server, "_forkserver_pid", None), getattr(tracker, "_pid", None)):
        if pid is not None:
            pids.add(pid)
    return pids


_PR_SET_CHILD_SUBREAPER = 36


def subreaper(on: bool) -> None:
    """Linux: make this process a child subreaper (or stop), so that the orphans of a killed
    process become its children, to be reaped and counted. Elsewhere: nothing."""
    if not LINUX:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def new_descendants(before: set[int], keep=()) -> dict[int, str]:
    """The processes below this one that are not in ``before`` or ``keep``, nor its multiprocessing helpers."""
    skip = set(before) | set(keep) | multiprocessing_helpers()
    return {p: s for p, s in descendants().items() if p not in skip}


def _reap_ours(pids) -> None:
    """Reap those of ``pids`` that are exited children of this process."""
    for pid in pids:
        st = _stat(pid)
        if st is not None and st[0] == "Z" and st[1] == os.getpid():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def reap_orphans(pids, timeout: float = 10.0) -> None:
    """Wait for ``pids`` to exit and reap those handed to this process (the orphans of a killed process)."""
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left:
        for pid in list(left):
            st = _stat(pid)
            if st is None:
                left.discard(pid)
            elif st[0] == "Z" and st[1] == os.getpid():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                left.discard(pid)
        if left:
            assert time.monotonic() < deadline, f"processes still running: {left}"
            time.sleep(0.01)


def leftovers(before: set[int], keep=(), *, reap: bool = False, timeout: float = 5.0) -> dict[int, str]:
    """The processes started since ``before`` (other than ``keep``) that are still there, running or
    unreaped, ``timeout`` seconds from now: {} when all is well.

    With ``reap``, exited children of this process among them are reaped meanwhile (they do not count).
    Whatever is left at the deadline is SIGKILLed and reaped as far as it is this process's (killing a
    parent hands its children to a subreaper), so that nothing outlives the test; it is returned as it was
    at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        strays = new_descendants(before, keep)
        if reap and strays:
            _reap_ours(strays)
            strays = new_descendants(before, keep)
        if not strays or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if strays:
        for _ in range(50):
            left = new_descendants(before, keep)
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                st = _stat(pid)
                if st is not None and st[1] == os.getpid():
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
            time.sleep(0.02)
    return strays


# --------------------------------------------------------------------------- roles and agents in subprocesses


def read_ledger(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def failure(lines: list[str]) -> tuple[float, str] | None:
    """(when, exception type) from a ledger's ``X`` line, if there is one."""
    for line in lines:
        if line.startswith("X "):
            _, when, kind = line.split()
            return float(when), kind
    return None


class Role:
    """A role of this module in a subprocess, started through ``reap``, with its ledger."""

    def __init__(self, reap, tmp_path: Path, role: str, label: str, *args: str) -> None:
        self.ledger = tmp_path / f"{label}.ledger"
        self.errfile = tmp_path / f"{label}.stderr"
        with open(self.errfile, "w") as err:
            self.proc = reap([sys.executable, HELPER, role, *args[:1], str(self.ledger), *args[1:]], stderr=err)
        wait_until(lambda: "R" in self.lines() or self.proc.poll() is not None, f"{label} to start")
        assert "R" in self.lines(), f"{label} did not start: {self.errfile.read_text()}"

    def lines(self) -> list[str]:
        return read_ledger(self.ledger)

    def exit_code(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.ledger.stem} did not exit; ledger ends {self.lines()[-3:]}") from None


class AgentProcess:
    """An ``Agent`` in a subprocess: JSON commands in, one JSON answer out per command."""

    def __init__(self, reap, tmp_path: Path, dirpath: Path, label: str = "agent") -> None:
        self.errfile = tmp_path / f"{label}.stderr"
        with open(self.errfile, "w") as err:
            self.proc = reap(
                [sys.executable, HELPER, "agent", str(dirpath)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def send(self, *command) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float = 20.0) -> dict:
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the agent did not answer in time") from None
        assert answer is not None, f"the agent died: {self.errfile.read_text()}"
        return answer

    def pending(self) -> bool:
        return self.answers.empty()

    def ok(self, *command):
        self.send(*command)
        answer = self.recv()
        assert "ok" in answer, f"{command} -> {answer}"
        return answer["ok"]

    def error(self, *command) -> str:
        self.send(*command)
        answer = self.recv()
        assert "error" in answer, f"{command} -> {answer}, not an error"
        return answer["error"]

    def stop(self) -> None:
        """End it the normal way: it closes its handle and exits."""
        self.send("exit")
        assert self.proc.wait(10) == 0, self.errfile.read_text()


@contextlib.contextmanager
def pool_of(n: int, context: str | None = None):
    pool = multiprocessing.get_context(context).Pool(n)
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()
        pool.join()


@contextlib.contextmanager
def owner(dirpath: Path, **kwargs):
    q = dque.ProcessSafeDQue(NAME, dirpath, **kwargs)
    try:
        yield q
    finally:
        q.close()


if __name__ == "__main__":
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # a stuck role prints its stacks to its stderr file
    role, *argv = sys.argv[1:]
    if role == "agent":
        Agent(*argv).main()
    else:
        roles = {
            "producer": producer,
            "consumer": consumer,
            "churn": churn,
            "creator": creator,
            "fork_exit": fork_exit,
            "posix_round_trip": posix_round_trip,
        }
        roles[role](*argv)
