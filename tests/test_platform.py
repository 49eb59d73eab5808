"""Beyond Linux, private files, packaging conventions (issues 9 and 11).

* permissions: a queue's directory is 0700 and its files 0600 whatever the
  umask, or 0770/0660 with ``group_access=True`` (stored in ``dque.json``);
* portability: ``_fs`` picks its sync and extend calls once, at import
  (F_FULLFSYNC, else fdatasync, else fsync); a part of the suite runs in a
  subprocess with Linux's extras removed from ``os`` (``DQUE_SIMULATE_POSIX=1``);
  ``import dque`` on Windows is a clear ImportError;
* packaging: ``__version__``, ``py.typed``, classifiers, LICENSE, CHANGELOG,
  ``from dque import *`` keeps the built-in ``open``, LockedError's advice.
"""

import errno
import importlib.metadata
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

import dque
from dque import _config, _fs

ROOT = Path(__file__).resolve().parent.parent
LINUX_EXTRAS = ("fdatasync", "posix_fallocate", "pidfd_open")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _fill(q):
    for i in range(5):  # segment_size 2: three segment files
        q.enqueue(i)


# ------------------------------------------------------------------ permissions


def test_queue_is_private_whatever_the_umask(tmp_path, umask):
    parent = tmp_path / "made" / "by" / "makedirs"
    with dque.new("q", parent, segment_size=2) as q:
        _fill(q)
        qdir = Path(q.path)
        segments = sorted(qdir.glob("*.seg"))
        assert len(segments) == 3
        assert _mode(qdir / "dque.lock") == 0o600
    assert _mode(qdir) == 0o700
    for path in [*segments, qdir / "dque.json", qdir / "dque.lock", qdir / "dque.clean"]:
        assert _mode(path) == 0o600, path
    # The parents made for the caller keep the usual permissions.
    for made in (tmp_path / "made", tmp_path / "made" / "by", parent):
        assert _mode(made) == 0o777 & ~umask
    assert _config.read(str(qdir)).group_access is False
    with dque.open("q", parent) as q:  # and it still opens, with its items
        assert q.dequeue_many(10) == list(range(5))


def test_group_access_queue(tmp_path, umask):
    with dque.new("q", tmp_path, segment_size=2, group_access=True) as q:
        _fill(q)
    qdir = tmp_path / "q"
    assert _mode(qdir) == 0o770
    for name in ("dque.json", "dque.lock", "dque.clean"):
        assert _mode(qdir / name) == 0o660, name
    assert _config.read(str(qdir)).group_access is True
    with open(qdir / "dque.json") as f:
        assert '"group_access": true' in f.read()
    with dque.new_or_open("q", tmp_path) as q:  # reopened: keeps group access
        assert q.dequeue_many(10) == list(range(5))
    assert _mode(qdir / "dque.clean") == 0o660


def test_group_access_segment_files(tmp_path, umask):
    with dque.new("q", tmp_path, segment_size=2, group_access=True) as q:
        _fill(q)
    with dque.open("q", tmp_path) as q:
        for i in range(5, 9):  # new segment files after a reopen follow the stored setting too
            q.enqueue(i)
    segments = sorted((tmp_path / "q").glob("*.seg"))
    assert len(segments) >= 3
    assert {_mode(p) for p in segments} == {0o660}


def test_new_or_open_creates_with_group_access(tmp_path, umask):
    with dque.new_or_open("q", tmp_path, group_access=True) as q:
        q.enqueue(1)
    assert _mode(tmp_path / "q") == 0o770
    assert _config.read(str(tmp_path / "q")).group_access is True


def test_group_access_must_be_a_bool(tmp_path):
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="group_access must be True or False"):
            dque.new("q", tmp_path, group_access=bad)
    assert not (tmp_path / "q").exists()


def test_existing_empty_directory_is_made_private(tmp_path):
    qdir = tmp_path / "q"
    qdir.mkdir(mode=0o755)
    os.chmod(qdir, 0o755)
    dque.new("q", tmp_path).close()
    assert _mode(qdir) == 0o700


def test_old_queue_keeps_its_files_modes(tmp_path):
    """A queue made before files were private (0755/0644, no group_access field) opens as it was."""
    with dque.new("q", tmp_path, segment_size=2) as q:
        _fill(q)
    qdir = tmp_path / "q"
    os.chmod(qdir, 0o755)
    for path in qdir.iterdir():
        os.chmod(path, 0o644)
    path = qdir / "dque.json"
    text = path.read_text().replace('"group_access": false,', "").replace(',\n "group_access": false', "")
    path.write_text(text)
    assert "group_access" not in text
    with dque.open("q", tmp_path) as q:
        assert q.dequeue() == 0
        assert _mode(qdir / "0000000000001.seg") == 0o644  # opening changes no file's mode
    assert _mode(qdir) == 0o755
    assert _mode(qdir / "dque.json") == 0o644


def test_fs_open_rw_mode_is_exact_and_only_on_creation(tmp_path, umask):
    new = str(tmp_path / "new")
    for mode in (0o600, 0o660):
        fd = _fs.open_rw(new, mode=mode)
        os.close(fd)
        assert _mode(new) == mode
        os.unlink(new)
    fd = _fs.open_rw(new)  # the default: private
    os.close(fd)
    assert _mode(new) == _fs.FILE_MODE == 0o600
    os.chmod(new, 0o640)
    fd = _fs.open_rw(new, mode=0o660)  # an existing file keeps its own
    os.close(fd)
    assert _mode(new) == 0o640
    fd = _fs.open_append(str(tmp_path / "log"), mode=0o660)
    os.close(fd)
    assert _mode(tmp_path / "log") == 0o660


def test_fs_write_file_durably_follows_its_directory(tmp_path, umask):
    for dir_mode, file_mode in ((0o700, 0o600), (0o770, 0o660), (0o755, 0o600), (0o750, 0o600)):
        d = tmp_path / oct(dir_mode)
        d.mkdir()
        os.chmod(d, dir_mode)
        _fs.write_file_durably(str(d / "f"), b"data")
        assert _mode(d / "f") == file_mode
        assert (d / "f").read_bytes() == b"data"
        _fs.write_file_durably(str(d / "g"), b"x", mode=0o640)  # or as asked
        assert _mode(d / "g") == 0o640
        assert not (d / "f.tmp").exists()


# ------------------------------------------------------------------ portability


def test_pick_datasync_prefers_fdatasync_then_fsync():
    fsync, fdatasync = object(), object()
    no_fullfsync = SimpleNamespace(fcntl=None)
    assert _fs.pick_datasync(SimpleNamespace(fsync=fsync, fdatasync=fdatasync), no_fullfsync) is fdatasync
    assert _fs.pick_datasync(SimpleNamespace(fsync=fsync), no_fullfsync) is fsync
    assert _fs.pick_datasync(SimpleNamespace(fsync=fsync), None) is fsync
    assert _fs.pick_fsync(SimpleNamespace(fsync=fsync, fdatasync=fdatasync), no_fullfsync) is fsync


def test_datasync_is_f_fullfsync_where_fcntl_has_it(tmp_path, monkeypatch):
    import fcntl

    calls = []
    monkeypatch.setattr(fcntl, "F_FULLFSYNC", 51, raising=False)
    monkeypatch.setattr(fcntl, "fcntl", lambda fd, cmd, *arg: calls.append((fd, cmd)) or 0)
    fsyncs = []
    fake_os = SimpleNamespace(fsync=fsyncs.append, fdatasync=lambda fd: pytest.fail("fdatasync used"))
    datasync = _fs.pick_datasync(fake_os)  # (the real fcntl module, patched)
    dirsync = _fs.pick_fsync(fake_os)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        datasync(fd)
        dirsync(fd)
    finally:
        os.close(fd)
    assert calls == [(fd, 51), (fd, 51)]
    assert fsyncs == []


def test_f_fullfsync_refused_by_the_file_system_falls_back_to_fsync():
    def refuse(code):
        def fcntl(fd, cmd):
            raise OSError(code, os.strerror(code))

        return SimpleNamespace(F_FULLFSYNC=51, fcntl=fcntl)

    fsyncs = []
    fake_os = SimpleNamespace(fsync=fsyncs.append)
    _fs.pick_datasync(fake_os, refuse(errno.ENOTSUP))(7)
    assert fsyncs == [7]
    with pytest.raises(OSError) as info:
        _fs.pick_datasync(fake_os, refuse(errno.EIO))(7)  # a real error is not hidden
    assert info.value.errno == errno.EIO
    assert fsyncs == [7]


def test_write_file_durably_uses_the_chosen_syncs(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(_fs, "_datasync", lambda fd: synced.append("data"))
    monkeypatch.setattr(_fs, "_fsync", lambda fd: synced.append("dir"))
    _fs.write_file_durably(str(tmp_path / "f"), b"x")
    assert synced == ["data", "dir"]
    synced.clear()
    _fs.sync_dir(str(tmp_path))
    assert synced == ["dir"]


_PROBE = """
import os, sys
for name in sys.argv[1].split(","):
    if name and hasattr(os, name):
        delattr(os, name)
import dque
from dque import _fs
print(_fs.datasync is os.fsync, _fs._fsync is os.fsync, _fs.extend is _fs._extend_sparse, _fs.SIMULATE_POSIX)
print(*(_fs.os_call(name) is None for name in ("fdatasync", "posix_fallocate", "pidfd_open")))
assert _fs.os_call("fsync") is os.fsync
"""


@pytest.mark.parametrize(
    ("removed", "env", "expected"),
    [
        (LINUX_EXTRAS, "", "True True True False  True True True"),
        ((), "1", "True True True True  True True True"),
        (
            (),
            "",
            f"{not hasattr(os, 'fdatasync')} True {not hasattr(os, 'posix_fallocate')} False  "
            + " ".join(str(not hasattr(os, name)) for name in LINUX_EXTRAS),
        ),
    ],
    ids=["removed-from-os", "DQUE_SIMULATE_POSIX=1", "this-system"],
)
def test_fs_choices_at_import(removed, env, expected):
    environ = {**os.environ, "DQUE_SIMULATE_POSIX": env}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(removed)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == expected.split()


def test_import_on_windows_is_a_clear_import_error():
    code = "import sys; sys.platform = 'win32'; import dque"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: dque runs on POSIX systems only (Linux, macOS, the BSDs)")
    assert "WSL" in last


_SIMULATED_RUN = """
import os, sys
for name in {extras!r}:
    if hasattr(os, name):
        delattr(os, name)  # before dque is imported: as on a POSIX system without Linux's extras
import dque._fs
assert dque._fs.datasync is os.fsync and dque._fs.extend is dque._fs._extend_sparse
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "part",
    [
        ("test_api.py", "test_crash.py", "test_leases.py", "test_powercut.py"),
        ("test_process_leases.py", "test_error_paths.py", "contract/"),
    ],
    ids=["engine-crash-powercut", "processes-faults-contract"],
)
def test_suite_part_passes_without_linux_extras(tmp_path, part):
    """Parts of the suite (the engine, crashes, power cuts, leases; ProcessSafeDQue across processes,
    the fault tests, the contract suite) with no fdatasync, posix_fallocate or pidfd_open."""
    tests = [str(ROOT / "tests" / name) for name in part]
    env = {**os.environ, "DQUE_SIMULATE_POSIX": "1", "DQUE_LEASE_EXAMPLES": "20"}
    args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", f"--basetemp={tmp_path / 'run'}", *tests]
    if "contract/" in part:
        args += ["-k", "procs-fork"]  # (the owner across processes: the engine part runs above)
    out = subprocess.run(
        [sys.executable, "-c", _SIMULATED_RUN.format(extras=LINUX_EXTRAS), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    assert " passed" in out.stdout


# ------------------------------------------------------------------ packaging


def test_version_has_one_source():
    assert dque.__version__ == importlib.metadata.version("dque")
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dque.__version__"}


def test_py_typed_is_shipped():
    assert (Path(dque.__file__).parent / "py.typed").is_file()
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["dque"]


def test_classifiers():
    with open(ROOT / "pyproject.toml", "rb") as f:
        classifiers = set(tomllib.load(f)["project"]["classifiers"])
    for wanted in (
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Operating System :: POSIX",
        "Operating System :: POSIX :: Linux",
        "Operating System :: MacOS",
        "License :: OSI Approved :: MIT License",
        "Typing :: Typed",
    ):
        assert wanted in classifiers


def test_license_and_changelog():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 dque authors" in text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog
    assert "## [Unreleased]" in changelog


def test_star_import_keeps_the_builtin_open():
    namespace: dict = {}
    exec("from dque import *", namespace)
    assert "open" not in namespace
    assert "open" not in dque.__all__
    assert dque.open == dque.DQue.open  # still there as an attribute
    for name in dque.__all__:
        assert name in namespace
    assert "new" in namespace and "DQue" in namespace


def test_locked_error_says_how_to_share(qdir):
    with dque.new("q", qdir):
        with pytest.raises(dque.LockedError) as info:
            dque.open("q", qdir)
    message = str(info.value)
    assert os.path.join(qdir, "q") in message
    assert "another handle or another process" in message
    assert f"dque.attach('q', {str(qdir)!r})" in message
    assert "if_locked='attach'" in message
    assert "close the other handle" in message
