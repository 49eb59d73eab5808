"""``dque.Queue``: every backend satisfies the public protocol, statically (mypy) and at run time.

The static check runs mypy on ``typing_check.py`` (never executed): one
function per backend, so an error's line names the backend. A backend added
there (``def redis_queue(...)``) is checked with no change here.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dque

TYPING_CHECK = Path(__file__).with_name("typing_check.py")
ROOT = Path(__file__).resolve().parents[2]

# typing_check.py function -> the bug that keeps its backend from satisfying the protocol (xfail, strict)
STATIC_BUGS = {
    "process_safe": "ProcessSafeDQue is missing the dque.Queue members shutdown and is_shutdown (mypy: "
    '"ProcessSafeDQue" is missing following "Queue" protocol members: is_shutdown, shutdown)',
}


def _functions() -> dict[str, tuple[int, int]]:
    tree = ast.parse(TYPING_CHECK.read_text())
    return {
        node.name: (node.lineno, node.end_lineno or node.lineno)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


FUNCTIONS = _functions()


@pytest.fixture(scope="module")
def mypy_errors() -> list[tuple[int, str]]:
    """``(line, message)`` of every error mypy reports in typing_check.py."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy): the static protocol check cannot run")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", str(TYPING_CHECK), "--ignore-missing-imports", "--cache-dir", "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^(.*?):(\d+): (error|note): (.*)$", line)
        if m and Path(m[1]).name == TYPING_CHECK.name:
            errors.append((int(m[2]), f"{m[3]}: {m[4]}"))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    assert (proc.returncode == 0) == (not [e for e in errors if e[1].startswith("error")]), proc.stdout
    return errors


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=STATIC_BUGS[name]))
        if name in STATIC_BUGS
        else name
        for name in FUNCTIONS
    ],
)
def test_mypy_accepts(mypy_errors, function):
    first, last = FUNCTIONS[function]
    mine = [f"line {line}: {msg}" for line, msg in mypy_errors if first <= line <= last]
    assert not mine, "\n".join(mine)


def test_mypy_reports_nothing_outside_the_functions(mypy_errors):
    inside = [range(first, last + 1) for first, last in FUNCTIONS.values()]
    stray = [(line, msg) for line, msg in mypy_errors if not any(line in r for r in inside)]
    assert not stray, stray


def test_the_static_check_can_fail(tmp_path):
    """A type that lacks a protocol member is refused: the check above is not vacuous."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy): the static protocol check cannot run")
    bad = tmp_path / "bad_check.py"
    bad.write_text(
        "import dque\n\n\ndef f(path: str) -> None:\n    q: dque.Queue = dque.Lease(None, 1, 2, 3)  # type: ignore[arg-type]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", str(bad), "--ignore-missing-imports", "--cache-dir", "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and 'variable has type "Queue"' in proc.stdout, proc.stdout


def test_every_backend_is_a_queue_at_run_time(backend):
    q = backend.make()
    assert isinstance(q, dque.Queue)
    missing = [name for name in dir(dque.Queue) if not name.startswith("_") and not hasattr(q, name)]
    assert not missing, f"{backend.name} lacks {missing}"
