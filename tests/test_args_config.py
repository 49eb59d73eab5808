"""Odd arguments and a damaged ``dque.json``: clear typed errors at once, nothing lost.

* timeouts: ``inf`` and huge numbers wait (forever / as long as asked) instead
  of raising OverflowError once waiting; NaN is a ValueError before anything
  happens. Likewise ``ttl`` and ``max_delay``.
* the config: every field of ``dque.json`` is checked when the queue is
  opened; a bad one is a ConfigError naming the file, the field and the value.
"""

import json
import os
import threading

import pytest

import dque
from dque import _args, _config
from dque._queue import DEFAULT_SEGMENT_BYTES

INF = float("inf")
NAN = float("nan")
HUGE = 1e10  # more than threading.TIMEOUT_MAX (about 9.2e9 s)


# ------------------------------------------------------------------ timeouts


def _released_after(action, delay=0.2):
    """Run ``action`` in a thread ``delay`` seconds from now."""
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


def _wait_in_thread(q, call, patience=60.0):
    """``call()`` in a thread; its result or exception. Closes ``q`` (which frees the waiter) if it hangs."""
    out = {}

    def run():
        try:
            out["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(patience)
    if t.is_alive():
        q.close()
        t.join(10)
        raise AssertionError("the waiter never returned")
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("timeout", [INF, HUGE], ids=["inf", "1e10"])
@pytest.mark.parametrize("call", ["get", "dequeue_block", "peek_block", "lease"])
def test_taker_with_huge_timeout_waits_for_an_item(qdir, call, timeout):
    with dque.new("q", qdir) as q:
        timer = _released_after(lambda: q.put("x"))
        try:
            got = _wait_in_thread(q, lambda: getattr(q, call)(timeout=timeout))
        finally:
            timer.join()
        if call == "lease":
            assert got.item == "x"
            got.ack()
            assert q.size() == 0
        elif call == "peek_block":
            assert got == "x"
            assert q.size() == 1
        else:
            assert got == "x"
            assert q.size() == 0


@pytest.mark.parametrize("timeout", [INF, HUGE], ids=["inf", "1e10"])
def test_put_with_huge_timeout_waits_for_room(qdir, timeout):
    with dque.new("q", qdir, maxsize=1) as q:
        q.put("a")
        timer = _released_after(q.get)
        try:
            _wait_in_thread(q, lambda: q.put("b", timeout=timeout))
        finally:
            timer.join()
        assert q.dequeue() == "b"
        assert q.size() == 0


@pytest.mark.parametrize("timeout", [INF, HUGE], ids=["inf", "1e10"])
def test_huge_timeout_on_a_ready_queue_returns_at_once(qdir, timeout):
    with dque.new("q", qdir, maxsize=2) as q:
        q.put(1, timeout=timeout)
        assert q.peek_block(timeout=timeout) == 1
        assert q.get(timeout=timeout) == 1
        q.put(2, timeout=timeout)
        lease = q.lease(timeout=timeout)
        assert lease.item == 2
        lease.ack()


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get(timeout=NAN),
        lambda q: q.dequeue_block(timeout=NAN),
        lambda q: q.peek_block(timeout=NAN),
        lambda q: q.lease(timeout=NAN),
        lambda q: q.put("new", timeout=NAN),
    ],
    ids=["get", "dequeue_block", "peek_block", "lease", "put"],
)
@pytest.mark.parametrize("items", [0, 1], ids=["empty", "one-item"])
def test_nan_timeout_is_a_value_error_and_changes_nothing(qdir, call, items):
    with dque.new("q", qdir, maxsize=3) as q:
        for i in range(items):
            q.put(i)
        with pytest.raises(ValueError, match="NaN.*None"):
            _wait_in_thread(q, lambda: call(q), patience=10.0)  # (it used to spin forever)
        assert q.size() == items
        assert q.dequeue_many(5) == list(range(items))


def test_check_timeout_contract():
    for ok in (None, 0, 0.0, 1, 2.5, INF, HUGE, 10**30):
        _args.check_timeout(ok)
    with pytest.raises(ValueError, match="pass None to wait forever"):
        _args.check_timeout(NAN)
    with pytest.raises(ValueError):
        _args.check_timeout(-1)
    with pytest.raises(ValueError):
        _args.check_timeout(-INF)
    for bad in (True, "1", [1]):
        with pytest.raises(TypeError):
            _args.check_timeout(bad)


def test_check_seconds_contract():
    assert _args.check_seconds(2, "ttl") == 2.0
    assert _args.check_seconds(INF, "ttl") == INF
    for bad in (NAN, 0, -1.0, -INF):
        with pytest.raises(ValueError, match="ttl must be a number of seconds > 0"):
            _args.check_seconds(bad, "ttl")
    with pytest.raises(TypeError):
        _args.check_seconds("1", "ttl")
    with pytest.raises(TypeError):
        _args.check_seconds(True, "ttl")


def test_nan_ttl_is_a_value_error_and_changes_nothing(qdir):
    with dque.new("q", qdir) as q:
        q.put("a")
        with pytest.raises(ValueError):
            q.lease(ttl=NAN)
        with pytest.raises(ValueError):
            q.lease(timeout=1, ttl=NAN)
        with pytest.raises(ValueError):
            q.lease_many(3, ttl=NAN)
        assert q.size() == 1
        assert q.dequeue() == "a"


@pytest.mark.parametrize("ttl", [INF, HUGE, 1e300], ids=["inf", "1e10", "1e300"])
def test_unbounded_ttl_never_expires(qdir, ttl):
    with dque.new("q", qdir) as q:
        q.put("a")
        q.put("b")
        lease = q.lease(ttl=ttl)
        (other,) = q.lease_many(1, ttl=ttl)
        # The expiry thread runs with these deadlines (it wakes at least once a second).
        threading.Event().wait(0.2)
        assert q.size() == 0
        assert (lease.item, other.item) == ("a", "b")
        lease.ack()
        other.release()
        assert q.dequeue() == "b"


def test_max_delay_nan_is_a_value_error_and_inf_or_huge_work(qdir):
    with dque.new("q", qdir) as q:
        with pytest.raises(ValueError):
            q.turbo_on(NAN)
        assert not q.turbo
        for max_delay in (INF, HUGE, 1e300):
            q.turbo_on(max_delay)
            q.enqueue(max_delay)
            q.turbo_sync()
        q.turbo_off()
        assert q.dequeue_many(5) == [INF, HUGE, 1e300]


def test_process_safe_nan_and_inf_timeouts(qdir):
    q = dque.ProcessSafeDQue("p", qdir)
    try:
        with pytest.raises(ValueError, match="NaN"):
            q.get(timeout=NAN)
        with pytest.raises(ValueError, match="NaN"):
            q.put("x", timeout=NAN)
        assert q.size() == 0
        timer = _released_after(lambda: q.put("y"))
        try:
            assert q.get(timeout=INF) == "y"
        finally:
            timer.join()
    finally:
        q.close()


# ------------------------------------------------------------------ the config


def _make_queue(qdir, **options):
    with dque.new("q", qdir, segment_size=2, **options) as q:
        q.enqueue_many(["a", "b", "c"])
    return os.path.join(qdir, "q", _config.CONFIG_NAME)


def _edit(path, change):
    with open(path) as f:
        raw = json.load(f)
    change(raw)
    with open(path, "w") as f:
        json.dump(raw, f)


def _set(field, value):
    return lambda raw: raw.__setitem__(field, value)


def _drop(field):
    return lambda raw: raw.pop(field)


def _files(qdir):
    qpath = os.path.join(qdir, "q")
    out = {}
    for name in sorted(os.listdir(qpath)):
        if name.endswith(".seg"):
            with open(os.path.join(qpath, name), "rb") as f:
                out[name] = f.read()
    return out


BAD_FIELDS = [
    ("maxsize", "5"),
    ("maxsize", True),
    ("maxsize", -1),
    ("maxsize", 1.5),
    ("maxsize", None),
    ("segment_size", "2"),
    ("segment_size", 0),
    ("segment_size", -3),
    ("segment_size", True),
    ("segment_size", 2.0),
    ("serializer", 5),
    ("serializer", ""),
    ("serializer", None),
    ("serializer", ["pickle"]),
    ("max_deliveries", "3"),
    ("max_deliveries", -1),
    ("max_deliveries", False),
    ("format", "1"),
    ("format", True),
    ("format", 1.0),
    ("group_access", "yes"),
    ("group_access", 1),
    ("group_access", None),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_bad_config_field_is_a_config_error_at_open(qdir, field, value):
    path = _make_queue(qdir)
    before = _files(qdir)
    with open(path, "rb") as f:
        good = f.read()
    _edit(path, _set(field, value))
    for opener in (dque.open, dque.new_or_open):
        with pytest.raises(dque.ConfigError) as info:
            opener("q", qdir)
        message = str(info.value)
        assert path in message
        assert repr(field) in message
        assert json.dumps(value) in message
        assert "it must be" in message
        assert "restore it" in message  # what to do
    assert _files(qdir) == before  # nothing touched
    # Fixed, the queue opens with everything in it (the failed opens released the lock).
    with open(path, "wb") as f:
        f.write(good)
    with dque.open("q", qdir) as q:
        assert q.dequeue_many(5) == ["a", "b", "c"]


@pytest.mark.parametrize("field", ["segment_size", "serializer", "format"])
def test_missing_required_field_is_a_config_error(qdir, field):
    path = _make_queue(qdir)
    _edit(path, _drop(field))
    with pytest.raises(dque.ConfigError, match=f"{path}.*has no field '{field}'.*restore it"):
        dque.open("q", qdir)


def test_missing_optional_fields_take_their_defaults(qdir):
    path = _make_queue(qdir, maxsize=7, max_deliveries=2)
    for field in ("maxsize", "max_deliveries", "group_access"):
        _edit(path, _drop(field))
    _edit(path, _set("a_field_of_a_later_version", [1, 2]))  # ignored
    with dque.open("q", qdir) as q:
        assert (q.maxsize, q.max_deliveries) == (0, 0)
        assert q.dequeue_many(5) == ["a", "b", "c"]
    assert _config.read(os.path.dirname(path)).group_access is False


def test_another_format_version_says_so(qdir):
    path = _make_queue(qdir)
    _edit(path, _set("format", 99))
    with pytest.raises(dque.ConfigError, match="format 99 is not one this dque reads"):
        dque.open("q", qdir)


@pytest.mark.parametrize(
    "content",
    [b"{nope", b"[1, 2]", b'"text"', b"null", b"\xff\xfe{}", b""],
    ids=["not-json", "array", "string", "null", "not-utf8", "empty"],
)
def test_config_not_a_json_object_is_a_config_error(qdir, content):
    path = _make_queue(qdir)
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(dque.ConfigError, match=path) as info:
        dque.open("q", qdir)
    assert "restore it" in str(info.value)


def test_config_round_trip_keeps_every_field(qdir):
    path = _make_queue(qdir, maxsize=9, max_deliveries=4, serializer="json")
    config = _config.read(os.path.dirname(path))
    assert config == _config.Config(
        segment_size=2,
        serializer="json",
        maxsize=9,
        max_deliveries=4,
        format=_config.FORMAT_VERSION,
        group_access=False,
        segment_bytes=DEFAULT_SEGMENT_BYTES,
    )
    with open(path) as f:
        assert json.load(f)["group_access"] is False


def test_config_error_is_a_dque_error_and_a_value_error(qdir):
    path = _make_queue(qdir)
    _edit(path, _set("maxsize", "5"))
    with pytest.raises(dque.DQueError):
        dque.open("q", qdir)
    with pytest.raises(ValueError):
        dque.open("q", qdir)
