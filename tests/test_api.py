"""The DQue API: opening, the Go names, the queue.Queue names, errors, serializers, config."""

import errno
import os
import pickle
import queue
import sys
import threading

import pytest

import dque
from dque import _format


def test_new_open_roundtrip(qdir):
    q = dque.new("jobs", qdir, segment_size=3)
    assert q.path == os.path.join(qdir, "jobs")
    for i in range(10):
        q.enqueue({"id": i})
    assert q.size() == len(q) == q.qsize() == 10
    assert q.segment_numbers() == (1, 4)
    assert q.peek() == {"id": 0}
    assert [q.dequeue()["id"] for _ in range(4)] == [0, 1, 2, 3]
    q.close()
    with dque.open("jobs", qdir) as q:
        assert q.segment_size == 3
        assert q.size() == 6
        assert q.segment_numbers() == (2, 4)
        assert [q.dequeue()["id"] for _ in range(5)] == [4, 5, 6, 7, 8]
        q.enqueue({"id": 10})  # appends to the reopened tail
    with dque.open("jobs", qdir) as q:
        assert [q.dequeue()["id"] for _ in range(2)] == [9, 10]
        with pytest.raises(dque.Empty):
            q.dequeue()
        with pytest.raises(dque.Empty):
            q.peek()


def test_new_refuses_existing_and_open_refuses_missing(qdir):
    dque.new("q", qdir).close()
    with pytest.raises(FileExistsError):
        dque.new("q", qdir)
    with pytest.raises(FileNotFoundError):
        dque.open("other", qdir)


def test_new_or_open(qdir):
    with dque.new_or_open("q", qdir, segment_size=7) as q:
        q.enqueue(1)
    with dque.new_or_open("q", qdir) as q:
        assert q.segment_size == 7 and q.dequeue() == 1
    with pytest.warns(UserWarning, match="segment_size"):
        q = dque.new_or_open("q", qdir, segment_size=9)
    assert q.segment_size == 7
    q.close()


def test_parents_created(tmp_path):
    with dque.new("q", tmp_path / "a" / "b" / "c") as q:
        q.enqueue("x")
    assert (tmp_path / "a" / "b" / "c" / "q" / "dque.json").exists()


def test_segment_files_deleted_when_consumed(qdir):
    with dque.new("q", qdir, segment_size=2) as q:
        q.enqueue_many(range(7))
        segs = sorted(p for p in os.listdir(q.path) if p.endswith(".seg"))
        assert len(segs) == 4
        assert q.dequeue_many(5) == [0, 1, 2, 3, 4]
        segs = sorted(p for p in os.listdir(q.path) if p.endswith(".seg"))
        assert segs == ["0000000000003.seg", "0000000000004.seg"]


def test_queue_protocol(qdir):
    with dque.new("q", qdir, maxsize=2) as q:
        assert q.maxsize == 2 and q.empty() and not q.full()
        q.put(1)
        q.put_nowait(2)
        assert q.full()
        with pytest.raises(dque.Full):
            q.put_nowait(3)
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.01)
        with pytest.raises(dque.Full):
            q.enqueue(3)
        with pytest.raises(dque.Full):
            q.enqueue_many([3])
        assert q.get() == 1 and q.get_nowait() == 2
        with pytest.raises(queue.Empty):
            q.get(timeout=0.01)
        with pytest.raises(queue.Empty):
            q.get_nowait()
    with dque.open("q", qdir) as q:
        assert q.maxsize == 2  # stored with the queue


def test_many(qdir):
    with dque.new("q", qdir, segment_size=4) as q:
        q.enqueue_many([])
        assert q.dequeue_many(3) == []
        q.enqueue_many(x for x in range(10))
        assert q.dequeue_many(0) == []
        assert q.dequeue_many(3) == [0, 1, 2]
        assert q.dequeue_many(100) == list(range(3, 10))
        assert q.dequeue_many(5) == []


def test_blocking_dequeue_and_peek(qdir):
    with dque.new("q", qdir) as q:
        with pytest.raises(dque.Empty):
            q.dequeue_block(timeout=0.05)
        with pytest.raises(dque.Empty):
            q.peek_block(timeout=0.05)
        threading.Timer(0.1, q.enqueue, args=("hi",)).start()
        assert q.peek_block(timeout=10) == "hi"
        assert q.dequeue_block(timeout=10) == "hi"


def test_mutation_after_enqueue_does_not_change_item(qdir):
    with dque.new("q", qdir) as q:
        item = {"list": [1, 2]}
        q.enqueue(item)
        item["list"].append(3)
        assert q.dequeue() == {"list": [1, 2]}


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"segment_size": 0}, ValueError),
        ({"segment_size": -1}, ValueError),
        ({"segment_size": "10"}, TypeError),
        ({"segment_size": 1.5}, TypeError),
        ({"maxsize": -1}, ValueError),
        ({"serializer": "yaml"}, ValueError),
        ({"serializer": object()}, TypeError),
    ],
)
def test_bad_arguments_touch_nothing(qdir, kwargs, error):
    with pytest.raises(error):
        dque.new("q", qdir, **kwargs)
    assert not qdir.exists()


@pytest.mark.parametrize("name", ["a/b", "", ".", "..", "x\0y"])
def test_bad_names(qdir, name):
    with pytest.raises(ValueError):
        dque.new(name, qdir)
    assert not qdir.exists()


def test_bad_name_types(qdir):
    with pytest.raises(TypeError):
        dque.new(3, qdir)
    with pytest.raises(TypeError):
        dque.new("q", 3)


def test_bad_timeouts(qdir):
    with dque.new("q", qdir) as q:
        for call in (q.get, q.dequeue_block, q.peek_block):
            with pytest.raises(ValueError):
                call(timeout=-1) if call is not q.get else call(True, -1)
        with pytest.raises(ValueError):
            q.put(1, timeout=-1)
        with pytest.raises(TypeError):
            q.dequeue_block(timeout="1")
        with pytest.raises(TypeError):
            q.dequeue_many("3")
        with pytest.raises(ValueError):
            q.turbo_on(max_delay=0)
        with pytest.raises(TypeError):
            q.enqueue_many(5)
        assert q.size() == 0


def test_unpicklable_item_leaves_queue_unchanged(qdir):
    with dque.new("q", qdir, segment_size=2) as q:
        q.enqueue(1)
        before = sorted((p, os.path.getsize(os.path.join(q.path, p))) for p in os.listdir(q.path))
        for bad in (lambda: 0, threading.Lock()):
            with pytest.raises(dque.SerializationError):
                q.enqueue(bad)
            with pytest.raises(dque.SerializationError):
                q.put(bad)
        with pytest.raises(dque.SerializationError):
            q.enqueue_many([2, 3, threading.Lock()])
        after = sorted((p, os.path.getsize(os.path.join(q.path, p))) for p in os.listdir(q.path))
        assert before == after
        assert q.size() == 1 and q.dequeue() == 1


class _Boom:
    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise RuntimeError("cannot rebuild")


def test_undeserializable_item_stays_at_head(qdir):
    with dque.new("q", qdir) as q:
        q.enqueue(_Boom())
        q.enqueue(2)
        for _ in range(2):
            with pytest.raises(dque.SerializationError):
                q.dequeue()
        assert q.size() == 2
        with pytest.raises(dque.SerializationError):
            q.dequeue_many(5)
        assert q.size() == 2


def test_directory_that_is_a_file(tmp_path):
    (tmp_path / "q").write_text("not a queue")
    with pytest.raises(NotADirectoryError):
        dque.new("q", tmp_path)
    with pytest.raises(NotADirectoryError):
        dque.open("q", tmp_path)
    with pytest.raises(NotADirectoryError):
        dque.new("q", tmp_path / "q")
    assert (tmp_path / "q").read_text() == "not a queue"


def test_locked_in_same_process_and_released_on_close(qdir):
    q = dque.new("q", qdir)
    with pytest.raises(dque.LockedError):
        dque.open("q", qdir)
    with pytest.raises(dque.LockedError):
        dque.new_or_open("q", qdir)
    q.close()
    dque.open("q", qdir).close()


def test_calls_after_close(qdir):
    q = dque.new("q", qdir)
    q.enqueue(1)
    q.close()
    q.close()  # idempotent
    assert q.closed
    calls = [
        lambda: q.enqueue(1), q.dequeue, q.peek, lambda: q.dequeue_block(0.1), lambda: q.peek_block(0.1),
        lambda: q.enqueue_many([1]), lambda: q.dequeue_many(1), q.size, lambda: len(q), q.segment_numbers,
        lambda: q.put(1), q.get, q.get_nowait, q.qsize, q.empty, q.full, q.task_done, q.join,
        q.turbo_on, q.turbo_off, q.turbo_sync, lambda: q.__enter__(),
    ]
    for call in calls:
        with pytest.raises(dque.ClosedError):
            call()
    with dque.open("q", qdir) as q2:
        assert q2.dequeue() == 1


def test_errors_pickle_and_hierarchy():
    errors = [
        dque.Empty(), dque.Full(), dque.LockedError("x"), dque.ClosedError("x"), dque.SerializationError("x"),
        dque.ConfigError("x"), dque.CorruptedError("/q/1.seg", 12, "bad"),
    ]
    for err in errors:
        assert isinstance(err, dque.DQueError)
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
    assert issubclass(dque.Empty, queue.Empty) and issubclass(dque.Full, queue.Full)
    assert issubclass(dque.ShutDown, dque.DQueError)
    if sys.version_info >= (3, 13):  # Python's own queue.ShutDown, where Python has one
        assert issubclass(dque.ShutDown, queue.ShutDown)
    err = pickle.loads(pickle.dumps(dque.CorruptedError("/q/1.seg", 12, "bad")))
    assert (err.path, err.offset) == ("/q/1.seg", 12)


# ---------------------------------------------------------------- serializers


def test_json_and_bytes_serializers(qdir):
    with dque.new("j", qdir, serializer="json") as q:
        q.enqueue({"a": [1, 2]})
        with pytest.raises(dque.SerializationError):
            q.enqueue({1, 2})
    with dque.open("j", qdir) as q:  # the stored serializer is used
        assert q.dequeue() == {"a": [1, 2]}
    with pytest.raises(dque.ConfigError):
        dque.open("j", qdir, serializer="pickle")
    with dque.new("b", qdir, serializer="bytes") as q:
        q.enqueue(b"raw")
        q.enqueue(bytearray(b"ba"))
        with pytest.raises(dque.SerializationError):
            q.enqueue("text")
        assert q.dequeue_many(5) == [b"raw", b"ba"]


class Upper:
    name = "upper"

    def dumps(self, item):
        return item.upper().encode()

    def loads(self, data):
        return data.decode()


def test_custom_serializer(qdir):
    with dque.new("c", qdir, serializer=Upper()) as q:
        q.enqueue("abc")
    with pytest.raises(dque.ConfigError, match="upper"):
        dque.open("c", qdir)
    with dque.open("c", qdir, serializer=Upper()) as q:
        assert q.dequeue() == "ABC"


# ---------------------------------------------------------------- turbo


def test_turbo_switches(qdir):
    with dque.new("q", qdir, turbo=True) as q:
        assert q.turbo
        q.enqueue(1)
        q.turbo_sync()
        q.turbo_off()
        assert not q.turbo
        q.turbo_on(max_delay=0.05)
        assert q.turbo
        q.enqueue(2)
    with dque.open("q", qdir) as q:
        assert not q.turbo and q.dequeue_many(3) == [1, 2]


def test_turbo_max_delay_syncs_while_idle(qdir, monkeypatch):
    synced = threading.Event()
    real = dque._fs.datasync

    def datasync(fd):
        real(fd)
        synced.set()

    with dque.new("q", qdir, turbo=True) as q:
        q.turbo_on(max_delay=0.05)
        monkeypatch.setattr(dque._fs, "datasync", datasync)
        q.enqueue(1)
        assert synced.wait(10), "turbo mode never synced an idle queue"


def test_fsyncs_in_safe_mode_one_per_call(qdir, monkeypatch):
    calls = []
    real = dque._fs.datasync
    monkeypatch.setattr(dque._fs, "datasync", lambda fd: (calls.append(fd), real(fd)))
    with dque.new("q", qdir, segment_size=1000) as q:
        calls.clear()
        q.enqueue(1)
        assert len(calls) == 1
        q.enqueue_many(range(50))
        assert len(calls) == 2
        q.dequeue_many(30)
        assert len(calls) == 3
        q.turbo_on()
        q.enqueue(1)
        q.dequeue()
        assert len(calls) == 3


# ---------------------------------------------------------------- format


def test_record_layout():
    rec = _format.encode_item(b"abc")
    assert len(rec) == _format.HEADER_SIZE + 3
    assert rec[4:8] == (3).to_bytes(4, "little") and rec[8] == _format.ITEM and rec[9] == 0
    assert len(_format.DELETE_MARKER) == _format.HEADER_SIZE and _format.DELETE_MARKER[8] == _format.DELETE
    found = _format.scan(rec + _format.encode_item(b"de") + _format.DELETE_MARKER)
    assert (found.added, found.removed, found.items, found.damage) == (2, 1, [(1, b"de")], None)


def test_scan_excess_marker_is_damage():
    found = _format.scan(_format.encode_item(b"a") + _format.DELETE_MARKER * 2)
    assert found.damage is not None and not found.damage.torn
    assert found.damage.offset == _format.HEADER_SIZE + 1 + _format.HEADER_SIZE


def test_excess_marker_on_disk_reported_then_queue_goes_on(qdir):
    with dque.new("q", qdir, segment_size=2) as q:
        q.enqueue_many(range(5))
        path = os.path.join(q.path, "0000000000001.seg")
    with open(path, "ab") as f:
        f.write(_format.DELETE_MARKER * 3)
    with dque.open("q", qdir) as q:
        with pytest.raises(dque.CorruptedError) as info:
            q.dequeue()
        assert info.value.path == path and info.value.offset > 0
        assert q.dequeue_many(10) == [2, 3, 4]
    assert os.path.exists(path + ".corrupt")


def test_corrupt_config(qdir):
    dque.new("q", qdir).close()
    (qdir / "q" / "dque.json").write_text("{nope")
    with pytest.raises(dque.ConfigError):
        dque.open("q", qdir)


def test_turbo_max_delay_can_change_both_ways(qdir, monkeypatch):
    """turbo_on(inf) after a bounded turbo stops the background thread (it once died of an
    overflow, leaving the bound unenforced); a bounded turbo_on after it starts one again."""
    with dque.new("q", qdir, turbo=True) as q:
        q.turbo_on(max_delay=float("inf"))
        assert not any(t.name == "dque-sync q" for t in threading.enumerate())
        synced = threading.Event()
        real = dque._fs.datasync
        monkeypatch.setattr(dque._fs, "datasync", lambda fd: (real(fd), synced.set()))
        q.enqueue(1)
        assert not synced.wait(0.3)  # nobody syncs an unbounded turbo queue
        q.turbo_on(max_delay=0.05)
        assert synced.wait(10), "the bounded turbo mode never synced"


def test_a_forked_child_dropping_the_handle_leaves_the_queue_alone(qdir):
    with dque.new("q", qdir, segment_size=2, turbo=True) as q:
        q.enqueue_many(range(5))
        q.dequeue_many(3)  # a used segment waits for the background thread to delete it
        pid = os.fork()
        if pid == 0:  # the child: drop its copy, as a Pool worker's garbage collection would
            code = 0
            try:
                q.close()
                assert q.closed
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not (qdir / "q" / "dque.clean").exists()  # the parent still has it open
        q.enqueue(5)
        assert q.dequeue_many(10) == [3, 4, 5]
    with dque.open("q", qdir) as q:
        assert q.size() == 0


@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_full_disk_raises_and_changes_nothing(qdir, monkeypatch, turbo):
    """No room for a record (ENOSPC when the segment file grows): OSError, the queue unchanged,
    and it carries on once there is room again."""
    real_extend = dque._fs.extend
    full = [False]

    def extend(fd, size):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_extend(fd, size)

    monkeypatch.setattr(dque._fs, "extend", extend)
    with dque.new("q", qdir, segment_size=3, turbo=turbo) as q:
        q.enqueue_many(range(7))
    with dque.open("q", qdir, turbo=turbo) as q:  # files read back: no room reserved in them yet
        full[0] = True
        with pytest.raises(OSError) as info:
            q.enqueue(7)
        assert info.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            q.dequeue()  # no room for the delete marker
        with pytest.raises(OSError):
            q.lease(block=False)
        assert q.size() == 7 and q.peek() == 0 and q.in_flight() == 0
        full[0] = False
        assert q.dequeue_many(2) == [0, 1]
        q.enqueue(7)
    with dque.open("q", qdir) as q:
        assert q.dequeue_many(100) == [2, 3, 4, 5, 6, 7]
