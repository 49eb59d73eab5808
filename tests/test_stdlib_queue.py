"""CPython's own queue tests (``Lib/test/test_queue.py``), run against DQue.

The tests are imported from the running interpreter (``from test import
test_queue``), not copied, so they follow the Python version under test. Of the
test classes in that file:

* ``BaseQueueTestMixin`` applies, all of it. It is what CPython's
  ``PyQueueTest``/``CQueueTest`` run on ``queue.Queue``: FIFO order, ``maxsize``
  with ``full()``/``Full``, blocking and timed ``put``/``get``,
  ``put_nowait``/``get_nowait``, ``task_done``/``join``, a ``maxsize`` shrunk at
  run time, and ``ValueError`` for a negative timeout. DQue implements that
  protocol, so it runs here once in safe mode and once in turbo mode, on a new
  queue in a fresh temporary directory for every ``type2test()`` call. Segments
  are tiny (4 items) so that rollover happens inside these tests too.
* ``BaseSimpleQueueTest`` mostly applies as well, though the brief for this file
  expected it not to: a ``SimpleQueue`` is an unbounded FIFO with ``put``/``get``,
  which DQue also is. It is run in turbo mode (50 producer and 50 consumer
  threads; safe mode gets its concurrency tests in ``test_concurrency.py``), less
  ``test_references``: it puts instances of a class local to the test, which
  the default pickle serializer cannot store, and the property it checks (the
  queue drops its reference to an item once the item is taken) holds trivially
  for a queue that stores copies. ``CSimpleQueueTest.test_reentrancy`` is not
  in the base class and is about C ``SimpleQueue`` re-entrancy (``put`` from
  ``__del__`` during a ``put``); it does not apply.
* ``LifoQueueTest`` and ``PriorityQueueTest`` run the same mixin but expect
  LIFO and priority order. DQue is FIFO only.
* ``FailingQueueTest`` subclasses ``queue.Queue`` and overrides its private
  ``_put``/``_get`` hooks to inject failures. DQue has no such hooks; faults are
  injected through ``dque._fs`` by the fault tests instead.

CPython's skip logic is kept: ``test_queue`` calls
``threading_helper.requires_working_threading(module=True)`` at import, which
raises ``unittest.SkipTest`` on a platform without working threads, and pytest
turns that into a skip of this module. A Python built without its ``test``
package (some distributions strip it) skips this module too.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import types
import unittest

import pytest

import dque

test_queue = pytest.importorskip("test.test_queue", reason="this Python has no test.test_queue")
threading_helper = pytest.importorskip("test.support.threading_helper")


class Queue(dque.DQue):
    """A DQue named like ``queue.Queue``.

    ``basic_queue_test`` looks up the expected order by ``q.__class__.__name__``
    (``Queue`` -> FIFO). ``DQue.new`` is a classmethod that constructs ``cls``,
    so ``Queue.new(...)`` makes one of these.
    """


class _DQueFactoryMixin:
    """Makes ``type2test`` a factory of new queues, each in its own temporary directory."""

    turbo = False
    segment_size = 4

    def setUp(self) -> None:
        tmp = tempfile.mkdtemp(prefix="dque-stdlib-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)  # runs last: cleanups are LIFO
        names = itertools.count()

        def factory(maxsize: int = 0) -> Queue:
            q = Queue.new(f"q{next(names)}", tmp, segment_size=self.segment_size, turbo=self.turbo, maxsize=maxsize)
            self.addCleanup(q.close)
            assert type(q) is Queue
            return q

        self.type2test = factory
        self.queue = types.SimpleNamespace(Empty=dque.Empty, Full=dque.Full, ShutDown=dque.ShutDown)
        super().setUp()


@threading_helper.requires_working_threading()
class DQueQueueTestSafe(_DQueFactoryMixin, test_queue.BaseQueueTestMixin, unittest.TestCase):
    turbo = False


@threading_helper.requires_working_threading()
class DQueQueueTestTurbo(_DQueFactoryMixin, test_queue.BaseQueueTestMixin, unittest.TestCase):
    turbo = True


@threading_helper.requires_working_threading()
class DQueSimpleQueueTestTurbo(_DQueFactoryMixin, test_queue.BaseSimpleQueueTest, unittest.TestCase):
    turbo = True
    segment_size = 50

    @unittest.skip("puts instances of a local class, which pickle cannot store; a copying queue keeps no references")
    def test_references(self) -> None:
        pass
