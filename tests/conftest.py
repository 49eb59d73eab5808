import os
import signal
import subprocess

import pytest

# The markers, in one place: ``pytest -m "not slow"`` is the fast inner loop (about a minute on 2 cores),
# ``-m process`` the tests that run other processes (owners, workers, servers, SIGKILLs).
_SLOW_FILES = {"test_powercut.py", "test_crash.py", "test_fault_sweep.py", "test_model.py", "test_stdlib_queue.py"}
_PROCESS_FILES = {
    "test_process.py", "test_process_leases.py", "test_process_faults.py", "test_redis.py", "test_redis_crash.py",
    "test_examples.py", "test_fork.py", "test_sharp_edges.py", "test_docs.py",
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
