"""The documentation's examples run: the package docstring's doctests and every Python block of the README.

A README block is a fragment written for a reader, so each one runs in a
fresh process with only what it leaves implicit supplied here (a queue ``q``
with items, a ``handle`` function) and its paths pointed at a temporary
directory. A block that this file does not know fails the test: a new
example must be made runnable here, not skipped.
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dque

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


# What each block leaves implicit, by a phrase that identifies the block.
PRELUDES = {
    'dque.new("jobs", "/var/lib/myapp"': "",
    'dque.new("raw", tempfile.mkdtemp())': "",
    "with q.lease(timeout=5) as lease:     # blocks like get()": (
        "import dque\nq = dque.new('jobs', '/var/lib/myapp')\nq.enqueue_many(range(200))\nhandle = print\n"
    ),
    "dque.ProcessSafeDQue(": "",
    "dque.RedisQueue(": "import dque\nhandle = print\n",
}


def test_the_package_docstring_examples_run():
    failed, tried = doctest.testmod(dque, verbose=False)
    assert tried > 0 and failed == 0


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_every_readme_python_block_runs(tmp_path, index, request):
    block = readme_blocks()[index]
    prelude = next((text for phrase, text in PRELUDES.items() if phrase in block), None)
    assert prelude is not None, f"README python block {index} is new: make it runnable in tests/test_docs.py\n{block}"
    code = prelude + block
    if "# from an unrelated process" in code:  # (that part runs while an owner serves the queue)
        code = code.split("# from an unrelated process")[0]
    if "RedisQueue(" in code:
        server = _redis_or_skip(tmp_path, request)
        code = re.sub(r"redis://[\w.-]+:\d+/\d+", server.url, code)
    code = code.replace("/var/lib/myapp", str(tmp_path / "app"))
    script = tmp_path / "block.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"README python block {index} failed:\n{code}\n{proc.stderr[-3000:]}"


def _redis_or_skip(tmp_path: Path, request: pytest.FixtureRequest) -> object:
    try:
        import redis  # noqa: F401
        from redis_server import RedisServer  # the tests' own server helper
    except ImportError:
        pytest.skip("redis-py is not installed")
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary on PATH")
    (tmp_path / "redis").mkdir()
    server = RedisServer(str(tmp_path / "redis")).start()
    request.addfinalizer(server.stop)
    return server
