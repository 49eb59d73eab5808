"""How items become bytes: pickle (the default), JSON, raw bytes, or your own.

A serializer is any object with ``dumps(item) -> bytes`` and
``loads(data) -> item``. Its ``name`` (or, failing that, its module and
qualified name) is stored with the queue, and opening the queue with another
serializer is a :class:`~dque.ConfigError`.
"""

from __future__ import annotations

import functools
import json
import pickle
from typing import Any, Protocol


class Serializer(Protocol):
    def dumps(self, item: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """Any picklable object, at pickle's highest protocol."""

    name = "pickle"
    dumps = staticmethod(functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL))
    loads = staticmethod(pickle.loads)


class JsonSerializer:
    """JSON-compatible values (dict, list, str, int, float, bool, None), UTF-8."""

    name = "json"

    def dumps(self, item: Any) -> bytes:
        return json.dumps(item, separators=(",", ":"), allow_nan=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class BytesSerializer:
    """Raw ``bytes`` (or ``bytearray``/``memoryview``) stored as they are; taken back as ``bytes``."""

    name = "bytes"

    def dumps(self, item: Any) -> bytes:
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise TypeError(f"the bytes serializer stores bytes, not {type(item).__name__}")
        return bytes(item)

    def loads(self, data: bytes) -> bytes:
        return data


BUILTIN: dict[str, Serializer] = {
    "pickle": PickleSerializer(),
    "json": JsonSerializer(),
    "bytes": BytesSerializer(),
}


def resolve(serializer: str | Serializer | None) -> tuple[str, Serializer]:
    """``(name, serializer)`` for what a caller passed; TypeError/ValueError when unusable."""
    if serializer is None:
        serializer = "pickle"
    if isinstance(serializer, str):
        try:
            return serializer, BUILTIN[serializer]
        except KeyError:
            raise ValueError(
                f"unknown serializer {serializer!r}; built in: {', '.join(BUILTIN)}, "
                "or pass an object with dumps() and loads()"
            ) from None
    if not (callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None))):
        raise TypeError("serializer must be a name or an object with dumps() and loads()")
    name = getattr(serializer, "name", None)
    if not isinstance(name, str) or not name:
        kind = serializer if isinstance(serializer, type) else type(serializer)
        name = f"{kind.__module__}.{kind.__qualname__}"
        if kind.__name__ == "module":
            name = str(getattr(serializer, "__name__", name))  # e.g. the json or pickle module itself
    return name, serializer
