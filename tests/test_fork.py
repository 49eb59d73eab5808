"""A plain DQue and a fork: the child's copy refuses every call, clearly, and the parent's queue is untouched.

The commonest ``multiprocessing.Queue`` habit is a queue made as a module
global and inherited by forked Pool workers. A DQue is one process's handle
on its files: two processes using copies of it would hand out the same items
twice. So a forked child's copy raises ForkedError (it says what to use
instead), and a DQue cannot be pickled to another process at all.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle

import pytest

import dque

_GLOBAL: dque.DQue | None = None  # the habit: a queue made at import time, inherited by forked workers


def _take_from_global(_: int) -> str:
    try:
        assert _GLOBAL is not None
        _GLOBAL.dequeue()
    except dque.ForkedError as exc:
        return "ForkedError: " + str(exc)
    return "took an item"


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")
def test_a_global_queue_in_forked_pool_workers_refuses_and_loses_nothing(tmp_path):
    global _GLOBAL
    _GLOBAL = dque.new("q", tmp_path)
    try:
        _GLOBAL.enqueue_many(range(10))
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(_take_from_global, range(4), chunksize=1)
        assert all(r.startswith("ForkedError: ") for r in results), results
        assert "ProcessSafeDQue" in results[0]
        assert _GLOBAL.size() == 10
        assert _GLOBAL.dequeue_many(20) == list(range(10))
    finally:
        _GLOBAL.close()
        _GLOBAL = None


def test_a_forked_child_cannot_take_even_while_a_parent_thread_holds_the_lock(tmp_path):
    q = dque.new("q", tmp_path)
    q.enqueue_many(range(3))
    r, w = os.pipe()
    q._mutex.acquire()  # as if another thread were inside a call at the moment of the fork
    pid = os.fork()
    if pid != 0:
        q._mutex.release()
    if pid == 0:  # the child: every call raises, nothing blocks
        code = 1
        try:
            for call in (q.dequeue, q.size, lambda: q.enqueue(9), lambda: q.lease(block=False)):
                try:
                    call()
                except dque.ForkedError:
                    continue
                break
            else:
                q.close()  # drops the child's copies of the files only
                code = 0
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"\0"
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert q.dequeue_many(5) == [0, 1, 2]  # the parent's queue is whole and still open
    q.close()
    with dque.open("q", tmp_path) as again:
        assert again.size() == 0


def test_a_dque_does_not_pickle_and_says_what_to_use(tmp_path):
    with dque.new("q", tmp_path) as q:
        with pytest.raises(TypeError, match="ProcessSafeDQue"):
            pickle.dumps(q)
