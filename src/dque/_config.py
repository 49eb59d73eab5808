"""The queue's own settings, kept in ``dque.json`` in its directory.

Written once, atomically (temp file, fsync, rename, directory fsync), when
the queue is created; read on every open. A queue therefore always knows its
segment size, serializer and bound, and ``open`` needs none of them.

Every field is checked when the file is read: a wrong type (``"5"`` or
``true`` where an int belongs), an out-of-range value or a missing required
field is a :class:`~dque.ConfigError` at open, naming the file, the field and
the value, before anything else of the queue is touched. Fields added after
the first release have defaults, so that older queues still open; fields
this version does not know are ignored (a new meaning comes with a new
``format``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from . import _fs
from .errors import ConfigError

CONFIG_NAME = "dque.json"
FORMAT_VERSION = 2  # what new queues are made with
READABLE_FORMATS = (1, 2)  # 2 adds seal records and segment_bytes; a format-1 queue keeps format 1


@dataclass(frozen=True)
class Config:
    segment_size: int
    serializer: str
    maxsize: int = 0
    max_deliveries: int = 0
    format: int = FORMAT_VERSION
    # Group members may read and write the queue (files 0660, directory 0770); else owner only.
    group_access: bool = False
    # A segment rolls over once its records take this many bytes (0: no byte bound; format 1 queues).
    segment_bytes: int = 0

    @property
    def seals(self) -> bool:
        """Full segments get a seal record (format 2): an open after a crash need not read them."""
        return self.format >= 2

    @property
    def file_mode(self) -> int:
        """The permission bits of the queue's files (for ``_fs.open_rw(path, mode=...)``)."""
        return _fs.file_mode(self.group_access)

    @property
    def dir_mode(self) -> int:
        """The permission bits of the queue's directory."""
        return _fs.dir_mode(self.group_access)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# field: (required, accepts(value), what it must be)
_FIELDS: dict[str, tuple[bool, Any, str]] = {
    "format": (True, _is_int, f"one of the ints {READABLE_FORMATS}"),
    "segment_size": (True, lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "serializer": (True, lambda v: isinstance(v, str) and bool(v), "a non-empty string (a serializer's name)"),
    "maxsize": (False, lambda v: _is_int(v) and v >= 0, "an int >= 0 (0: no bound)"),
    "max_deliveries": (False, lambda v: _is_int(v) and v >= 0, "an int >= 0 (0: no limit)"),
    "group_access": (False, lambda v: isinstance(v, bool), "true or false"),
    "segment_bytes": (False, lambda v: _is_int(v) and v >= 0, "an int >= 0 (0: no byte bound)"),
}

_FIX = (
    "dque.new writes this file once and never changes it: restore it from a backup, "
    "or correct the field by hand (see Config in dque/_config.py for the fields)"
)


def exists(qdir: str) -> bool:
    return os.path.exists(os.path.join(qdir, CONFIG_NAME))


def write(qdir: str, config: Config) -> None:
    """Write ``config`` durably; the file gets the permissions of ``qdir`` (made with ``config.dir_mode``)."""
    data = json.dumps(asdict(config), indent=1, sort_keys=True).encode() + b"\n"
    _fs.write_file_durably(os.path.join(qdir, CONFIG_NAME), data)


def read(qdir: str) -> Config:
    """The config of the queue in ``qdir``.

    Raises FileNotFoundError if there is none, ConfigError (naming the file,
    the field and the bad value) if it is unreadable, not JSON, of another
    format version, or any field is missing or of the wrong type or range.
    """
    path = os.path.join(qdir, CONFIG_NAME)
    try:
        text = _fs.read_file(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read the queue config {path}: {exc}; check the file's permissions") from exc
    try:
        raw = json.loads(text)
    except ValueError as exc:  # (UnicodeDecodeError included)
        raise ConfigError(f"the queue config {path} is not valid JSON ({exc}); {_FIX}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"the queue config {path} holds a JSON {type(raw).__name__}, not an object; {_FIX}")
    if _is_int(raw.get("format")) and raw["format"] not in READABLE_FORMATS:
        raise ConfigError(
            f"{path}: format {raw['format']} is not one this dque reads {READABLE_FORMATS}; "
            "open the queue with the dque version that made it"
        )
    values = {}
    for field, (required, accepts, must_be) in _FIELDS.items():
        if field not in raw:
            if required:
                raise ConfigError(f"the queue config {path} has no field {field!r} ({must_be}); {_FIX}")
            continue
        value = raw[field]
        if not accepts(value):
            raise ConfigError(
                f"the queue config {path}: field {field!r} is {json.dumps(value)} "
                f"(a JSON {_json_type(value)}); it must be {must_be}; {_FIX}"
            )
        values[field] = value
    return Config(**values)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"
