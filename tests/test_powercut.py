"""Power cuts at random I/O operations, through the fault-injection layer in powercut.py.

Each test runs a seeded random workload (enqueue, enqueue_many, dequeue,
dequeue_many, peek, close/reopen, turbo syncs; segment sizes 3..5 so that
segments roll over and get deleted all the time) once to count its I/O
operations, then again with the power cut at many of those operations. After
each cut the files a reboot could find are materialized (several outcomes per
cut: only what was synced, a torn mix, everything the OS had), the copy is
opened with ``dque.open`` and drained, and every item is checked against a
ledger of the calls that returned.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil

import pytest
from powercut import PowerCut, PowerLayer

import dque
import dque._fs as _fs

NAME = "q"
INF = float("inf")
VARIANTS = ("durable", "random", "live")


def item(i: int) -> tuple[int, bytes]:
    """Item number ``i``: its id and some padding, so that records differ in size."""
    return (i, bytes([i % 251]) * (i * 7 % 37))


def ident(x: object) -> int:
    assert isinstance(x, tuple) and len(x) == 2 and x == item(x[0]), f"damaged item {x!r}"
    return x[0]


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """What the calls that returned say the queue holds, and what must have survived a power cut."""

    def __init__(self, content: list[int] | None = None, *, next_id: int = 0, created: bool = False) -> None:
        content = list(content or [])
        self.live = list(content)  # the queue per the acknowledged calls, oldest first
        self.started = list(content)  # every id handed to an enqueue call, acknowledged or not
        self.acked_enq = set(content)
        self.acked_deq: set[int] = set()
        self.sure_enq = set(content)  # acknowledged and known to be on stable storage
        self.sure_deq: set[int] = set()
        self.next_id = max([next_id, *(i + 1 for i in content)])
        self.pending: tuple | None = None  # the call in progress when the power went out
        self.created = created  # dque.new returned (or the queue existed before)
        self.turbo = False
        self.ever_turbo = False

    def new_ids(self, n: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        self.started.extend(ids)
        self.pending = ("enq", ids)
        return ids

    def ack_enq(self, ids: list[int]) -> None:
        self.live.extend(ids)
        self.acked_enq.update(ids)
        if not self.turbo:
            self.sure_enq.update(ids)

    def ack_deq(self, ids: list[int]) -> None:
        assert ids == self.live[: len(ids)], f"live run: dequeued {ids}, the head was {self.live[: len(ids) + 3]}"
        del self.live[: len(ids)]
        self.acked_deq.update(ids)
        if not self.turbo:
            self.sure_deq.update(ids)

    def synced(self) -> None:
        self.sure_enq |= self.acked_enq
        self.sure_deq |= self.acked_deq

    def set_turbo(self, on: bool) -> None:
        self.turbo = on
        self.ever_turbo |= on


def check_recovered(ledger: Ledger, got: list[int], *, lossless: bool) -> None:
    """``got`` (the drained queue) against the ledger.

    ``lossless``: nothing acknowledged may be missing (safe mode throughout, or
    an outcome where everything the OS had survived). Otherwise (turbo) only
    what was acknowledged before the last completed sync must be there.
    """
    pending = ledger.pending or ("none",)
    where = f"pending call {pending[0]} {list(pending[1]) if len(pending) > 1 else ''}"
    assert all(a < b for a, b in zip(got, got[1:], strict=False)), f"out of order or duplicated: {got} ({where})"
    phantoms = set(got) - set(ledger.started)
    assert not phantoms, f"items never enqueued came out: {sorted(phantoms)} ({where})"
    if lossless:
        live = ledger.live
        if pending[0] == "enq":
            allowed = [live + pending[1][:i] for i in range(len(pending[1]) + 1)]
        elif pending[0] == "deq":
            # Any of the items the interrupted call was taking may be gone, not only a prefix of
            # them: a dequeue_many spanning segments may have its delete markers in the next
            # segment synced while the retired head (unlinked, directory not synced yet) comes back.
            taking = pending[1]
            allowed = (
                [got] if [x for x in got if x not in taking] == live[len(taking) :] and set(got) <= set(live) else []
            )
        else:
            allowed = [live]
        assert got in allowed, (
            f"recovered {got}\nexpected {live}"
            + (f" (the interrupted call may add a prefix of {pending[1]})" if pending[0] == "enq" else "")
            + (f" (the interrupted call may remove any of {pending[1]})" if pending[0] == "deq" else "")
            + f"\nlost: {sorted(set(live) - set(got))}, came back: {sorted(set(got) & ledger.acked_deq)} ({where})"
        )
        return
    came_back = set(got) & ledger.sure_deq
    assert not came_back, f"items dequeued before the last sync came back: {sorted(came_back)} ({where})"
    maybe_taken = set(pending[1]) if pending[0] == "deq" else set()
    must = ledger.sure_enq - ledger.acked_deq - maybe_taken
    lost = must - set(got)
    assert not lost, f"items enqueued before the last sync were lost: {sorted(lost)}; recovered {got} ({where})"


def drain(q: dque.DQue, into: list[int]) -> list[int]:
    while True:
        try:
            into.append(ident(q.dequeue()))
        except dque.Empty:
            return into


def recover(dest: str, ledger: Ledger, *, lossless: bool, context: str) -> list[int] | None:
    """Open the rebooted copy, drain it, check it, and check it still works. Returns the ids found."""
    try:
        q = dque.open(NAME, dest)
    except FileNotFoundError:
        assert not ledger.created, f"dque.new returned, but after the power cut there is no queue\n{context}"
        return None
    except dque.DQueError as exc:
        pytest.fail(f"open after a power cut raised {exc!r}\n{context}")
    try:
        size = q.size()
        got: list[int] = []
        try:
            drain(q, got)
        except dque.DQueError as exc:
            pytest.fail(f"draining after a power cut raised {exc!r} after {got}\n{context}")
        try:
            check_recovered(ledger, got, lossless=lossless)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{context}") from None
        assert size == len(got), f"size() said {size} at open, {len(got)} came out\n{context}"
        q.enqueue(item(10**6))
    finally:
        q.close()
    with dque.open(NAME, dest) as q:  # the recovered queue takes appends and keeps them
        assert q.size() == 1 and ident(q.dequeue()) == 10**6, context
        with pytest.raises(dque.Empty):
            q.dequeue()
    return got


# --------------------------------------------------------------------------- workloads


def make_steps(rng: random.Random, n: int, *, turbo: bool, toggles: bool = False) -> list[tuple]:
    steps: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.30:
            steps.append(("enq",))
        elif r < 0.45:
            steps.append(("enqm", rng.randint(1, 7)))
        elif r < 0.65:
            steps.append(("deq",))
        elif r < 0.75:
            steps.append(("deqm", rng.randint(1, 6)))
        elif r < 0.80:
            steps.append(("reopen",))
        elif r < 0.84:
            steps.append(("peek",))
        elif r < 0.87:
            steps.append(("size",))
        elif toggles and r < 0.94:
            steps.append((rng.choice(("turbo_on", "turbo_off")),))
        elif turbo and r < 0.94:
            steps.append(("sync",))
        else:
            steps.append(("enq",))
    return steps


def drive(parent: str, steps: list[tuple], ledger: Ledger, *, segment_size: int, turbo: bool, new: bool = True) -> None:
    """Run ``steps`` on the queue ``parent/q``, keeping ``ledger``; PowerCut propagates.

    Turbo mode runs with ``max_delay=inf`` (no background syncer): the sync
    points are exactly the turbo_sync/turbo_off/close calls of the workload.
    """
    q = None

    def open_queue() -> dque.DQue:
        ledger.pending = ("open",)
        qq = dque.open(NAME, parent)
        if ledger.turbo:
            ledger.pending = ("turbo_on",)
            qq.turbo_on(max_delay=INF)
        return qq

    try:
        if new:
            ledger.pending = ("new",)
            q = dque.new(NAME, parent, segment_size=segment_size)
            ledger.created = True
        else:
            q = open_queue()
        if turbo:
            ledger.pending = ("turbo_on",)
            q.turbo_on(max_delay=INF)
            ledger.set_turbo(True)
        for step in steps:
            kind = step[0]
            if kind == "enq":
                ids = ledger.new_ids(1)
                q.enqueue(item(ids[0]))
                ledger.ack_enq(ids)
            elif kind == "enqm":
                ids = ledger.new_ids(step[1])
                q.enqueue_many([item(i) for i in ids])
                ledger.ack_enq(ids)
            elif kind == "deq":
                ledger.pending = ("deq", ledger.live[:1])
                try:
                    got = [ident(q.dequeue())]
                except dque.Empty:
                    assert not ledger.live, f"live run: Empty, but the queue holds {ledger.live}"
                    got = []
                ledger.ack_deq(got)
            elif kind == "deqm":
                ledger.pending = ("deq", ledger.live[: step[1]])
                got = [ident(x) for x in q.dequeue_many(step[1])]
                assert got or not ledger.live, "live run: dequeue_many returned nothing from a non-empty queue"
                ledger.ack_deq(got)
            elif kind == "peek":
                ledger.pending = ("peek",)
                try:
                    assert ident(q.peek()) == ledger.live[0]
                except dque.Empty:
                    assert not ledger.live, f"live run: peek raised Empty, but the queue holds {ledger.live}"
            elif kind == "size":
                assert q.size() == len(ledger.live)
            elif kind == "reopen":
                ledger.pending = ("close",)
                q.close()
                ledger.synced()
                q = None
                q = open_queue()
            elif kind == "sync":
                ledger.pending = ("turbo_sync",)
                q.turbo_sync()
                ledger.synced()
            elif kind == "turbo_on":
                ledger.pending = ("turbo_on",)
                q.turbo_on(max_delay=INF)
                ledger.set_turbo(True)
            elif kind == "turbo_off":
                ledger.pending = ("turbo_off",)
                q.turbo_off()  # documented: syncs everything written so far
                ledger.set_turbo(False)
                ledger.synced()
            else:
                raise AssertionError(kind)
            ledger.pending = None
        ledger.pending = ("close",)
        q.close()
        ledger.synced()
        ledger.pending = None
    finally:
        if q is not None and not q.closed:
            with contextlib.suppress(PowerCut, Exception):
                q.close()  # the dead process's handle: release its fds and lock


def run(
    base: str,
    tag: str,
    steps: list[tuple],
    *,
    seed: int,
    cut_at: int | None,
    segment_size: int,
    turbo: bool,
    content: list[int] | None = None,
    next_id: int = 0,
    source: str | None = None,
) -> tuple[PowerLayer, Ledger]:
    """One run of the workload in ``base/live-<tag>`` (a copy of ``source`` if given), with the power cut at ``cut_at``."""
    live = os.path.join(base, f"live-{tag}")
    if source is None:
        os.mkdir(live)
    else:
        shutil.copytree(source, live)
    layer = PowerLayer(live, seed=seed, cut_at=cut_at)
    ledger = Ledger(content, next_id=next_id, created=source is not None)
    with layer.installed():
        with contextlib.suppress(PowerCut):
            drive(live, steps, ledger, segment_size=segment_size, turbo=turbo, new=source is None)
    assert not layer.drift, "the model lost track of the real files:\n" + "\n".join(layer.drift)
    assert (layer.cut is None) == (cut_at is None or cut_at > layer.ops), layer.describe()
    return layer, ledger


def cut_points(rng: random.Random, total: int, count: int) -> list[int]:
    if total <= count:
        return list(range(1, total + 1))
    return sorted({1, total, *rng.sample(range(2, total), count - 2)})


def powercut_campaign(
    base: str, seed: int, *, turbo: bool, toggles: bool = False, cuts: int = 24, n_steps: int = 40
) -> int:
    rng = random.Random(seed)
    segment_size = rng.randint(3, 5)
    steps = make_steps(rng, n_steps, turbo=turbo, toggles=toggles)
    kw = dict(segment_size=segment_size, turbo=turbo)
    # Dry run: count the I/O operations; after a clean close everything is durable.
    layer, ledger = run(base, "dry", steps, seed=seed, cut_at=None, **kw)
    total = layer.ops
    assert total > len(steps), layer.describe()
    for how in VARIANTS:
        dest = os.path.join(base, f"boot-dry-{how}")
        layer.materialize(dest, data=how, dirs=how)
        recover(dest, ledger, lossless=True, context=f"seed {seed}, no power cut, outcome {how}")
    checked = 0
    for k in cut_points(rng, total, cuts):
        layer, ledger = run(base, str(k), steps, seed=seed * 7919 + k, cut_at=k, **kw)
        assert layer.cut is not None, f"the workload did {layer.ops} I/O operations this time, {total} in the dry run"
        for how in VARIANTS:
            dest = os.path.join(base, f"boot-{k}-{how}")
            layer.materialize(dest, data=how, dirs=how)
            context = (
                f"seed {seed}, segment_size {segment_size}, power cut at op {k} of {total}, outcome {how}\n"
                + layer.describe()
            )
            lossless = not ledger.ever_turbo or how == "live"
            recover(dest, ledger, lossless=lossless, context=context)
            shutil.rmtree(dest)
            checked += 1
        shutil.rmtree(os.path.join(base, f"live-{k}"))
    return checked


# --------------------------------------------------------------------------- the layer itself


@pytest.fixture
def layer(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    pl = PowerLayer(live, seed=1)
    with pl.installed():
        yield pl


def test_layer_unsynced_create_is_lost_synced_one_survives(layer, tmp_path):
    root = layer.root
    fd = _fs.open_append(os.path.join(root, "a"))
    _fs.write(fd, b"hello")
    _fs.datasync(fd)
    _fs.close(fd)
    layer.materialize(tmp_path / "b1", data="durable", dirs="durable")
    assert os.listdir(tmp_path / "b1") == []  # the directory was never synced
    layer.materialize(tmp_path / "b2", data="durable", dirs="live")
    assert (tmp_path / "b2" / "a").read_bytes() == b"hello"
    _fs.sync_dir(root)
    layer.materialize(tmp_path / "b3", data="durable", dirs="durable")
    assert (tmp_path / "b3" / "a").read_bytes() == b"hello"


def test_layer_unsynced_unlink_and_rename_come_back(layer, tmp_path):
    root = layer.root
    for name in ("a", "b"):
        fd = _fs.open_append(os.path.join(root, name))
        _fs.write(fd, name.encode() * 3)
        _fs.datasync(fd)
        _fs.close(fd)
    _fs.sync_dir(root)
    _fs.unlink(os.path.join(root, "a"))
    _fs.rename(os.path.join(root, "b"), os.path.join(root, "c"))
    layer.materialize(tmp_path / "b1", data="durable", dirs="durable")
    assert sorted(os.listdir(tmp_path / "b1")) == ["a", "b"]
    assert (tmp_path / "b1" / "a").read_bytes() == b"aaa"
    layer.materialize(tmp_path / "b2", data="durable", dirs="live")
    assert sorted(os.listdir(tmp_path / "b2")) == ["c"]
    assert (tmp_path / "b2" / "c").read_bytes() == b"bbb"


def test_layer_datasync_through_dup_and_torn_writes(layer, tmp_path):
    root = layer.root
    fd = _fs.open_append(os.path.join(root, "f"))
    _fs.sync_dir(root)
    _fs.write(fd, b"0123")
    dup = _fs.dup(fd)
    _fs.datasync(dup)  # syncs the file of fd
    _fs.close(dup)
    _fs.write(fd, b"456789")
    _fs.truncate(fd, 8)
    layer.materialize(tmp_path / "d", data="durable", dirs="durable")
    assert (tmp_path / "d" / "f").read_bytes() == b"0123"
    layer.materialize(tmp_path / "l", data="live", dirs="durable")
    assert (tmp_path / "l" / "f").read_bytes() == b"01234567"
    seen = set()
    for i in range(200):
        layer.materialize(tmp_path / f"t{i}", data="torn", dirs="durable")
        seen.add((tmp_path / f"t{i}" / "f").read_bytes())
    # any prefix of the unsynced write, all of it, or the write and then the truncate
    assert seen == {b"0123" + b"456789"[:n] for n in range(7)} | {b"01234567"}
    _fs.close(fd)


def test_layer_power_cut_stops_everything(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    pl = PowerLayer(live, seed=3, cut_at=3)
    with pl.installed():
        fd = _fs.open_append(str(live / "f"))  # 1
        _fs.sync_dir(str(live))  # 2
        with pytest.raises(PowerCut) as info:
            _fs.write(fd, b"abcdef")  # 3: the cut
        assert info.value.op == 3
        with pytest.raises(PowerCut):
            _fs.datasync(fd)
        _fs.close(fd)  # a no-op once the power is off (the layer closed its fds)
        assert not isinstance(PowerCut(1, "x"), Exception)
    seen = set()
    for i in range(100):
        pl.materialize(tmp_path / f"b{i}", data="torn", dirs="durable")
        seen.add((tmp_path / f"b{i}" / "f").read_bytes())
    assert seen == {b"abcdef"[:n] for n in range(7)}  # the interrupted write: any prefix, or all of it


def test_layer_write_file_durably_is_one_durable_step(layer, tmp_path):
    qdir = os.path.join(layer.root, "q")
    os.mkdir(qdir)
    fd = _fs.open_append(os.path.join(qdir, "seg"))
    _fs.close(fd)
    _fs.write_file_durably(os.path.join(qdir, "conf"), b"{}")
    layer.materialize(tmp_path / "b", data="durable", dirs="durable")
    # the directory sync inside write_file_durably made every entry of the directory durable
    assert sorted(os.listdir(tmp_path / "b" / "q")) == ["conf", "seg"]
    assert (tmp_path / "b" / "q" / "conf").read_bytes() == b"{}"


def test_new_syncs_parent_and_config(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    pl = PowerLayer(live)
    with pl.installed():
        dque.new(NAME, str(live), segment_size=3).close()
    assert str(live) in pl.dir_syncs, pl.dir_syncs
    pl.materialize(tmp_path / "b", data="durable", dirs="durable")
    with dque.open(NAME, str(tmp_path / "b")) as q:
        assert q.size() == 0 and q.segment_size == 3


# --------------------------------------------------------------------------- the campaigns


@pytest.mark.parametrize("seed", range(1, 7))
def test_power_cut_safe_mode(tmp_path, seed):
    assert powercut_campaign(str(tmp_path), seed, turbo=False) > 0


@pytest.mark.parametrize("seed", range(101, 107))
def test_power_cut_turbo_mode(tmp_path, seed):
    assert powercut_campaign(str(tmp_path), seed, turbo=True) > 0


@pytest.mark.parametrize("seed", range(201, 203))
def test_power_cut_switching_modes(tmp_path, seed):
    assert powercut_campaign(str(tmp_path), seed, turbo=False, toggles=True) > 0


@pytest.mark.parametrize(("seed", "turbo"), [(301, False), (302, True)])
def test_power_cut_during_recovery(tmp_path, seed, turbo):
    """A second power cut while the queue recovers from the first (torn tails, missing entries) and goes on."""
    base = str(tmp_path)
    rng = random.Random(seed)
    segment_size = rng.randint(3, 5)
    steps1 = make_steps(rng, 30, turbo=turbo)
    steps2 = make_steps(rng, 12, turbo=turbo)
    kw = dict(segment_size=segment_size, turbo=turbo)
    total1 = run(base, "dry", steps1, seed=seed, cut_at=None, **kw)[0].ops
    for n, k1 in enumerate(cut_points(rng, total1, 6)):
        layer1, ledger1 = run(base, f"a{n}", steps1, seed=seed * 31 + k1, cut_at=k1, **kw)
        first = os.path.join(base, f"boot-a{n}")
        layer1.materialize(first, data="torn", dirs="torn")
        if not os.path.exists(os.path.join(first, NAME, "dque.json")):
            assert not ledger1.created
            continue
        probe = os.path.join(base, f"probe-a{n}")
        shutil.copytree(first, probe)  # what the first reboot holds: opening is deterministic
        with dque.open(NAME, probe) as q:
            content = drain(q, [])
        check_recovered(ledger1, content, lossless=not turbo)
        kw2 = dict(content=content, next_id=ledger1.next_id, source=first, **kw)
        total2 = run(base, f"a{n}-dry", steps2, seed=seed, cut_at=None, **kw2)[0].ops
        for k2 in sorted({*range(1, min(total2, 12) + 1), *rng.sample(range(1, total2 + 1), min(total2, 6))}):
            layer2, ledger2 = run(base, f"a{n}-{k2}", steps2, seed=k2, cut_at=k2, **kw2)
            for how in VARIANTS:
                dest = os.path.join(base, f"boot-a{n}-{k2}-{how}")
                layer2.materialize(dest, data=how, dirs=how)
                context = (
                    f"seed {seed}: first cut at op {k1}, recovered {content}; second cut at op {k2} of {total2}, "
                    f"outcome {how}\n" + layer2.describe()
                )
                recover(dest, ledger2, lossless=not turbo or how == "live", context=context)
                shutil.rmtree(dest)
            shutil.rmtree(os.path.join(base, f"live-a{n}-{k2}"))
