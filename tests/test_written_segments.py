"""The items a handle keeps in memory of the segments it wrote (_store.cache, Segment.written).

Each test runs with the cache ('cache') and without it ('nocache': _store._CACHE_MAX = 0), and must
see the same: the cache is a copy, never a second truth. Written as an adversarial review of it.
"""

from __future__ import annotations

import pytest

import dque
from dque import _format, _fs, _store

_REAL_TRUNCATE = _fs.truncate
CACHE = pytest.mark.parametrize("cache", [True, False], ids=["cache", "nocache"])


def _set_cache(monkeypatch, cache: bool) -> None:
    if not cache:
        monkeypatch.setattr(_store, "_CACHE_MAX", 0)


def _fail_truncate_to(monkeypatch, size: int) -> list[int]:
    """Make the first truncate to ``size`` bytes fail (a failed trim), as the fault sweep's EIO would."""
    real = _fs.truncate
    failed: list[int] = []

    def failing(fd, n):  # noqa: ANN001, ANN202
        if n == size and not failed:
            failed.append(n)
            raise OSError(5, "Input/output error (injected)")
        return real(fd, n)

    monkeypatch.setattr(_fs, "truncate", failing)
    return failed


@CACHE
@pytest.mark.parametrize("turbo", [False, True], ids=["safe", "turbo"])
def test_failed_trim_leaving_exactly_seal_size_of_room_is_not_a_seal(tmp_path, monkeypatch, cache, turbo):
    """A rolled segment whose records end SEAL_SIZE bytes before its reserved room ends (64 KiB), and
    whose trim fails: its file is end + SEAL_SIZE bytes long, all zeros after the records. Taken for a
    seal, the head's DELETE records would go after the 20 zero bytes, where a scan stops, and after a
    reopen the items dequeued from it would come back (as they did before the fix)."""
    _set_cache(monkeypatch, cache)
    room = 64 << 10
    # records of segment 2 (and, safe mode, its seal) end at room - SEAL_SIZE
    target = room - _format.SEAL_SIZE - (0 if turbo else _format.SEAL_SIZE)
    big = 4000
    last = target - 16 * (_format.HEADER_SIZE + big) - _format.HEADER_SIZE
    assert 0 < last < _format.SMALL
    seg2 = [bytes([i]) * big for i in range(16)] + [b"L" * last]
    with dque.new("q", tmp_path, segment_size=17, serializer="bytes", turbo=turbo) as q:
        first = [b"a%d" % i for i in range(17)]
        q.enqueue_many(first)  # segment 1, the head, full
        for p in seg2:
            q.enqueue(p)  # segment 2: a fresh tail, not the head
        failed = _fail_truncate_to(monkeypatch, room - _format.SEAL_SIZE)
        q.enqueue(b"after")  # segment 2 rolls: its trim fails, 64 KiB on disk
        monkeypatch.setattr(_fs, "truncate", _REAL_TRUNCATE)
        assert failed
        assert q.dequeue_many(17) == first
        assert q.dequeue_many(5) == seg2[:5]  # segment 2 is the head: 5 DELETE records in it
        assert q.size() == 13
    with dque.open("q", tmp_path) as q:
        assert q.size() == 13
        assert q.dequeue_many(100) == seg2[5:] + [b"after"]



@CACHE
@pytest.mark.parametrize("segment_size", [1000, 10])
def test_memory_kept_for_written_segments_stays_within_the_budget(tmp_path, monkeypatch, cache, segment_size):
    """The budget (_CACHE_MAX, "up to 8 MiB") bounds the memory kept, not only the record bytes: a bytes
    object per item (33 bytes of header each) in a list per segment, in a dict (counting record bytes only,
    small items kept ~2.8x the budget at the default segment size, ~4x at segment_size=10, ~13x at 1)."""
    import tracemalloc

    budget = 1 << 20
    monkeypatch.setattr(_store, "_CACHE_MAX", budget if cache else 0)
    with dque.new("q", tmp_path, segment_size=segment_size, turbo=True) as q:
        q.enqueue(-1)  # the head keeps one item: every later segment is between head and tail
        tracemalloc.start()
        try:
            for i in range(60_000):  # ~1 MiB of records (17 bytes each)
                q.enqueue(i)
            kept, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert q._store.cached_bytes <= budget
        assert kept <= 1.5 * budget, f"{kept / 2**20:.1f} MiB kept for a {budget / 2**20:.0f} MiB budget"
