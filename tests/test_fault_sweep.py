"""The fault sweep, bounded: an OSError at the file-system calls of short dque workloads.

Through ``faults.py`` (the layer on ``dque._fs``), each workload (enqueue,
dequeue, batches, leases and acks, releases, ttl expiry, dead letters, open
after a crash, close and reopen, turbo mode, seeded mixes) runs once per call
it makes, with that call failing. The contract checked (see
``faults.Runner``): a call failed by an I/O error changed nothing the caller
can see (counts, content; the same call tried again works), a failed sync
poisons the handle (later calls raise) and loses nothing that returned, and
after reopening the queue holds exactly the model's items, once each, in
FIFO order.

Bounded: every sync is failed, and every other call is failed once, with one
of EIO, ENOSPC, EMFILE in turn (N = 1, 4, 7, ... with EIO, 2, 5, 8, ... with
ENOSPC, 3, 6, 9, ... with EMFILE). ``stress/fault_sweep.py`` runs every call
with every errno.
"""

from __future__ import annotations

import errno
import os

import pytest
from faults import WORKLOADS, FaultLayer, Runner, hook_names, run_once, sweep

import dque
import dque._fs as _fs

# mode -> (first N, stride): the three errnos share the non-sync calls between them.
BOUNDED = {"EIO": (1, 3), "ENOSPC": (2, 3), "EMFILE": (3, 3), "sync": (1, 1)}
SHOW = 4  # failing runs shown in full


@pytest.mark.parametrize("mode", list(BOUNDED))
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_fault_sweep(workload: str, mode: str, tmp_path) -> None:
    start, stride = BOUNDED[mode]
    total, results = sweep(workload, mode, str(tmp_path), start=start, stride=stride)
    assert total > 0
    injected = [r for r in results if r.fault is not None]
    assert injected or total < start, f"{workload}: no fault was injected ({total} calls)"
    failing = [r for r in results if any(not p.startswith("note") for p in r.problems)]
    lost = sum(r.lost for r in results)
    duplicated = sum(r.duplicated for r in results)
    miscounted = sum(r.miscounted for r in results)
    others = sum(r.wrong_errors + r.not_poisoned + r.order for r in results)
    summary = (
        f"{workload} {mode}: {len(injected)} faults injected, {len(failing)} runs failing: lost {lost}, "
        f"duplicated {duplicated}, miscounted {miscounted}, other problems {others}\n"
    )
    assert not failing, summary + "\n\n".join(r.report() for r in failing[:SHOW])
    assert lost == 0 and duplicated == 0 and miscounted == 0


# --------------------------------------------------------------------------- the layer itself


def test_layer_counts_every_call_and_restores(tmp_path) -> None:
    saved = {name: getattr(_fs, name) for name in hook_names()}
    for name in (
        "read_file",
        "listdir",
        "file_size",
        "open_rw",
        "extend",
        "map",
        "truncate",
        "datasync",
        "dup",
        "close",
        "unlink",
        "rename",
        "sync_dir",
        "write_file_durably",
    ):
        assert name in saved
    layer = FaultLayer()
    with layer.installed():
        assert all(getattr(_fs, name) is not saved[name] for name in saved)
        with dque.new("q", tmp_path, segment_size=2) as q:
            q.enqueue_many([1, 2, 3])
            assert q.dequeue() == 1
    assert all(getattr(_fs, name) is saved[name] for name in saved)
    assert layer.fired is None
    for name in ("write_file_durably", "open_rw", "extend", "map", "dup", "close", "truncate", "listdir"):
        assert layer.per_name.get(name, 0) > 0, name
    assert layer.counted == layer.calls - layer.per_name.get("datasync", 0) - layer.per_name.get("sync_dir", 0)


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC, errno.EMFILE])
def test_failed_call_raises_before_it_runs(tmp_path, err: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with FaultLayer(err=err, fail_at=1).installed() as layer:
        with pytest.raises(OSError) as info:
            _fs.unlink(str(path))
        _fs.unlink(str(path))  # the next call goes through
    assert info.value.errno == err
    assert layer.fired.name == "unlink" and layer.fired.n == 1
    assert not path.exists()


def test_sync_mode_counts_only_syncs(tmp_path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        with FaultLayer(kind="sync", fail_at=2).installed() as layer:
            _fs.datasync(fd)
            assert _fs.file_size(fd) == 0
            with pytest.raises(OSError) as info:
                _fs.sync_dir(str(tmp_path))
        assert info.value.errno == errno.EIO
        assert (layer.counted, layer.calls, layer.fired.name) == (2, 3, "sync_dir")
    finally:
        os.close(fd)


def test_failed_close_leaves_the_fd_until_uninstalled(tmp_path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    with FaultLayer(fail_at=1).installed():
        with pytest.raises(OSError):
            _fs.close(fd)
        os.fstat(fd)  # still open: the failed call did nothing
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the layer on the way out


# --------------------------------------------------------------------------- the harness can fail


def test_harness_catches_a_change_made_before_an_error(tmp_path, monkeypatch) -> None:
    """A planted bug: dequeue takes the item, then makes one more _fs call, whose error it lets through."""
    original = dque.DQue.dequeue

    def dequeue(self):  # noqa: ANN001, ANN202
        item = original(self)
        _fs.listdir(self.path)
        return item

    monkeypatch.setattr(dque.DQue, "dequeue", dequeue)
    base = str(tmp_path)
    clean = run_once("dequeue", "EIO", None, base)
    assert clean.clean, clean.report()
    # Fail each call in turn up to the first planted listdir (the first dequeue's last call).
    for n in range(1, clean.calls + 1):
        res = run_once("dequeue", "EIO", n, base)
        if res.fault.name == "listdir" and "dequeue" in res.fault.step:
            break
    else:
        pytest.fail("the planted listdir was never failed")
    assert res.lost >= 1 and res.miscounted >= 1, res.report()


def test_harness_catches_a_wrong_error_type(tmp_path, monkeypatch) -> None:
    original = dque.DQue.enqueue

    def enqueue(self, item):  # noqa: ANN001, ANN202
        try:
            original(self, item)
        except OSError as exc:
            raise RuntimeError("wrapped") from exc

    monkeypatch.setattr(dque.DQue, "enqueue", enqueue)
    total = run_once("enqueue", "ENOSPC", None, str(tmp_path)).calls
    results = [run_once("enqueue", "ENOSPC", n, str(tmp_path)) for n in range(1, total + 1)]
    assert any(r.wrong_errors for r in results)


def test_runner_model_passes_without_faults(tmp_path) -> None:
    for name, w in WORKLOADS.items():
        res = Runner(w, "EIO", None, str(tmp_path / name)).run(str(tmp_path / "templates"))
        assert res.clean, res.report()
        assert res.calls > 0


def test_sync_sweep_is_clean_once_a_failed_sync_poisons(tmp_path, monkeypatch) -> None:
    """The poisoned-handle rules raise no false alarm: with poisoning simulated, every sync fault passes.

    The engine at the time of writing does not poison a handle after a failed
    sync (the sweep's ``sync`` mode reports it); this wraps the places where
    its syncs fail so that the next enqueue raises, and the rest of the
    contract (nothing lost or twice after a reopen) must then hold for every
    sync of every workload. (Harmless once the engine poisons by itself.)
    """
    from dque._queue import DQue
    from dque._store import SegmentStore

    def poisoning(orig, handle):  # noqa: ANN001, ANN202
        def wrapper(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            try:
                return orig(self, *args, **kwargs)
            except OSError:
                handle(self)._test_poisoned = True
                raise

        return wrapper

    monkeypatch.setattr(DQue, "_sync", poisoning(DQue._sync, lambda q: q))
    for name in ("finish_background", "roll"):  # the store's syncs (its host is the DQue)
        monkeypatch.setattr(SegmentStore, name, poisoning(getattr(SegmentStore, name), lambda s: s.host))
    enqueue = DQue.enqueue

    def poisoned_enqueue(self, item):  # noqa: ANN001, ANN202
        if getattr(self, "_test_poisoned", False):
            raise dque.DQueError("poisoned (simulated)")
        return enqueue(self, item)

    monkeypatch.setattr(DQue, "enqueue", poisoned_enqueue)
    failing = []
    for name in WORKLOADS:
        _, results = sweep(name, "sync", str(tmp_path))
        failing += [r for r in results if any(not p.startswith("note") for p in r.problems)]
    assert not failing, "\n\n".join(r.report() for r in failing[:SHOW])
