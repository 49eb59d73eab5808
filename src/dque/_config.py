"""The queue's own settings, kept in ``dque.json`` in its directory.

Written once, atomically (temp file, fsync, rename, directory fsync), when
the queue is created; read on every open. A queue therefore always knows its
segment size, serializer and bound, and ``open`` needs none of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from . import _fs
from .errors import ConfigError

CONFIG_NAME = "dque.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Config:
    segment_size: int
    serializer: str
    maxsize: int = 0
    max_deliveries: int = 0
    format: int = FORMAT_VERSION


def exists(qdir: str) -> bool:
    return os.path.exists(os.path.join(qdir, CONFIG_NAME))


def write(qdir: str, config: Config) -> None:
    data = json.dumps(asdict(config), indent=1, sort_keys=True).encode() + b"\n"
    _fs.write_file_durably(os.path.join(qdir, CONFIG_NAME), data)


def read(qdir: str) -> Config:
    path = os.path.join(qdir, CONFIG_NAME)
    try:
        raw = json.loads(_fs.read_file(path))
        config = Config(
            segment_size=raw["segment_size"],
            serializer=raw["serializer"],
            maxsize=raw.get("maxsize", 0),
            max_deliveries=raw.get("max_deliveries", 0),
            format=raw["format"],
        )
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"unreadable queue config {path}: {exc}") from exc
    if config.format != FORMAT_VERSION:
        raise ConfigError(f"{path}: format {config.format} is not one this dque reads ({FORMAT_VERSION})")
    if not isinstance(config.segment_size, int) or config.segment_size < 1:
        raise ConfigError(f"{path}: bad segment_size {config.segment_size!r}")
    return config
