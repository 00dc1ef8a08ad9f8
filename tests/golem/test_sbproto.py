"""ya-sb-proto frames, checked against bytes written by hand from gsb_api.proto."""

from __future__ import annotations

import pytest

from beacon.golem import sbproto
from beacon.golem.sbproto import packet


def test_a_call_request_encodes_as_protobuf_would() -> None:
    frame = sbproto.encode(packet("call_request", caller="0x1", address="/a", request_id="r", data=b"\x01"))
    # Packet field 6 (call_request, length-delimited) around caller(1) address(2) request_id(3) data(4)
    body = b"\x0a\x030x1" + b"\x12\x02/a" + b"\x1a\x01r" + b"\x22\x01\x01"
    message = b"\x32" + bytes([len(body)]) + body
    assert frame == len(message).to_bytes(4, "big") + message


def test_round_trip_and_defaults() -> None:
    original = packet("call_reply", request_id="r1", code=500, reply_type=1, data=b"lost")
    decoded = sbproto.decode(sbproto.encode(original)[4:])
    assert decoded.kind == "call_reply" and decoded.fields == original.fields
    empty = sbproto.decode(sbproto.encode(packet("register_reply"))[4:])
    assert empty.kind == "register_reply" and empty["code"] == 0 and empty["message"] == ""
    assert sbproto.decode(sbproto.encode(packet("ping"))[4:]).kind == "ping"


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(sbproto.ProtocolError):
        sbproto.decode(b"\x32\x05\x0a")
    with pytest.raises(sbproto.ProtocolError):
        sbproto.decode(b"")
