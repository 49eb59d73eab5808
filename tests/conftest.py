import os
import signal
import subprocess

import pytest


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
