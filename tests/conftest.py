import contextlib
import os
import signal
import subprocess

import pytest

# The markers, in one place: ``pytest -m "not slow"`` is the fast inner loop (about a minute on 2 cores),
# ``-m process`` the tests that run other processes (owners, workers, servers, SIGKILLs).
_SLOW_FILES = {"test_powercut.py", "test_crash.py", "test_fault_sweep.py", "test_model.py", "test_stdlib_queue.py"}
_PROCESS_FILES = {
    "test_process.py", "test_process_leases.py", "test_process_faults.py", "test_redis.py", "test_redis_crash.py",
    "test_process_owner_loop.py", "test_examples.py", "test_fork.py", "test_sharp_edges.py", "test_docs.py",
}  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        if name in _SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if name in _PROCESS_FILES or "procs-" in item.name or "redis" in item.name:
            item.add_marker(pytest.mark.process)


@pytest.fixture
def qdir(tmp_path):
    """A fresh directory to hold queues."""
    return tmp_path / "queues"


@pytest.fixture
def reap():
    """Start subprocesses through this; every one is killed and reaped at the end of the test."""
    procs: list[subprocess.Popen] = []

    def start(*args, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(*args, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def no_stray_processes():
    """Fail the test if a process it started is still there at its end: running, or exited and not reaped.

    For the test's duration this process is a child subreaper, so the orphans of
    a killed process (a killed creator's owner, forkserver, resource tracker)
    become its children, for the test to reap with ``proc_helpers.reap_orphans``.
    Use it with ``pytestmark = pytest.mark.usefixtures("no_stray_processes")``.
    """
    import proc_helpers

    proc_helpers.subreaper(True)
    before = set(proc_helpers.descendants())
    try:
        yield
        strays = proc_helpers.leftovers(before)
        if strays:
            pytest.fail(f"processes left behind (pid: state): {strays}")
    finally:
        proc_helpers.subreaper(False)


@pytest.fixture
def start_agent(reap, tmp_path, qdir):
    """Start ``proc_helpers.AgentProcess``es on ``qdir``; at the end, those still running are asked to exit
    (closing their handles and so their owners) before ``reap`` kills what is left."""
    import proc_helpers

    started: list[proc_helpers.AgentProcess] = []

    def start(label: str = "agent") -> proc_helpers.AgentProcess:
        started.append(proc_helpers.AgentProcess(reap, tmp_path, qdir, label))
        return started[-1]

    yield start
    for a in started:
        if a.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                a.send("exit")
    for a in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            a.proc.wait(5)
