"""The bytes of a segment file: record encoding and the scan that reads them back.

The format is written down, field by field, in the README ("On-disk format").
A record is a 12-byte header and a payload::

    crc    u32 LE   CRC-32 (zlib) of bytes 4..12 of the header followed by the payload
    length u32 LE   payload length in bytes
    type   u8       1 = item, 2 = delete marker
    zero   u8       always 0
    hcrc   u16 LE   low 16 bits of CRC-32 of bytes 4..10 (length, type, zero)

The header check ``hcrc`` lets the reader trust ``length`` before it trusts the
payload, which is what separates a torn last write (crash debris, dropped)
from damage in the middle of a file (reported as ``CorruptedError``).
"""

from __future__ import annotations

import struct
from zlib import crc32

HEADER_SIZE = 12
ITEM = 1
DELETE = 2
MAX_PAYLOAD = 0xFFFF_FFFF

_HEAD = struct.Struct("<IBB")  # length, type, zero
_FULL = struct.Struct("<IIBBH")  # crc, length, type, zero, hcrc


def _header_rest(length: int, rtype: int) -> bytes:
    head = _HEAD.pack(length, rtype, 0)
    return head + (crc32(head) & 0xFFFF).to_bytes(2, "little")


# Header bytes 4..12 and their running CRC, per payload length, for small items
# (the common case): encoding then costs one CRC over the payload.
SMALL = 4096
ITEM_RESTS: list[tuple[bytes, int] | None] = [None] * SMALL
CRC_FIELD = struct.Struct("<I")


def item_header_rest(n: int) -> tuple[bytes, int]:
    """Bytes 4..12 of the header of an item record of ``n`` payload bytes, and their CRC-32."""
    cached = ITEM_RESTS[n] if n < SMALL else None
    if cached is None:
        rest = _header_rest(n, ITEM)
        cached = (rest, crc32(rest))
        if n < SMALL:
            ITEM_RESTS[n] = cached
    return cached


def encode_item(payload: bytes) -> bytes:
    """One item record holding ``payload``."""
    rest, rest_crc = item_header_rest(len(payload))
    return CRC_FIELD.pack(crc32(payload, rest_crc)) + rest + payload


def _marker() -> bytes:
    rest = _header_rest(0, DELETE)
    return crc32(rest).to_bytes(4, "little") + rest


DELETE_MARKER = _marker()
MARKER_SIZE = len(DELETE_MARKER)


class Damage:
    """Where and why a scan stopped early. ``torn`` means crash debris at the end."""

    __slots__ = ("offset", "reason", "torn")

    def __init__(self, offset: int, reason: str, torn: bool) -> None:
        self.offset = offset
        self.reason = reason
        self.torn = torn


class Scan:
    """What a segment file holds, up to the first damage.

    ``payloads`` are the items not yet deleted, oldest first; ``added`` and
    ``removed`` count item records and delete markers; ``end`` is the offset
    just past the last good record; ``damage`` is None for a clean file.
    """

    __slots__ = ("payloads", "added", "removed", "end", "damage")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.added = 0
        self.removed = 0
        self.end = 0
        self.damage: Damage | None = None


def scan(data: bytes) -> Scan:
    """Read every good record of a segment file's bytes.

    Stops at the first record that does not check out and says whether it
    looks like a torn last write (a prefix of a record, or zeros, running to
    the end of the data) or like damage (anything followed by more bytes).
    Never raises on bad input.
    """
    out = Scan()
    items: list[bytes] = []
    removed = 0
    pos = 0
    size = len(data)
    unpack = _FULL.unpack_from
    while pos < size:
        if size - pos < HEADER_SIZE:
            out.damage = Damage(pos, "incomplete record header", torn=True)
            break
        crc, length, rtype, zero, hcrc = unpack(data, pos)
        end = pos + HEADER_SIZE + length
        # A good CRC covers the header too; only a bad record needs a closer look.
        if end > size or crc != crc32(data[pos + 4 : end]):
            if zero or (rtype != ITEM and rtype != DELETE) or hcrc != crc32(data[pos + 4 : pos + 10]) & 0xFFFF:
                torn = not any(data[pos:])
                out.damage = Damage(pos, "bad record header", torn=torn)
            elif end > size:
                out.damage = Damage(pos, "record runs past the end of the file", torn=True)
            else:
                out.damage = Damage(pos, "record checksum mismatch", torn=end == size)
            break
        if rtype == ITEM:
            items.append(data[pos + HEADER_SIZE : end])
        else:
            if rtype != DELETE or zero or hcrc != crc32(data[pos + 4 : pos + 10]) & 0xFFFF:
                out.damage = Damage(pos, "bad record header", torn=False)
                break
            if length:
                out.damage = Damage(pos, "delete marker with a payload", torn=False)
                break
            if removed == len(items):
                out.damage = Damage(pos, "delete marker without an item to delete", torn=False)
                break
            removed += 1
        pos = end
    out.added = len(items)
    out.removed = removed
    out.payloads = items[removed:]
    out.end = pos
    return out
