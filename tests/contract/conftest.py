"""The ``backend`` fixture: every contract test runs once per backend (see ``backends.py``).

After each test the backend's ``close_all()`` runs, and the test fails if a
process started during it is still there (running, or exited and not
reaped). On Linux this process is a child subreaper meanwhile, so that the
orphans of a killed process come back here to be reaped and counted.

``KNOWN_BUGS`` lists the contract tests a backend fails today, each with the
bug: such a test is ``xfail(strict=True)`` for that backend, visibly, so a
fix turns it into an XPASS failure and the entry must then go.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import time
from collections import defaultdict

import pytest

from . import backends

LINUX = sys.platform.startswith("linux")

# (backend name prefix, test function name) -> the bug. A prefix "procs-" covers procs-fork and procs-spawn.
_CLOSE_BUG = (
    "bug: a call blocked in another thread when the creating handle's close() runs raises OwnerGoneError, "
    "not ClosedError (README error table; ProcessSafeDQue._call maps the owner's ClosedError to OwnerGoneError)"
)
_SHUTDOWN_BUG = "bug: ProcessSafeDQue has no shutdown()/is_shutdown/unfinished_tasks (README: 'the whole DQue API')"
KNOWN_BUGS: dict[tuple[str, str], str] = {
    ("procs-", "test_puts_raise_and_takes_drain_then_raise"): _SHUTDOWN_BUG,
    ("procs-", "test_immediate_takes_raise_at_once_and_join_returns"): _SHUTDOWN_BUG,
    ("procs-", "test_shutdown_wakes_blocked_callers_with_shut_down"): _SHUTDOWN_BUG,
    ("procs-", "test_shutdown_deletes_nothing"): _SHUTDOWN_BUG,
    ("procs-", "test_every_backend_is_a_queue_at_run_time"): _SHUTDOWN_BUG,
    ("procs-", "test_close_wakes_a_blocked_take_with_closed_error"): _CLOSE_BUG,
    ("procs-", "test_close_wakes_a_blocked_put_with_closed_error"): _CLOSE_BUG,
    ("procs-", "test_close_wakes_a_blocked_join_with_closed_error"): _CLOSE_BUG,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", backends.names())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("backend_name") if callspec else None
        if name is None:
            continue
        func = item.originalname if isinstance(item, pytest.Function) else item.name
        for (prefix, test), reason in KNOWN_BUGS.items():
            if name.startswith(prefix) and test == func:
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"{name}: {reason}"))


# --------------------------------------------------------------------------- processes, via /proc


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def descendants() -> dict[int, str]:
    """pid -> state of every process below this one, zombies included (Linux; {} elsewhere)."""
    if not LINUX:
        return {}
    children: dict[int, list[int]] = defaultdict(list)
    states = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                states[int(entry)] = st[0]
                children[st[1]].append(int(entry))
    found: dict[int, str] = {}
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), ()):
            found[child] = states[child]
            todo.append(child)
    return found


def _multiprocessing_helpers() -> set[int]:
    """This process's forkserver and resource tracker: they live as long as it does, by design."""
    pids = set()
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    for pid in (getattr(server, "_forkserver_pid", None), getattr(tracker, "_pid", None)):
        if pid is not None:
            pids.add(pid)
    return pids


def _subreaper(on: bool) -> None:
    if LINUX:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _strays(before: set[int], keep: set[int]) -> dict[int, str]:
    skip = before | keep | _multiprocessing_helpers()
    return {pid: state for pid, state in descendants().items() if pid not in skip}


def _reap(pids) -> None:
    for pid in pids:
        st = _stat(pid)
        if st is not None and st[0] == "Z" and st[1] == os.getpid():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@pytest.fixture
def backend(backend_name: str, tmp_path):
    """A fresh backend in its own tmp dir; torn down after the test, leaving no process behind."""
    _subreaper(True)
    before = set(descendants())
    made = None
    try:
        made = backends.make_backend(backend_name, tmp_path)
        yield made
    finally:
        try:
            if made is not None:
                made.close_all()
        finally:
            keep = set(getattr(made, "helper_pids", ()) or ())
            deadline = time.monotonic() + 5
            while True:
                strays = _strays(before, keep)
                _reap(strays)
                strays = _strays(before, keep)
                if not strays or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if strays:
                for pid in strays:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
                _reap(strays)
            _subreaper(False)
            if strays:
                pytest.fail(f"{backend_name}: processes left behind (pid: state): {strays}")
