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

import proc_helpers  # tests/proc_helpers.py: the /proc readers
import pytest

from . import backends

# (backend name prefix, test function name) -> the bug. A prefix "procs-" covers procs-fork and procs-spawn.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


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


@pytest.fixture
def backend(backend_name: str, tmp_path):
    """A fresh backend in its own tmp dir; torn down after the test, leaving no process behind."""
    proc_helpers.subreaper(True)
    before = set(proc_helpers.descendants())
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
            try:
                strays = proc_helpers.leftovers(before, keep, reap=True)
            finally:
                proc_helpers.subreaper(False)
            if strays:
                pytest.fail(f"{backend_name}: processes left behind (pid: state): {strays}")
