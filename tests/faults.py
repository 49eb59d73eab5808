"""I/O error injection for dque's file layer, and the fault sweep's workloads (a test helper, not a test module).

``FaultLayer`` replaces every function of :mod:`dque._fs` (as ``powercut.py``
does) with a wrapper that counts the calls and makes the N-th one raise an
``OSError`` before the real function runs, so a failed call has no effect.
Two kinds of fault, each counting only its own calls:

* ``kind="errno"``: the N-th call that is *not* a sync (``read_file``,
  ``listdir``, ``file_size``, ``open_rw``, ``extend``, ``map``, ``truncate``,
  ``dup``, ``close``, ``unlink``, ``rename``, ``write_file_durably``, ...)
  raises ``OSError(err)``, ``err`` one of EIO, ENOSPC, EMFILE;
* ``kind="sync"``: the N-th sync (``datasync``, ``sync_dir``, any ``_fs``
  function with "sync" in its name but ``write_file_durably``) raises EIO.

Every public function of ``_fs`` is wrapped (so hooks a fixed engine adds are
counted too). Syncs are not carried out for real by default (nothing here
judges durability, and fdatasync would make the sweep slow); the fd is still
checked. Stores into maps (``m[a:b] = ...``) are not calls: the room was
reserved by ``extend`` and cannot fail with an errno. A ``close`` that fails
leaves its fd open; the layer closes such fds when it is uninstalled.

The second half is the sweep: deterministic workloads (``WORKLOADS``) run on a
``DQue`` in-process under a model of what the calls that returned promise;
``run_once(workload, mode, n)`` injects one fault at call ``n`` and checks the
contract (see ``Runner``); ``sweep`` tries n = 1, 2, ... until a run does not
reach call n.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import shutil
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dque
import dque._fs as _fs

ERRNOS = {"EIO": errno.EIO, "ENOSPC": errno.ENOSPC, "EMFILE": errno.EMFILE}
MODES = ("EIO", "ENOSPC", "EMFILE", "sync")
NOT_SYNCS = frozenset({"write_file_durably"})  # one durable step: failing it before it runs changes nothing


def hook_names() -> list[str]:
    """The functions of ``_fs`` the engine calls: every public callable that is not a module or class."""
    names = []
    for name, value in vars(_fs).items():
        if name.startswith("_") or isinstance(value, (types.ModuleType, type)) or not callable(value):
            continue
        names.append(name)
    return sorted(names)


def is_sync(name: str) -> bool:
    return "sync" in name and name not in NOT_SYNCS


@dataclass
class Fault:
    """The fault injected: the n-th counted call, which call, its errno, its target, and the workload step."""

    n: int
    call_no: int  # among all calls of the run
    name: str
    err: int
    what: str
    step: str

    def __str__(self) -> str:
        return f"{self.name}({self.what}) -> {errno.errorcode.get(self.err, self.err)} [call #{self.call_no}, during {self.step}]"


class FaultLayer:
    """Counts every ``_fs`` call; makes counted call number ``fail_at`` raise ``OSError(err)``.

    ``kind``: "errno" counts the calls that are not syncs, "sync" counts the
    syncs (and defaults ``err`` to EIO). ``fail_at=None`` only counts.
    ``real_sync`` also calls the real syncs.
    """

    def __init__(
        self, *, kind: str = "errno", err: int = errno.EIO, fail_at: int | None = None, real_sync: bool = False
    ) -> None:
        if kind not in ("errno", "sync"):
            raise ValueError("kind is 'errno' or 'sync'")
        self.kind = kind
        self.err = err
        self.fail_at = fail_at
        self.real_sync = real_sync
        self.calls = 0  # every call
        self.counted = 0  # calls of this layer's kind
        self.per_name: dict[str, int] = {}
        self.fired: Fault | None = None
        self.step = "-"  # the workload step under way (set by the runner), for reports
        self.trace: list[tuple[int, str, str]] = []
        self.fds: dict[int, str] = {}  # fd -> path, for reports
        self.unclosed: list[int] = []  # fds whose close was made to fail
        self._mutex = threading.RLock()
        self._saved: dict[str, Any] | None = None

    # ------------------------------------------------------------ install

    def install(self) -> FaultLayer:
        if self._saved is not None:
            raise RuntimeError("already installed")
        self._saved = {name: getattr(_fs, name) for name in hook_names()}
        for name, orig in self._saved.items():
            setattr(_fs, name, self._wrap(name, orig))
        return self

    def uninstall(self) -> None:
        if self._saved is None:
            return
        for name, fn in self._saved.items():
            setattr(_fs, name, fn)
        self._saved = None
        for fd in self.unclosed:  # a failed close(2) frees the fd on Linux anyway
            with contextlib.suppress(OSError):
                os.close(fd)
        self.unclosed = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[FaultLayer]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    # ------------------------------------------------------------ the hooks

    def _what(self, name: str, args: tuple) -> str:
        if not args:
            return ""
        first = args[0]
        if isinstance(first, int) and name not in ("listdir",):
            text = self.fds.get(first, f"fd {first}")
        else:
            text = str(first)
        if name in ("extend", "map", "truncate") and len(args) > 1:
            text += f", {args[1]}"
        if name == "rename" and len(args) > 1:
            text += f" -> {args[1]}"
        return text

    def _wrap(self, name: str, orig: Callable) -> Callable:
        sync = is_sync(name)
        counted_kind = sync == (self.kind == "sync")
        fake = None
        if sync and not self.real_sync:
            fake = _fake_sync(name)

        def hook(*args: Any, **kwargs: Any) -> Any:
            with self._mutex:
                self.calls += 1
                self.per_name[name] = self.per_name.get(name, 0) + 1
                what = self._what(name, args)
                self.trace.append((self.calls, name, what))
                if counted_kind:
                    self.counted += 1
                    if self.fired is None and self.fail_at == self.counted:
                        self.fired = Fault(self.counted, self.calls, name, self.err, what, self.step)
                        if name == "close" and args and isinstance(args[0], int):
                            self.unclosed.append(args[0])
                            self.fds.pop(args[0], None)
                        raise OSError(self.err, f"{os.strerror(self.err)} (injected)", what)
            result = (fake or orig)(*args, **kwargs)
            if name in ("open_rw", "open_append") and isinstance(result, int):
                self.fds[result] = str(args[0])
            elif name == "dup" and isinstance(result, int):
                self.fds[result] = self.fds.get(args[0], f"fd {args[0]}") + " (dup)"
            elif name == "close" and args:
                self.fds.pop(args[0], None)
            return result

        hook.__name__ = name
        return hook

    def describe(self, last: int = 12) -> str:
        """The calls up to the fault (or the last ones), for failure messages."""
        upto = self.fired.call_no if self.fired else len(self.trace)
        lines = [f"    #{n} {call}({what})" for n, call, what in self.trace[max(0, upto - last) : upto]]
        return "\n".join(lines)


def _fake_sync(name: str) -> Callable:
    if name == "sync_dir":

        def sync_dir(path: str) -> None:
            if not os.path.isdir(path):
                raise FileNotFoundError(errno.ENOENT, "No such directory", path)

        return sync_dir

    def datasync(fd: int) -> None:
        os.fstat(fd)  # still fails like fdatasync on a bad fd

    return datasync


def _write_file_durably_fast(path: str, data: bytes) -> None:
    """``_fs.write_file_durably`` without the syncs (used while the layer fakes syncs)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# =========================================================================== the sweep

NAME = "q"
DEAD = NAME + ".dead"
INF = float("inf")
TTL = 0.005  # seconds; a ttl lease is waited out within its step


def item(i: int) -> tuple[int, bytes]:
    return (i, bytes([i % 251]) * (i * 7 % 29))


def ident(x: Any) -> int:
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], int) and x == item(x[0]):
        return x[0]
    raise AssertionError(f"damaged item {x!r:.100}")


@dataclass
class Workload:
    name: str
    steps: list[tuple]  # run under faults, after the open (itself a step)
    setup: list[tuple] = field(default_factory=list)  # run without faults on the fresh queue, then closed
    crash: bool = False  # leave the setup as a crash would (copy the files while the handle is open)
    turbo: bool = False
    max_deliveries: int = 0
    segment_size: int = 3


def _mixed(seed: int, n: int, turbo: bool) -> list[tuple]:
    import random

    rng = random.Random(seed)
    choices = ["E", "E", "E", ("EM", 3), "D", ("DM", 2), "L", ("LM", 3), "A", "AQ", "AM", "R", ("RM",), "PK"]
    if turbo:
        choices += ["TS", "TS", "TOFF", "TON"]
    else:
        choices += ["REOPEN"]
    steps = []
    for _ in range(n):
        c = rng.choice(choices)
        steps.append(c if isinstance(c, tuple) else (c,))
    return steps


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("enqueue", [("E",)] * 10),
        Workload("dequeue", [("D",)] * 5 + [("E",)] * 2 + [("D",)] * 7, setup=[("E",)] * 10),
        Workload(
            "batches",
            [("EM", 4), ("EM", 5), ("DM", 2), ("EM", 3), ("DM", 4), ("DM", 7), ("EM", 7), ("DM", 20)],
        ),
        Workload(
            "lease_ack",
            [
                ("L",),
                ("A",),
                ("L",),
                ("L",),
                ("AQ",),
                ("A",),
                ("L",),
                ("L",),
                ("L",),
                ("A",),
                ("AQ",),
                ("A",),
                ("E",),
                ("L",),
                ("A",),
                ("L",),
                ("A",),
            ],
            setup=[("E",)] * 9,
        ),
        Workload(
            "lease_many_ack_many",
            [("LM", 4), ("AM", 2), ("LM", 5), ("AM", 9), ("EM", 4), ("LM", 6), ("AM", 9)],
            setup=[("E",)] * 10,
        ),
        Workload(
            "release",
            [
                ("L",),
                ("L",),
                ("R", -1),
                ("L",),
                ("R", 0),
                ("D",),
                ("L",),
                ("L",),
                ("A",),
                ("RM",),
                ("D",),
                ("L",),
                ("A",),
                ("DM", 9),
                ("E",),
                ("L",),
                ("R", 0),
                ("D",),
            ],
            setup=[("E",)] * 8,
        ),
        Workload(
            "ttl",
            [("LT",), ("L",), ("LT",), ("A",), ("D",), ("LT",), ("L",), ("L",), ("A",), ("A",), ("D",), ("DM", 5)],
            setup=[("E",)] * 8,
        ),
        Workload(
            "dead_letter",
            [("L",), ("R", 0), ("L",), ("A",), ("L",), ("L",), ("R", -1), ("R", 0), ("D",), ("L",), ("R", 0), ("D",)],
            setup=[("E",)] * 8,
            max_deliveries=1,
        ),
        Workload(
            "open_after_crash",
            [("D",), ("D",), ("E",), ("L",), ("A",), ("D",), ("DM", 9)],
            setup=[("E",)] * 11 + [("D",), ("D",), ("L",), ("L",), ("A", 0), ("L",)],
            crash=True,
        ),
        Workload(
            "open_crash_dead_letters",
            [("D",), ("L",), ("R", 0), ("DM", 9)],
            setup=[("E",)] * 9 + [("L",), ("L",), ("R", 0), ("D",), ("L",), ("L",)],
            crash=True,
            max_deliveries=2,
        ),
        Workload(
            "reopen",
            [("E",), ("L",), ("REOPEN",), ("D",), ("L",), ("E",), ("REOPEN",), ("A",), ("DM", 3), ("REOPEN",), ("D",)],
            setup=[("E",)] * 7,
        ),
        Workload(
            "turbo",
            [("E",)] * 8
            + [("EM", 5), ("D",), ("DM", 4), ("L",), ("A",), ("TS",), ("E",), ("LM", 3), ("AM", 3), ("DM", 9), ("E",)],
            turbo=True,
        ),
        Workload(
            "turbo_switch",
            [
                ("E",),
                ("E",),
                ("TOFF",),
                ("E",),
                ("D",),
                ("TON",),
                ("EM", 4),
                ("L",),
                ("D",),
                ("TS",),
                ("A",),
                ("TOFF",),
                ("D",),
                ("TON",),
                ("DM", 9),
            ],
            setup=[("E",)] * 5,
            turbo=True,
        ),
        Workload("mixed", _mixed(11, 36, False), setup=[("E",)] * 6),
        Workload("mixed_turbo", _mixed(12, 36, True), setup=[("E",)] * 6, turbo=True),
    )
}


class Stop(Exception):
    """The workload cannot go on with this handle (poisoned, or derailed): close, reopen and check."""


@dataclass
class Result:
    workload: str
    mode: str
    n: int | None
    fault: Fault | None = None
    calls: int = 0  # counted calls the run made (with n=None: the sweep's range)
    lost: int = 0
    duplicated: int = 0
    miscounted: int = 0
    wrong_errors: int = 0
    not_poisoned: int = 0
    order: int = 0
    problems: list[str] = field(default_factory=list)
    trace: str = ""
    base: str = ""  # the run's directory, left out of the paths in reports

    @property
    def clean(self) -> bool:
        return not self.problems

    def headline(self) -> str:
        fault = str(self.fault) if self.fault else "no fault"
        return f"{self.workload} mode={self.mode} N={self.n}: {fault}"

    def report(self) -> str:
        lines = [self.headline()] + [f"  - {p}" for p in self.problems]
        if self.trace:
            lines.append("  calls before the fault:\n" + self.trace)
        text = "\n".join(lines)
        return text.replace(self.base + os.sep, "") if self.base else text


class Model:
    """What the calls that returned say: ready items, leases, dead letters.

    Ids are handed out in enqueue order, so dque's order is the ids' order:
    a released (or expired, or outstanding at a close) lease's item goes back
    among the ready items in its original place, ahead of newer ones, which is
    where ``insort`` puts it. With ``max_deliveries``, an item released after
    that many deliveries, or found at an open with that many, is a dead letter.
    """

    def __init__(self, max_deliveries: int) -> None:
        self.max_deliveries = max_deliveries
        self.next_id = 1
        self.ready: list[int] = []
        self.leases: dict[int, tuple[Any, int, bool]] = {}  # lease id -> (Lease, item id, has ttl), oldest first
        self.deliveries: dict[int, int] = {}
        self.dead: list[int] = []
        self.gone: set[int] = set()  # removed by a call that returned (dequeued, acked)
        self.failed: set[int] = set()  # handed to an enqueue that failed (and was not retried successfully)
        self.maybe_present: set[int] = set()  # may or may not be in the queue at the end
        self.maybe_dead: set[int] = set()  # may be in the dead-letter queue, the main queue, or both
        self.uncertain_deliveries: set[int] = set()
        self.turbo = False
        self.unsynced: set[int] = set()  # (turbo) ids added or removed since the last sync that returned

    def new_ids(self, k: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + k))
        self.next_id += k
        return ids

    def touched(self, ids: list[int]) -> None:
        if self.turbo:
            self.unsynced.update(ids)

    def add(self, ids: list[int]) -> None:
        for i in ids:
            bisect.insort(self.ready, i)
            self.failed.discard(i)
        self.touched(ids)

    def leased_items(self) -> list[int]:
        return [i for _, i, _ in self.leases.values()]

    def back(self, i: int) -> None:
        """A lease ended without an ack: the item is ready again, or a dead letter."""
        if self.max_deliveries and self.deliveries.get(i, 0) >= self.max_deliveries:
            self.dead.append(i)
        else:
            bisect.insort(self.ready, i)

    def reopened(self) -> None:
        """The handle closed (leases fall back) and a new one opened (items handed out too often are screened)."""
        for _, i, _ in self.leases.values():
            bisect.insort(self.ready, i)
        self.leases.clear()
        if self.max_deliveries:
            keep = []
            for i in self.ready:
                if self.deliveries.get(i, 0) >= self.max_deliveries:
                    self.dead.append(i)
                else:
                    keep.append(i)
            self.ready = keep


def _copytree(src: str, dst: str) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.lock", "lock"))


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


class Runner:
    """One run of a workload with (at most) one fault, checked against the model.

    The rules:

    * a call that returns updates the model (a dequeue must return the model's
      head, a lease its next item with ``deliveries`` one more than before);
    * a call that raises must raise an OSError or a DQueError (anything else is
      a wrong error), and, for a fault that is not a sync, must have changed
      nothing: the counts (``size()``, ``in_flight()``) still match the model,
      and the same call, tried again (the fault is gone), succeeds and does
      what it would have done (same item ids for an enqueue: an item the failed
      call stored anyway shows up twice);
      If the retry raises, the model still stands (the failed call was to
      change nothing) and the workload stops: what the retry could not do is
      held against the queue at the end;
    * a failed sync poisons the handle: the next call (an enqueue) must raise
      (an OSError or a DQueError, any class); the workload stops there (the
      handle is closed, which may raise). The items of the failed call may or
      may not be there at the end (a dequeue's or ack's items may come back,
      an enqueue's may be missing), and so may, in turbo mode, the changes
      made since the last sync that returned; a lease's delivery may or may
      not be counted (so, with ``max_deliveries``, the item may be a dead
      letter). Everything else is held to the model. A failed sync in the
      dead-letter queue's files (during a release) does not require the main
      handle to be poisoned. ``open`` and ``close`` have no handle to poison:
      a failed open is tried again, a failed close is followed by the reopen;
    * at the end (the workload's last step closes the handle, a step that may
      fail too) the queue is opened without faults, every item is drained
      under a lease (checking ``deliveries``) and acked, the dead-letter queue
      is drained, and both are compared with the model: nothing lost, nothing
      twice, nothing a returned call removed comes back, FIFO order (released
      items back in their original place).
    """

    def __init__(self, workload: Workload, mode: str, n: int | None, base: str) -> None:
        self.w = workload
        self.mode = mode
        self.n = n
        self.base = base
        self.res = Result(workload.name, mode, n, base=os.path.abspath(base))
        self.model = Model(workload.max_deliveries)
        self.q: Any = None
        kind = "sync" if mode == "sync" else "errno"
        self.layer = FaultLayer(kind=kind, err=ERRNOS.get(mode, errno.EIO), fail_at=n)
        self.fault_seen = False  # the fault has fired and been dealt with

    # ------------------------------------------------------------ reporting

    def problem(self, what: str, text: str, count: int = 1) -> None:
        if what == "order" and self.res.order:
            return  # once the order is off, every later take is off too: count the run once
        setattr(self.res, what, getattr(self.res, what) + count)
        self.res.problems.append(f"{what}: {text}")

    # ------------------------------------------------------------ setup

    def prepare(self, template_root: str) -> str:
        """The queue directory the run starts from (a copy of the workload's template)."""
        tpl = os.path.join(template_root, self.w.name)
        if not os.path.isdir(tpl):
            tmp = tpl + f".building-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            q = dque.new(NAME, tmp, segment_size=self.w.segment_size, max_deliveries=self.w.max_deliveries)
            self.q = q
            for step in self.w.setup:
                self.run_step(step, setup=True)
            if self.w.crash:
                snap = tmp + ".crash"
                _copytree(tmp, snap)
                q.close()
                shutil.rmtree(tmp)
                os.rename(snap, tmp)
            else:
                q.close()
            self.q = None
            with open(os.path.join(tmp, "model.txt"), "w") as f:
                m = self.model
                f.write(repr((m.next_id, m.ready, m.leased_items(), m.deliveries, m.dead)))
            try:
                os.rename(tmp, tpl)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # another worker made it first
        with open(os.path.join(tpl, "model.txt")) as f:
            next_id, ready, leased, deliveries, dead = eval(f.read())  # noqa: S307 - our own repr
        m = self.model = Model(self.w.max_deliveries)
        m.next_id, m.ready, m.deliveries, m.dead = next_id, ready, deliveries, dead
        for i in leased:  # outstanding at the crash (or the close): back at open
            bisect.insort(m.ready, i)
        if m.max_deliveries:
            m.reopened()  # items handed out too often go to the dead letters at open
        work = os.path.join(self.base, "run")
        shutil.rmtree(work, ignore_errors=True)
        _copytree(tpl, work)
        os.remove(os.path.join(work, "model.txt"))
        return work

    # ------------------------------------------------------------ the run

    def run(self, template_root: str) -> Result:
        work = self.prepare(template_root)
        fds_before = _fd_count()
        try:
            saved_wfd = _fs.write_file_durably
            _fs.write_file_durably = _write_file_durably_fast  # (wrapped by the layer like the rest)
            try:
                with self.layer.installed():
                    try:
                        self.open_step(work, "open", self.w.turbo)
                        for k, step in enumerate(self.w.steps):
                            self.layer.step = f"step {k} {step_text(step)}"
                            self.run_step(step)
                        self.layer.step = "close"
                        self.close_step("close")
                    except Stop:
                        pass
                    finally:
                        if self.q is not None and not self.q.closed:
                            self.layer.step = "close (after stop)"
                            with contextlib.suppress(Exception):
                                self.q.close()
                        self.q = None
            finally:
                _fs.write_file_durably = saved_wfd
            self.res.fault = self.layer.fired
            self.res.calls = self.layer.counted
            if self.layer.fired is not None and self.res.problems:
                self.res.trace = self.layer.describe()
            self.final_check(work)
        finally:
            if self.q is not None:
                with contextlib.suppress(Exception):
                    self.q.close()
        fds_after = _fd_count()
        if fds_before >= 0 and fds_after > fds_before:
            self.res.problems.append(f"note: {fds_after - fds_before} fd(s) left open after the run")
        if self.res.fault is not None and self.res.problems:
            self.res.trace = self.res.trace or self.layer.describe()
        return self.res

    # ------------------------------------------------------------ calls

    def fired_now(self) -> bool:
        return self.layer.fired is not None and not self.fault_seen

    def call(self, label: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, value) if ``fn()`` returned; (False, error text) if it raised.

        An error of a wrong type (not OSError or DQueError) is recorded; so is
        any error when no fault was injected during the call.
        """
        try:
            return True, fn()
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            right = isinstance(exc, (OSError, dque.DQueError))
            del exc  # keep no traceback (it would keep a half-made handle alive)
        if not self.fired_now():
            self.problem("wrong_errors", f"{label} raised {text} with no fault injected in it")
        elif not right:
            self.problem("wrong_errors", f"{label} failed with {text} (want an OSError or a DQueError)")
        return False, text

    def attempt(
        self,
        label: str,
        fn: Callable[[], Any],
        apply: Callable[[Any], None],
        *,
        maybe_present: list[int] = (),
        maybe_dead: list[int] = (),
        maybe_delivered: list[int] = (),
    ) -> None:
        """Run one API call under the rules (see the class docstring)."""
        maybe = (maybe_present, maybe_dead, maybe_delivered)
        ok, value = self.call(label, fn)
        if ok:
            apply(value)
            if self.fired_now():
                self.fault_seen = True  # swallowed by the engine: the call returned, so it happened
                self.check_counts(f"after {label}, which returned despite the fault")
            return
        if not self.fired_now():  # an error with no fault in this call (recorded): the model stands
            raise Stop
        self.fault_seen = True
        fault = self.layer.fired
        if is_sync(fault.name):
            self.poisoned(label, fault, *maybe)
        self.check_counts(f"after the failed {label}")
        ok, value = self.call(label + " (tried again, without the fault)", fn)
        if ok:
            apply(value)
            return
        # The failed call was to change nothing, so the model stands as it is: what the
        # retry could not do (an item it could not take, a lease it could not end) is
        # held against the queue at the end.
        raise Stop

    def uncertain(self, maybe_present: list[int], maybe_dead: list[int], maybe_delivered: list[int]) -> None:
        m = self.model
        m.maybe_present.update(maybe_present)
        m.maybe_dead.update(maybe_dead)
        m.uncertain_deliveries.update(maybe_delivered)
        if m.max_deliveries:  # a delivery that may have been counted may make it a dead letter at open
            m.maybe_dead.update(i for i in maybe_delivered if m.deliveries.get(i, 0) + 1 >= m.max_deliveries)
        if m.turbo:
            m.maybe_present.update(m.unsynced)

    def poisoned(self, label: str, fault: Fault, maybe_present, maybe_dead, maybe_delivered) -> None:
        self.uncertain(maybe_present, maybe_dead, maybe_delivered)
        main_dir = os.path.join(self.q_dir, "")
        if self.q is not None and not self.q.closed and (fault.what + os.sep).startswith(main_dir):
            probe = self.model.new_ids(1)[0]
            try:
                self.q.enqueue(item(probe))
            except (OSError, dque.DQueError):
                pass
            except Exception as exc:
                self.problem("wrong_errors", f"enqueue on the poisoned handle raised {type(exc).__name__}: {exc}")
            else:
                self.model.add([probe])
                self.problem(
                    "not_poisoned", f"after the failed sync in {label}, an enqueue on the same handle returned"
                )
        raise Stop

    def check_counts(self, when: str) -> None:
        q, m = self.q, self.model
        if q is None or q.closed:
            return
        try:
            size, out = q.size(), q.in_flight()
        except Exception as exc:
            self.problem("miscounted", f"{when}: size()/in_flight() raised {type(exc).__name__}: {exc}")
            raise Stop from None
        if (size, out) != (len(m.ready), len(m.leases)):
            self.problem(
                "miscounted",
                f"{when}: size()={size}, in_flight()={out}; the model has {len(m.ready)} ready {m.ready[:8]}, "
                f"{len(m.leases)} leased {m.leased_items()[:8]}",
            )

    # ------------------------------------------------------------ steps

    @property
    def q_dir(self) -> str:
        return os.path.join(self.work, NAME)

    def open_step(self, work: str, label: str, turbo: bool) -> None:
        self.work = work

        def opener() -> Any:
            return dque.open(NAME, work)

        self.layer.step = label
        ok, q = self.call(label, opener)
        if not ok:
            if not self.fired_now():
                raise Stop
            self.fault_seen = True
            ok, q = self.call(label + " (tried again, without the fault)", opener)
            if not ok:
                raise Stop
        self.q = q
        if turbo:
            q.turbo_on(max_delay=INF)  # no background thread: every call is made by the workload
        self.model.turbo = q.turbo
        if self.fired_now():
            self.fault_seen = True
        self.check_counts(f"after {label}")

    def close_step(self, label: str) -> None:
        q, m = self.q, self.model
        ok, _ = self.call(label, q.close)
        if not ok:
            if not self.fired_now():
                raise Stop
            self.fault_seen = True
            fault = self.layer.fired
            if is_sync(fault.name) and m.turbo:
                m.maybe_present.update(m.unsynced)
            if not q.closed:
                self.problem("wrong_errors", f"{label} raised and left the handle open")
                with contextlib.suppress(Exception):
                    q.close()
            if is_sync(fault.name):
                self.q = None
                raise Stop  # what is on disk is partly uncertain now: straight to the final check
        elif self.fired_now():
            self.fault_seen = True
        m.unsynced.clear()
        self.q = None

    def run_step(self, step: tuple, setup: bool = False) -> None:
        op = step[0]
        q, m = self.q, self.model
        label = step_text(step)
        if setup:  # no faults, no checks: just build the state

            def attempt(label, fn, apply, **kw):  # noqa: ANN001, ANN202
                apply(fn())

        else:
            attempt = self.attempt

        if op == "E":
            ids = m.new_ids(1)
            m.failed.update(ids)
            attempt(label, lambda: q.enqueue(item(ids[0])), lambda _: m.add(ids), maybe_present=ids)
        elif op == "EM":
            ids = m.new_ids(step[1])
            m.failed.update(ids)
            attempt(label, lambda: q.enqueue_many([item(i) for i in ids]), lambda _: m.add(ids), maybe_present=ids)
        elif op == "D":
            if not m.ready:
                return
            head = m.ready[:1]
            attempt(label, q.dequeue, lambda x: self.took([ident(x)], label), maybe_present=head)
        elif op == "DM":
            if not m.ready:
                return
            want = m.ready[: step[1]]
            attempt(
                label,
                lambda: q.dequeue_many(step[1]),
                lambda xs: self.took([ident(x) for x in xs], label, batch=step[1]),
                maybe_present=want,
            )
        elif op == "PK":
            if not m.ready:
                return
            attempt(label, q.peek, lambda x: self.peeked(ident(x)))
        elif op in ("L", "LT"):
            if not m.ready:
                return
            ttl = TTL if op == "LT" else None
            head = m.ready[:1]
            attempt(
                label,
                lambda: q.lease(block=False, ttl=ttl),
                lambda lease: self.leased([lease], label, ttl),
                maybe_delivered=head,
            )
        elif op == "LM":
            if not m.ready:
                return
            want = m.ready[: step[1]]
            attempt(
                label,
                lambda: q.lease_many(step[1]),
                lambda ls: self.leased(ls, label, None, batch=step[1]),
                maybe_delivered=want,
            )
        elif op in ("A", "AQ"):
            lid = self.pick_lease(step[1] if len(step) > 1 else 0)
            if lid is None:
                return
            lease, i, _ = m.leases[lid]
            fn = lease.ack if op == "A" else (lambda: q.ack(lid))
            attempt(label, fn, lambda _: self.acked([lid]), maybe_present=[i])
        elif op == "AM":
            lids = [lid for lid, (_, _, ttl) in m.leases.items() if not ttl][: step[1] if len(step) > 1 else None]
            if not lids:
                return
            items_ = [m.leases[lid][1] for lid in lids]
            attempt(label, lambda: q.ack_many(lids), lambda _: self.acked(lids), maybe_present=items_)
        elif op == "R":
            lid = self.pick_lease(step[1] if len(step) > 1 else 0)
            if lid is None:
                return
            lease, i, _ = m.leases[lid]
            attempt(label, lease.release, lambda _: self.released([lid]), maybe_present=[i], maybe_dead=[i])
        elif op == "RM":
            lids = [lid for lid, (_, _, ttl) in m.leases.items() if not ttl]
            if not lids:
                return
            items_ = [m.leases[lid][1] for lid in lids]
            attempt(
                label,
                lambda: q.release_many(lids),
                lambda _: self.released(lids),
                maybe_present=items_,
                maybe_dead=items_,
            )
        elif op == "TS":
            attempt(label, q.turbo_sync, lambda _: m.unsynced.clear())
        elif op == "TOFF":

            def off(_: Any) -> None:
                m.turbo = False
                m.unsynced.clear()

            attempt(label, q.turbo_off, off)
        elif op == "TON":

            def on(_: Any) -> None:
                m.turbo = True

            attempt(label, lambda: q.turbo_on(max_delay=INF), on)
        elif op == "REOPEN":
            turbo = m.turbo
            self.close_step(label + ": close")
            m.reopened()
            self.open_step(self.work, label + ": open", turbo)
        else:
            raise ValueError(f"unknown step {step!r}")

    def pick_lease(self, which: int) -> int | None:
        lids = [lid for lid, (_, _, ttl) in self.model.leases.items() if not ttl]
        if not lids:
            return None
        return lids[which] if -len(lids) <= which < len(lids) else lids[0]

    # ------------------------------------------------------------ the model's updates

    def took(self, ids: list[int], label: str, batch: int = 1) -> None:
        m = self.model
        want = m.ready[: len(ids)]
        if ids != want:
            self.problem("order", f"{label} returned {ids}, the model's head is {m.ready[: len(ids) + 3]}")
        if not ids and m.ready:
            self.problem("wrong_errors", f"{label} returned nothing with {len(m.ready)} ready")
        for i in ids:
            if i in m.ready:
                m.ready.remove(i)
            else:
                self.problem("duplicated", f"{label} returned item {i}, which is not in the queue")
            m.gone.add(i)
        m.touched(ids)

    def peeked(self, i: int) -> None:
        if not self.model.ready or i != self.model.ready[0]:
            self.problem("order", f"peek returned {i}, the model's head is {self.model.ready[:3]}")

    def leased(self, leases: list[Any], label: str, ttl: float | None, batch: int = 1) -> None:
        m = self.model
        ids = [ident(lease.item) for lease in leases]
        want = m.ready[: len(ids)]
        if ids != want:
            self.problem("order", f"{label} handed out {ids}, the model's head is {m.ready[: len(ids) + 3]}")
        for lease, i in zip(leases, ids, strict=True):
            if i in m.ready:
                m.ready.remove(i)
            else:
                self.problem("duplicated", f"{label} handed out item {i}, which is not ready")
            was = m.deliveries.get(i, 0)
            if lease.deliveries != was + 1 and i not in m.uncertain_deliveries:
                self.problem("miscounted", f"{label}: item {i} has deliveries {lease.deliveries}, want {was + 1}")
            m.deliveries[i] = lease.deliveries
            m.uncertain_deliveries.discard(i)
            m.leases[lease.id] = (lease, i, ttl is not None)
        if ttl is not None:
            self.wait_expired(label)

    def wait_expired(self, label: str) -> None:
        m, q = self.model, self.q
        ttl_ids = [lid for lid, (_, _, ttl) in m.leases.items() if ttl]
        want = len(m.leases) - len(ttl_ids)
        deadline = time.monotonic() + (0.05 if self.res.miscounted else 2.0)  # (counts off: no use waiting)
        while q.in_flight() != want:
            if time.monotonic() > deadline:
                if not self.res.miscounted:  # (if the counts are off already, that is the problem)
                    self.problem("wrong_errors", f"{label}: in_flight() is not {want} 2 s after the ttl ran out")
                    raise Stop
                break
            time.sleep(TTL / 2)
        self.back([m.leases.pop(lid)[1] for lid in ttl_ids])

    def acked(self, lids: list[int]) -> None:
        m = self.model
        for lid in lids:
            _, i, _ = m.leases.pop(lid)
            m.gone.add(i)
            m.touched([i])

    def released(self, lids: list[int]) -> None:
        m = self.model
        items_ = [m.leases.pop(lid)[1] for lid in lids]
        self.back(items_)
        m.touched(items_)

    def back(self, items_: list[int]) -> None:
        """Leases of ``items_`` ended without an ack (released, expired).

        An item due to the dead-letter queue whose move failed (a fault in the
        dead-letter queue's files) stays in this queue, ready again: that is
        the contract. Which it was is read off ``size()``: all moved, or all
        stayed; anything in between is left open (ready, and maybe a dead letter).
        """
        m = self.model
        due = [i for i in items_ if m.max_deliveries and m.deliveries.get(i, 0) >= m.max_deliveries]
        for i in items_:
            if i not in due:
                m.back(i)
        if not due:
            return
        stayed = len(due) if self.layer.fired is not None and self.q is not None else 0
        if stayed:
            try:
                stayed = self.q.size() - len(m.ready)
            except (OSError, dque.DQueError):
                stayed = 0
        if stayed <= 0:
            m.dead.extend(due)
            return
        for i in due:
            bisect.insort(m.ready, i)
        if stayed != len(due) or is_sync(self.layer.fired.name):
            # (a failed sync in the dead-letter queue: the item may be there as well, as after a
            # crash between the move and the ACK here, which the README documents)
            m.maybe_dead.update(due)

    # ------------------------------------------------------------ the end

    def final_check(self, work: str) -> None:
        m = self.model
        m.reopened()  # the last handle is closed: leases fall back
        got: list[int] = []
        deliveries: dict[int, int] = {}
        try:
            q = dque.open(NAME, work)
        except Exception as exc:
            self.problem("wrong_errors", f"the queue does not open after the run: {type(exc).__name__}: {exc}")
            return
        self.q = q
        try:
            if not (m.maybe_present or m.maybe_dead) and q.size() != len(m.ready):
                self.problem("miscounted", f"size() at the final open is {q.size()}, the model has {len(m.ready)}")
            for _ in range(50):
                try:
                    leases = q.lease_many(1000)
                except dque.CorruptedError as exc:
                    self.problem("wrong_errors", f"draining found damage: {exc}")
                    continue
                if not leases:
                    break
                for lease in leases:
                    i = ident(lease.item)
                    got.append(i)
                    deliveries[i] = lease.deliveries
                q.ack_many([lease.id for lease in leases])
            q.close()
        except Exception as exc:
            self.problem("wrong_errors", f"draining after the run raised {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                q.close()
            self.q = None
        dead: list[int] = []
        if os.path.exists(os.path.join(work, DEAD, "dque.json")):
            try:
                with dque.open(DEAD, work) as dq:
                    dead = [ident(x) for x in dq.dequeue_many(100000)]
            except Exception as exc:
                self.problem("wrong_errors", f"the dead-letter queue: {type(exc).__name__}: {exc}")
        self.compare(got, deliveries, dead)

    def compare(self, got: list[int], deliveries: dict[int, int], dead: list[int]) -> None:
        m = self.model
        seen: set[int] = set()
        twice = sorted({i for i in got if i in seen or seen.add(i)})
        dead_set = set(dead)
        dead_twice = sorted({i for i in dead if dead.count(i) > 1} - m.maybe_dead)
        expected = set(m.ready)
        maybe = m.maybe_present | m.maybe_dead
        lost = sorted((expected - seen - maybe) | {i for i in m.maybe_dead - m.gone if i not in seen and i not in dead_set})
        came_back = sorted((seen - expected - maybe) & m.gone)
        failed_in = sorted((seen - expected - maybe) & m.failed)
        strays = sorted(seen - expected - maybe - m.gone - m.failed)
        expected_dead = set(m.dead)
        dead_lost = sorted(expected_dead - dead_set - m.maybe_dead - m.maybe_present)
        dead_extra = sorted(dead_set - expected_dead - m.maybe_dead)
        in_both = sorted((dead_set & seen) - m.maybe_dead)
        where = f"\n      drained: {got}\n      model:   {m.ready}" + (f" (maybe: {sorted(maybe)})" if maybe else "")
        if dead or m.dead:
            where += f"\n      dead letters: {dead}, model {m.dead}"
        if lost or dead_lost:
            self.problem("lost", f"items missing {lost + dead_lost}{where}", len(lost) + len(dead_lost))
        if twice or dead_twice:
            self.problem("duplicated", f"items twice {twice + dead_twice}{where}", len(twice) + len(dead_twice))
        if came_back:
            self.problem(
                "duplicated", f"items removed by calls that returned came back {came_back}{where}", len(came_back)
            )
        if failed_in:
            self.problem("duplicated", f"items of an enqueue that raised are there {failed_in}{where}", len(failed_in))
        if strays:
            self.problem("duplicated", f"items never enqueued {strays}{where}", len(strays))
        if dead_extra:
            self.problem("duplicated", f"unexpected dead letters {dead_extra}{where}", len(dead_extra))
        if in_both:
            self.problem("duplicated", f"items in both the queue and the dead letters {in_both}{where}", len(in_both))
        unique = [i for i in got if i not in set(twice)]
        if unique != sorted(unique):
            self.problem("order", f"out of order{where}")
        bad = {
            i: (n, m.deliveries.get(i, 0) + 1)
            for i, n in deliveries.items()
            if i in expected and i not in m.uncertain_deliveries and n != m.deliveries.get(i, 0) + 1
        }
        if bad:
            self.problem("miscounted", f"deliveries at the final drain (got, want): {bad}")


def step_text(step: tuple) -> str:
    names = {
        "E": "enqueue",
        "EM": "enqueue_many",
        "D": "dequeue",
        "DM": "dequeue_many",
        "PK": "peek",
        "L": "lease",
        "LT": "lease(ttl)",
        "LM": "lease_many",
        "A": "Lease.ack",
        "AQ": "q.ack",
        "AM": "ack_many",
        "R": "Lease.release",
        "RM": "release_many",
        "TS": "turbo_sync",
        "TOFF": "turbo_off",
        "TON": "turbo_on",
        "REOPEN": "close+open",
    }
    name = names.get(step[0], step[0])
    return f"{name}({', '.join(map(str, step[1:]))})" if len(step) > 1 else name


def run_once(workload: str | Workload, mode: str, n: int | None, base: str, template_root: str | None = None) -> Result:
    """One run of ``workload`` with the ``n``-th call of ``mode``'s kind failing (None: no fault)."""
    w = WORKLOADS[workload] if isinstance(workload, str) else workload
    template_root = template_root or os.path.join(base, "templates")
    os.makedirs(template_root, exist_ok=True)
    runner = Runner(w, mode, n, base)
    return runner.run(template_root)


def sweep(
    workload: str,
    mode: str,
    base: str,
    *,
    stride: int = 1,
    start: int = 1,
    limit: int | None = None,
    template_root: str | None = None,
) -> tuple[int, list[Result]]:
    """Runs with the fault at n = start, start + stride, ... until a run does not reach call n.

    Returns (the number of calls of the kind in a fault-free run, the results).
    """
    base_run = run_once(workload, mode, None, base, template_root)
    total = base_run.calls
    results = [base_run] if base_run.problems else []
    n = start
    while n <= total and (limit is None or n < start + limit * stride):
        res = run_once(workload, mode, n, base, template_root)
        results.append(res)
        if res.fault is None:
            break
        n += stride
    return total, results
