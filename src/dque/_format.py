"""The bytes of a segment file: record encoding and the scan that reads them back.

The format is written down, field by field, in the README ("On-disk format").
A record is a 12-byte header and a payload::

    crc    u32 LE   CRC-32 (zlib) of bytes 4..12 of the header followed by the payload
    length u32 LE   payload length in bytes
    type   u8       1 = item, 2 = delete marker, 3 = lease, 4 = ack, 5 = seal
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
ITEM = 1  # payload: the serialized item
DELETE = 2  # no payload: deletes the segment's lowest-numbered live item
LEASE = 3  # payload: u32 item index; that item was handed out under a lease
ACK = 4  # payload: u32 item index; deletes that item
SEAL = 5  # payload: u32 item records before it, u32 its own offset; written only after a sync of all before it
SEAL_SIZE = 20
MAX_PAYLOAD = 0xFFFF_FFFF

_HEAD = struct.Struct("<IBB")  # length, type, zero
_FULL = struct.Struct("<IIBBH")  # crc, length, type, zero, hcrc


def _header_rest(length: int, rtype: int) -> bytes:
    head = _HEAD.pack(length, rtype, 0)
    return head + (crc32(head) & 0xFFFF).to_bytes(2, "little")


# Header bytes 4..12 and their running CRC, per payload length, for small items
# (the common case): encoding then costs one CRC over the payload.
SMALL = 4096
ITEM_RESTS: list[tuple[bytes, int, bytes] | None] = [None] * SMALL
CRC_FIELD = struct.Struct("<I")

# A store writes its records with the first one's type byte 0, then that byte:
# a store cut short (a process killed in the middle of a memcpy, which may write
# its bytes in any order) leaves a type byte 0, which no written record has.
TYPE_OFFSET = 8


def uncommitted(record: bytes) -> bytes:
    """``record`` with its type byte 0, as a store writes it first."""
    return record[:TYPE_OFFSET] + b"\0" + record[TYPE_OFFSET + 1 :]


def item_header_rest(n: int) -> tuple[bytes, int, bytes]:
    """Bytes 4..12 of the header of an item record of ``n`` payload bytes, their CRC-32, and
    the same bytes with the type 0 (for a store's first write)."""
    cached = ITEM_RESTS[n] if n < SMALL else None
    if cached is None:
        rest = _header_rest(n, ITEM)
        cached = (rest, crc32(rest), rest[:4] + b"\0" + rest[5:])
        if n < SMALL:
            ITEM_RESTS[n] = cached
    return cached


def encode_item(payload: bytes) -> bytes:
    """One item record holding ``payload``."""
    rest, rest_crc, _ = item_header_rest(len(payload))
    return CRC_FIELD.pack(crc32(payload, rest_crc)) + rest + payload


_pack_crc = CRC_FIELD.pack


def item_record(payload: bytes) -> tuple[bytes, bytes]:
    """The item record holding ``payload`` as a store writes it first (type 0), as ``(record, body)``.

    A small payload is in ``record`` and ``body`` is empty; a large one
    (SMALL bytes or more) is the ``body``, so that it is copied once, into the
    file, not into a record first (``Segment.store``).
    """
    n = len(payload)
    if n < SMALL:
        _, rest_crc, rest0 = ITEM_RESTS[n] or item_header_rest(n)
        return _pack_crc(crc32(payload, rest_crc)) + rest0 + payload, b""
    _, rest_crc, rest0 = item_header_rest(n)
    return _pack_crc(crc32(payload, rest_crc)) + rest0, payload


def _marker() -> bytes:
    rest = _header_rest(0, DELETE)
    return crc32(rest).to_bytes(4, "little") + rest


DELETE_MARKER = _marker()
MARKER_SIZE = len(DELETE_MARKER)
UNCOMMITTED_DELETE_MARKER = uncommitted(DELETE_MARKER)
_INDEX_RESTS = {rtype: (rest, crc32(rest)) for rtype in (LEASE, ACK) for rest in [_header_rest(4, rtype)]}


_INDEX_CACHE: dict[tuple[int, int], bytes] = {}


def encode_index_record(rtype: int, index: int) -> bytes:
    """A LEASE or ACK record naming item ``index`` of its segment."""
    record = _INDEX_CACHE.get((rtype, index))
    if record is None:
        rest, rest_crc = _INDEX_RESTS[rtype]
        payload = index.to_bytes(4, "little")
        record = CRC_FIELD.pack(crc32(payload, rest_crc)) + rest + payload
        if index < 65536:
            _INDEX_CACHE[rtype, index] = record
    return record


def encode_seal(items: int, offset: int) -> bytes:
    """The seal of a segment of ``items`` item records (and nothing else), placed at ``offset``.

    A seal is written only after everything before it was synced, and only
    at the end of a segment that holds nothing but item records: finding it
    as the last record of a file, whole, proves that the file's ``items``
    records are on stable storage, so an open after a crash can count them
    without reading them (see docs/format.md).
    """
    rest = _header_rest(8, SEAL)
    payload = items.to_bytes(4, "little") + offset.to_bytes(4, "little")
    return CRC_FIELD.pack(crc32(payload, crc32(rest))) + rest + payload


def read_seal(tail: bytes, size: int) -> int | None:
    """The item count of the seal that ends a file of ``size`` bytes whose last bytes are ``tail``; None if none."""
    if len(tail) < SEAL_SIZE or size < SEAL_SIZE:
        return None
    record = tail[-SEAL_SIZE:]
    crc, length, rtype, zero, hcrc = _FULL.unpack_from(record)
    if rtype != SEAL or length != 8 or zero or crc != crc32(record[4:]):
        return None
    items = int.from_bytes(record[12:16], "little")
    if int.from_bytes(record[16:20], "little") != size - SEAL_SIZE:
        return None
    return items


CHECKSUM_MISMATCH = "record checksum mismatch"


class Damage:
    """Where and why a scan stopped early. ``torn`` means crash debris at the end."""

    __slots__ = ("offset", "reason", "torn")

    def __init__(self, offset: int, reason: str, torn: bool) -> None:
        self.offset = offset
        self.reason = reason
        self.torn = torn


class Scan:
    """What a segment file holds, up to the first damage.

    ``items`` are ``(index, payload)`` of the live items (not deleted), in
    order; ``added`` counts item records and ``removed`` deletions (DELETE and
    ACK records); ``deliveries`` maps an item index to its LEASE records;
    ``end`` is the offset just past the last good record; ``damage`` is None
    for a clean file.
    """

    __slots__ = ("items", "added", "removed", "deliveries", "end", "damage")

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes]] = []
        self.added = 0
        self.removed = 0
        self.deliveries: dict[int, int] = {}
        self.end = 0
        self.damage: Damage | None = None


def scan(data: bytes) -> Scan:
    """Read every good record of a segment file's bytes.

    Stops at the first record that does not check out and says whether it
    looks like a torn last write (a prefix of a record, or zeros, followed by
    nothing but zeros up to the end of the data) or like damage (anything
    followed by more bytes, or a record that contradicts the ones before it).
    Never raises on bad input.
    """
    out = Scan()
    payloads: list[bytes] = []
    low = 0  # every item below this index is deleted
    acked: set[int] = set()  # items at or above ``low`` deleted by an ACK
    deliveries = out.deliveries
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
            # A torn write: a store not finished (type 0, whatever else it wrote), or
            # a prefix of a record followed by nothing, or by the zeros of the room
            # reserved for records (a power cut may keep any prefix of the writes).
            if not rtype:
                out.damage = Damage(pos, "store not finished", torn=True)
            elif rtype == SEAL and length == 8 and end >= size:
                out.damage = Damage(pos, "seal not written to its end", torn=True)  # (never damage: a seal is a hint)
            elif zero or rtype > SEAL or hcrc != crc32(data[pos + 4 : pos + 10]) & 0xFFFF:
                out.damage = Damage(pos, "bad record header", torn=not any(data[pos + HEADER_SIZE :]))
            elif end > size:
                out.damage = Damage(pos, "record runs past the end of the file", torn=True)
            elif not data[end - 1] and not any(data[end:]):
                out.damage = Damage(pos, "record not written to its end", torn=True)
            else:
                out.damage = Damage(pos, CHECKSUM_MISMATCH, torn=end == size)
            break
        if rtype == ITEM:
            payloads.append(data[pos + HEADER_SIZE : end])
        elif rtype == DELETE and not length:
            while low in acked:
                acked.discard(low)
                low += 1
            if low >= len(payloads):
                out.damage = Damage(pos, "delete marker without an item to delete", torn=False)
                break
            low += 1
            out.removed += 1
        elif (rtype == LEASE or rtype == ACK) and length == 4:
            index = int.from_bytes(data[pos + HEADER_SIZE : end], "little")
            if index >= len(payloads) or index < low or index in acked:
                out.damage = Damage(
                    pos, f"{'lease' if rtype == LEASE else 'ack'} of item {index}, which is not live", torn=False
                )
                break
            if rtype == ACK:
                acked.add(index)
                out.removed += 1
            else:
                deliveries[index] = deliveries.get(index, 0) + 1
        elif rtype == SEAL and length == 8:
            pass  # a count for an open after a crash; nothing to replay
        else:
            out.damage = Damage(pos, "bad record header", torn=False)
            break
        pos = end
    out.added = len(payloads)
    if acked:
        out.items = [(i, payloads[i]) for i in range(low, len(payloads)) if i not in acked]
    else:
        out.items = list(zip(range(low, len(payloads)), payloads[low:], strict=True))
    out.end = pos
    return out
