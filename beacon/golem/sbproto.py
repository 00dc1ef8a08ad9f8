"""ya-sb-proto, the Golem Service Bus wire format, written from ``gsb_api.proto`` (ya-service-bus).

Each frame is a big-endian u32 length followed by one protobuf ``Packet``, whose oneof holds exactly one
message. Every field in the schema is a string, bytes, bool or enum, so a small protobuf codec for wire
types 0 (varint) and 2 (length-delimited) is all it takes; no generated code, no protobuf runtime.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Any

from beacon.transparency.cid import _varint  # the one protobuf varint writer (every value here is >= 0)

MAX_FRAME = 64 * 1024 * 1024

# Packet oneof field number → (message name, {field number: (field name, kind)}); kinds: str, bytes, int, bool.
SCHEMA: dict[int, tuple[str, dict[int, tuple[str, str]]]] = {
    1: ("hello", {1: ("name", "str"), 2: ("version", "str"), 3: ("instance_id", "bytes")}),
    2: ("register_request", {1: ("service_id", "str")}),
    3: ("register_reply", {1: ("code", "int"), 2: ("message", "str")}),
    4: ("unregister_request", {1: ("service_id", "str")}),
    5: ("unregister_reply", {1: ("code", "int")}),
    6: (
        "call_request",
        {
            1: ("caller", "str"),
            2: ("address", "str"),
            3: ("request_id", "str"),
            4: ("data", "bytes"),
            5: ("no_reply", "bool"),
        },
    ),
    7: (
        "call_reply",
        {1: ("request_id", "str"), 2: ("code", "int"), 3: ("reply_type", "int"), 4: ("data", "bytes")},
    ),
    8: ("subscribe_request", {1: ("topic", "str")}),
    9: ("subscribe_reply", {1: ("code", "int"), 2: ("message", "str")}),
    10: ("unsubscribe_request", {1: ("topic", "str")}),
    11: ("unsubscribe_reply", {1: ("code", "int")}),
    12: ("broadcast_request", {1: ("caller", "str"), 2: ("data", "bytes"), 3: ("topic", "str")}),
    13: ("broadcast_reply", {1: ("code", "int"), 2: ("message", "str")}),
    14: ("ping", {}),
    15: ("pong", {}),
}
NUMBERS = {name: number for number, (name, _) in SCHEMA.items()}

CALL_OK, CALL_BAD_REQUEST, CALL_SERVICE_FAILURE = 0, 400, 500
REPLY_FULL, REPLY_PARTIAL = 0, 1
REGISTER_CONFLICT = 409


class ProtocolError(ValueError):
    pass


@dataclass
class Packet:
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.fields.get(name, _default(self.kind, name))


def _default(kind: str, name: str) -> Any:
    for fname, ftype in SCHEMA[NUMBERS[kind]][1].values():
        if fname == name:
            return {"str": "", "bytes": b"", "int": 0, "bool": False}[ftype]
    raise KeyError(name)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ProtocolError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtocolError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def encode(packet: Packet) -> bytes:
    """One frame: length prefix and the encoded ``Packet``."""
    number = NUMBERS[packet.kind]
    body = bytearray()
    for fnumber, (fname, ftype) in SCHEMA[number][1].items():
        value = packet.fields.get(fname)
        if value in (None, "", b"", 0, False):
            continue
        if ftype in ("int", "bool"):
            body += _varint(fnumber << 3) + _varint(int(value))
        else:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            body += _varint(fnumber << 3 | 2) + _varint(len(raw)) + raw
    message = _varint(number << 3 | 2) + _varint(len(body)) + bytes(body)
    return struct.pack(">I", len(message)) + message


def decode(message: bytes) -> Packet:
    """A ``Packet`` (without its length prefix)."""
    for number, wire, value in _fields(message):
        if number in SCHEMA and wire == 2:
            kind, schema = SCHEMA[number]
            fields: dict[str, Any] = {}
            for fnumber, _wire, fvalue in _fields(value):
                if fnumber not in schema:
                    continue
                fname, ftype = schema[fnumber]
                if ftype == "str":
                    fields[fname] = bytes(fvalue).decode()
                elif ftype == "bytes":
                    fields[fname] = bytes(fvalue)
                elif ftype == "bool":
                    fields[fname] = bool(fvalue)
                else:
                    fields[fname] = int(fvalue)
            return Packet(kind, fields)
    raise ProtocolError("a Packet with no known message")


async def read_packet(reader: asyncio.StreamReader) -> Packet:
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes")
    return decode(await reader.readexactly(length))


def packet(kind: str, **fields: Any) -> Packet:
    return Packet(kind, fields)
