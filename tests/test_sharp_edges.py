"""Sharp edges a new user meets, each turned into fixed behaviour or a clear, typed error (issue 11)."""

from __future__ import annotations

import multiprocessing

import pytest

import dque


def _dequeue_from(handle: dque.ProcessSafeDQue) -> object:
    return handle.dequeue()


def test_a_relative_dirpath_is_resolved_when_the_handle_is_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    q = dque.new("q", "rel")
    try:
        assert q.path == str(tmp_path / "rel" / "q")
        q.enqueue(1)
        monkeypatch.chdir("/")  # the working directory changes: the handle keeps working
        q.enqueue(2)
        assert q.dequeue_many(5) == [1, 2]
    finally:
        q.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_process_safe_queue_made_with_a_relative_path_survives_chdir(tmp_path, monkeypatch, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    monkeypatch.chdir(tmp_path)
    q = dque.ProcessSafeDQue("q", "reldir", context=method)
    try:
        q.enqueue_many(["a", "b"])
        monkeypatch.chdir("/")
        with multiprocessing.get_context(method).Pool(2) as pool:
            got = pool.map(_dequeue_from, [q, q])
        assert sorted(got) == ["a", "b"]
    finally:
        q.close()


def test_new_on_an_existing_queue_says_what_to_use(tmp_path):
    dque.new("q", tmp_path).close()
    with pytest.raises(FileExistsError, match="new_or_open"):
        dque.new("q", tmp_path)


def test_locked_error_names_the_owner_process_and_how_to_attach(tmp_path):
    q = dque.ProcessSafeDQue("q", tmp_path)
    try:
        with pytest.raises(dque.LockedError) as info:
            dque.open("q", tmp_path)
        text = str(info.value)
        assert f"owner process {q._manager._process.pid}" in text
        assert "dque.attach('q'," in text and "if_locked='attach'" in text
    finally:
        q.close()
    holder = dque.open("q", tmp_path)  # a plain handle: no owner to name, but how to share
    try:
        with pytest.raises(dque.LockedError, match="close the other handle"):
            dque.open("q", tmp_path)
    finally:
        holder.close()


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_a_queue_left_open_at_exit_does_not_hang_the_interpreter(tmp_path, turbo):
    """Its finalizer closes it at exit; on Python 3.13 joining its background thread there froze."""
    import subprocess
    import sys

    script = f"import dque\nq = dque.new_or_open('q', {str(tmp_path)!r}, turbo={turbo})\nq.enqueue(1)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with dque.open("q", tmp_path) as q:
        assert q.dequeue() == 1


def test_a_process_safe_queue_takes_the_creation_options_of_dque_new(tmp_path):
    import json
    import stat

    q = dque.ProcessSafeDQue("q", tmp_path, group_access=True, segment_bytes=4096)
    try:
        q.enqueue_many([b"x" * 1000] * 10)
        assert len(q.dequeue_many(20)) == 10
    finally:
        q.close()
    config = json.loads((tmp_path / "q" / "dque.json").read_text())
    assert config["group_access"] is True and config["segment_bytes"] == 4096
    assert stat.S_IMODE((tmp_path / "q").stat().st_mode) == 0o770
    with pytest.raises(TypeError):
        dque.ProcessSafeDQue("r", tmp_path, group_access="yes")
