"""The router stand-in for ya-sb-router, driven by raw ya-sb-proto clients over TCP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from beacon.golem import sbproto
from beacon.golem.router import Router
from beacon.golem.sbproto import Packet, packet


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        assert (await client.read()).kind == "hello"
        client.send(packet("hello", name="test", version="1", instance_id=uuid.uuid4().bytes))
        return client

    def send(self, message: Packet) -> None:
        self.writer.write(sbproto.encode(message))

    async def read(self) -> Packet:
        return await asyncio.wait_for(sbproto.read_packet(self.reader), 5)

    async def register(self, address: str) -> int:
        self.send(packet("register_request", service_id=address))
        reply = await self.read()
        assert reply.kind == "register_reply"
        return int(reply["code"])


@pytest.fixture
async def port() -> AsyncIterator[int]:
    router = Router()
    server = await asyncio.start_server(router.serve, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def test_calls_go_to_the_longest_registered_prefix_and_replies_come_back(port: int) -> None:
    service, other, caller = [await Client.connect(port) for _ in range(3)]
    assert await service.register("/net/0xabc") == 0
    assert await other.register("/net/0xabc/exeunit/1") == 0
    assert await caller.register("/net/0xabc") == sbproto.REGISTER_CONFLICT
    caller.send(
        packet("call_request", caller="0x1", address="/net/0xabc/market/Get", request_id="r1", data=b"x")
    )
    forwarded = await service.read()
    assert forwarded.kind == "call_request" and forwarded["address"] == "/net/0xabc/market/Get"
    caller.send(packet("call_request", caller="0x1", address="/net/0xabc/exeunit/1/Exec", request_id="r2"))
    assert (await other.read())["request_id"] == "r2"
    service.send(packet("call_reply", request_id="r1", reply_type=sbproto.REPLY_PARTIAL, data=b"part"))
    service.send(packet("call_reply", request_id="r1", data=b"done"))
    assert [(await caller.read())["data"] for _ in range(2)] == [b"part", b"done"]


async def test_unknown_and_vanished_endpoints_answer_errors(port: int) -> None:
    service, caller = await Client.connect(port), await Client.connect(port)
    caller.send(packet("call_request", address="/net/nobody/x", request_id="r1"))
    reply = await caller.read()
    assert reply["code"] == sbproto.CALL_BAD_REQUEST and reply["data"] == b"endpoint address not found"
    assert await service.register("/net/0xdead") == 0
    caller.send(packet("call_request", address="/net/0xdead/x", request_id="r2"))
    assert (await service.read())["request_id"] == "r2"
    service.writer.close()  # the service disappears with the call unanswered
    reply = await caller.read()
    assert reply["request_id"] == "r2" and reply["code"] == sbproto.CALL_SERVICE_FAILURE


async def test_broadcasts_reach_every_subscriber_and_pings_are_answered(port: int) -> None:
    a, b, sender = await Client.connect(port), await Client.connect(port), await Client.connect(port)
    for client in (a, b):
        client.send(packet("subscribe_request", topic="market/offers"))
        assert (await client.read()).kind == "subscribe_reply"
    sender.send(packet("broadcast_request", caller="0x1", topic="market/offers", data=b"offer"))
    assert (await sender.read()).kind == "broadcast_reply"
    for client in (a, b):
        got = await client.read()
        assert got.kind == "broadcast_request" and got["data"] == b"offer"
    sender.send(packet("ping"))
    assert (await sender.read()).kind == "pong"
