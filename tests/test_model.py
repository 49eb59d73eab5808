"""Model-based test: random operation sequences on a DQue, checked against ``collections.deque``.

Hypothesis drives a state machine through enqueue/dequeue/peek, the ``*_many``
calls, the ``queue.Queue`` aliases, close-and-reopen and turbo switching, with
segments of 1..4 items so that segment rollover (and deletion of used-up
segments) happens all the time. After every step the sizes, ``empty()``,
``full()`` and ``segment_numbers()`` must agree with the model, and the segment
files on disk must be exactly ``first..last`` with no more of them than the items
need; after a reopen the contents must be exactly the model's. A queue may be
bounded (``maxsize``), which the model follows too (``Full``, all-or-nothing
``enqueue_many``, the bound kept across reopen).

Each example works in its own temporary directory. 100 examples by default;
``DQUE_MODEL_EXAMPLES=3000`` explores further (about two minutes).
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import dque

NAME = "model"

# Values that compare equal after a pickle round trip (no floats: NaN != NaN),
# with payload sizes from a few bytes to a few hundred.
ITEMS = st.one_of(
    st.integers(),
    st.text(max_size=8),
    st.binary(max_size=300),
    st.none(),
    st.tuples(st.integers(0, 9), st.text(max_size=3)),
    st.lists(st.integers(0, 99), max_size=4),
)


class DQueModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="dque-model-")
        self.model: collections.deque = collections.deque()
        self.q: dque.DQue | None = None
        self.segment_size = 0
        self.maxsize = self.created_maxsize = 0

    # --- set-up and tear-down -------------------------------------------------

    @initialize(segment_size=st.integers(1, 4), turbo=st.booleans(), maxsize=st.sampled_from([0, 0, 0, 3, 7]))
    def create(self, segment_size: int, turbo: bool, maxsize: int) -> None:
        self.segment_size = segment_size
        self.maxsize = self.created_maxsize = maxsize
        self.q = dque.new(NAME, self.tmp, segment_size=segment_size, turbo=turbo, maxsize=maxsize)
        assert self.q.turbo is turbo

    def teardown(self) -> None:
        try:
            if self.q is not None:
                self.q.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def room(self) -> int:
        return self.maxsize - len(self.model) if self.maxsize else 1 << 30

    # --- adding -----------------------------------------------------------------

    @rule(item=ITEMS, how=st.sampled_from(["enqueue", "put_nowait", "put"]))
    def enqueue(self, item, how: str) -> None:
        if self.room() <= 0:
            try:
                if how == "put":
                    self.q.put(item, block=False)
                else:
                    getattr(self.q, how)(item)
            except dque.Full:
                return
            raise AssertionError(f"{how} on a full queue did not raise Full")
        if how == "put":
            self.q.put(item, timeout=10)  # there is room: must not block (Full after 10 s if it does)
        else:
            getattr(self.q, how)(item)
        self.model.append(item)

    @rule(items=st.lists(ITEMS, max_size=6))
    def enqueue_many(self, items: list) -> None:
        if items and len(items) > self.room():  # an empty batch is a no-op, even on a full queue
            try:
                self.q.enqueue_many(items)
            except dque.Full:
                return  # all or nothing: the invariant checks nothing went in
            raise AssertionError("enqueue_many past maxsize did not raise Full")
        self.q.enqueue_many(items)
        self.model.extend(items)

    # --- taking -----------------------------------------------------------------

    @rule(how=st.sampled_from(["dequeue", "get_nowait", "get", "dequeue_block", "peek", "peek_block"]))
    def take(self, how: str) -> None:
        call = {
            "dequeue": self.q.dequeue,
            "get_nowait": self.q.get_nowait,
            "get": lambda: self.q.get(block=False),
            "dequeue_block": lambda: self.q.dequeue_block(timeout=0),
            "peek": self.q.peek,
            "peek_block": lambda: self.q.peek_block(timeout=0),
        }[how]
        if not self.model:
            try:
                call()
            except dque.Empty:
                return
            raise AssertionError(f"{how} on an empty queue did not raise Empty")
        got = call()
        want = self.model[0] if how.startswith("peek") else self.model.popleft()
        assert got == want, (how, got, want)

    @rule(k=st.integers(0, 7))
    def dequeue_many(self, k: int) -> None:
        got = self.q.dequeue_many(k)
        want = [self.model.popleft() for _ in range(min(k, len(self.model)))]
        assert isinstance(got, list)
        assert got == want

    # --- handles and modes ------------------------------------------------------

    @rule(turbo=st.booleans(), how=st.sampled_from(["open", "new_or_open"]))
    def reopen(self, turbo: bool, how: str) -> None:
        self.q.close()
        self.q.close()  # idempotent
        self.q = getattr(dque, how)(NAME, self.tmp, turbo=turbo)
        self.maxsize = self.created_maxsize
        assert self.q.maxsize == self.maxsize
        assert self.q.turbo is turbo
        assert self.q.size() == len(self.model)
        if self.model:
            assert self.q.peek() == self.model[0]

    @rule(turbo=st.booleans())
    def reopen_and_drain(self, turbo: bool) -> None:
        """Reopen and compare the whole content, in order (which empties the model)."""
        self.q.close()
        self.q = dque.open(NAME, self.tmp, turbo=turbo)
        self.maxsize = self.created_maxsize
        n = len(self.model)
        got = self.q.dequeue_many(n + 1) if n else []
        assert got == list(self.model)
        self.model.clear()

    @rule(maxsize=st.integers(0, 8))
    def set_maxsize(self, maxsize: int) -> None:
        """``maxsize`` is settable in memory; a reopen brings back the one the queue was created with."""
        self.q.maxsize = maxsize
        self.maxsize = maxsize

    @rule(max_delay=st.sampled_from([None, 0.01, 5.0]))
    def turbo_on(self, max_delay) -> None:
        self.q.turbo_on() if max_delay is None else self.q.turbo_on(max_delay=max_delay)
        assert self.q.turbo is True

    @rule()
    def turbo_off(self) -> None:
        self.q.turbo_off()
        assert self.q.turbo is False

    @rule()
    def turbo_sync(self) -> None:
        self.q.turbo_sync()  # syncs now, in either mode

    # --- after every step -------------------------------------------------------

    @invariant()
    def sizes_agree(self) -> None:
        if self.q is None:
            return
        n = len(self.model)
        assert self.q.size() == n
        assert len(self.q) == n
        assert self.q.qsize() == n
        assert self.q.empty() is (n == 0)
        assert self.q.full() is (self.maxsize > 0 and n >= self.maxsize)

    @invariant()
    def segments_consistent(self) -> None:
        if self.q is None:
            return
        first, last = self.q.segment_numbers()
        assert 1 <= first <= last, (first, last)
        # n items need at most ceil(n / segment_size) segments, plus one that is
        # partly consumed at the front: anything more is a leaked segment.
        n = len(self.model)
        assert last - first + 1 <= -(-n // self.segment_size) + 1, (first, last, n, self.segment_size)
        on_disk = sorted(int(f[:-4]) for f in os.listdir(os.path.join(self.tmp, NAME)) if f.endswith(".seg"))
        live = list(range(first, last + 1))
        if self.q.turbo:
            # Turbo mode deletes used-up segment files in the background: older ones may linger.
            assert [n for n in on_disk if n >= first] == live, (on_disk, first, last)
        else:
            assert on_disk == live, (on_disk, first, last)


DQueModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("DQUE_MODEL_EXAMPLES", "100")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,  # shrink the first bug found, not every one (keeps a failing run short)
)
TestDQueModel = DQueModel.TestCase
