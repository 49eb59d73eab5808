"""Opening a queue's directory: creating it, checking its config, taking its lock.

The bodies of ``DQue.new``, ``DQue.open`` and ``DQue.new_or_open`` (whose
docstrings hold the contract): each checks its arguments, then the
directory, then takes the lock and reads or writes ``dque.json`` under it, and
hands the queue's class what it needs to load the segments. A failure after
the lock was taken releases it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Protocol, TypeVar

from . import _config, _fs
from ._args import check_int, check_options, queue_dir
from ._lock import DirLock
from ._serializers import Serializer, resolve
from .errors import ConfigError

DEFAULT_SEGMENT_SIZE = 1000
DEFAULT_SEGMENT_BYTES = 16 << 20  # (a head segment's unread items are in memory: this bounds them)


class _Opened(Protocol):
    """What ``create_or_open`` reads of an opened queue."""

    @property
    def segment_size(self) -> int: ...
    @property
    def maxsize(self) -> int: ...
    @property
    def max_deliveries(self) -> int: ...
    @property
    def segment_bytes(self) -> int: ...


Q = TypeVar("Q", bound=_Opened)
# What opening needs of the queue's class: its constructor (qdir, config, serializer, lock, turbo).
QueueClass = Callable[[str, _config.Config, Serializer, DirLock, bool], Q]


def create(
    cls: QueueClass[Q],
    name: str,
    dirpath: str | os.PathLike[str],
    segment_size: int,
    turbo: bool,
    serializer: str | Serializer | None,
    maxsize: int,
    max_deliveries: int,
    group_access: bool,
    segment_bytes: int,
) -> Q:
    """``DQue.new``."""
    qdir = queue_dir(name, dirpath)
    check_int(segment_size, "segment_size", 1)
    check_int(maxsize, "maxsize", 0)
    check_int(max_deliveries, "max_deliveries", 0)
    check_int(segment_bytes, "segment_bytes", 0)
    if not isinstance(group_access, bool):
        raise TypeError(f"group_access must be True or False, not {type(group_access).__name__}")
    ser_name, ser = resolve(serializer)
    turbo = bool(turbo)
    _check_is_dir(qdir)
    if _config.exists(qdir):
        raise FileExistsError(f"queue {qdir} already exists: open it with dque.open, or use dque.new_or_open")
    parent = os.path.dirname(qdir) or "."
    _check_is_dir(parent)
    try:
        _fs.make_dir(qdir, _fs.dir_mode(group_access))
    except FileExistsError:
        raise NotADirectoryError(f"a part of {qdir} is a file") from None
    _fs.sync_dir(parent)
    lock = DirLock(qdir, _fs.file_mode(group_access))
    lock.acquire()
    try:
        if _config.exists(qdir):
            raise FileExistsError(f"queue {qdir} already exists: open it with dque.open, or use dque.new_or_open")
        config = _config.Config(
            segment_size=segment_size,
            serializer=ser_name,
            maxsize=maxsize,
            max_deliveries=max_deliveries,
            group_access=group_access,
            segment_bytes=segment_bytes,
        )
        _config.write(qdir, config)
        return cls(qdir, config, ser, lock, turbo)
    except BaseException:
        lock.release()
        raise


def open_existing(
    cls: QueueClass[Q], name: str, dirpath: str | os.PathLike[str], turbo: bool, serializer: str | Serializer | None
) -> Q:
    """``DQue.open``."""
    qdir = queue_dir(name, dirpath)
    want = None if serializer is None else resolve(serializer)
    turbo = bool(turbo)
    _check_is_dir(qdir)
    if not _config.exists(qdir):
        raise FileNotFoundError(f"no queue at {qdir}")
    lock = DirLock(qdir)
    lock.acquire()
    try:
        config = _config.read(qdir)
        if want is None:
            try:
                ser_name, ser = resolve(config.serializer)
            except ValueError:
                raise ConfigError(
                    f"queue {qdir} was created with serializer {config.serializer!r}: pass it to open"
                ) from None
        else:
            ser_name, ser = want
        if ser_name != config.serializer:
            raise ConfigError(f"queue {qdir} was created with serializer {config.serializer!r}, not {ser_name!r}")
        return cls(qdir, config, ser, lock, turbo)
    except BaseException:
        lock.release()
        raise


def create_or_open(
    cls: QueueClass[Q],
    name: str,
    dirpath: str | os.PathLike[str],
    segment_size: int | None,
    turbo: bool,
    serializer: str | Serializer | None,
    maxsize: int | None,
    max_deliveries: int | None,
    group_access: bool,
    segment_bytes: int | None,
) -> Q:
    """``DQue.new_or_open``."""
    qdir = queue_dir(name, dirpath)
    check_options(segment_size, maxsize, max_deliveries, serializer)
    if not _config.exists(qdir):
        try:
            return create(
                cls,
                name,
                dirpath,
                segment_size=DEFAULT_SEGMENT_SIZE if segment_size is None else segment_size,
                turbo=turbo,
                serializer=serializer,
                maxsize=0 if maxsize is None else maxsize,
                max_deliveries=0 if max_deliveries is None else max_deliveries,
                group_access=group_access,
                segment_bytes=DEFAULT_SEGMENT_BYTES if segment_bytes is None else segment_bytes,
            )
        except FileExistsError:
            if not _config.exists(qdir):
                raise
    q = open_existing(cls, name, dirpath, turbo, serializer)
    for what, asked, kept in (
        ("segment_size", segment_size, q.segment_size),
        ("maxsize", maxsize, q.maxsize),
        ("max_deliveries", max_deliveries, q.max_deliveries),
        ("segment_bytes", segment_bytes, q.segment_bytes),
    ):
        if asked is not None and asked != kept:
            warnings.warn(
                f"queue {qdir} keeps its {what} {kept}; the {what}={asked} passed is ignored",
                UserWarning,
                stacklevel=3,  # (the caller of DQue.new_or_open)
            )
    return q


def _check_is_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{path} exists and is not a directory")
