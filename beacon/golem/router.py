"""The devnet's stand-in for ``ya-sb-router``: the central-net hub every yagna of the devnet connects to.

No registry ships ya-sb-router, so Beacon provides this one (docs/decisions/1101-golem-devnet-standins.md).
It speaks ya-sb-proto (:mod:`beacon.golem.sbproto`) as ya-sb-router does, without reading payloads:

* it greets each connection with ``Hello`` and expects the peer's ``Hello`` first of all;
* ``RegisterRequest`` claims an address (``/net/<node id>`` for a yagna); a claimed address is a conflict;
* ``CallRequest`` goes to the connection holding the longest registered ``/``-prefix of its address, and
  every ``CallReply`` to it goes back to the caller's connection (partial replies keep the route open);
  an unknown address answers ``400 endpoint address not found``, a vanished one ``500 lost connection``;
* ``BroadcastRequest`` goes to every subscriber of its topic (the sender included, as ya-sb-router does);
* it answers ``Ping`` and pings a quiet connection; a connection silent past the ping timeout is dropped.

Run as ``python -m beacon.golem.router --port 7464`` (yagna's central-net parser wants at most 4 digits).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from beacon.golem import sbproto
from beacon.golem.sbproto import Packet, packet

log = logging.getLogger("beacon.golem.router")
PING_INTERVAL_S = 15.0
PING_TIMEOUT_S = 60.0


@dataclass(eq=False)
class Connection:
    writer: asyncio.StreamWriter
    name: str = "?"
    services: set[str] = field(default_factory=set)
    topics: set[str] = field(default_factory=set)
    pending: dict[str, Connection] = field(default_factory=dict)
    """request id → the connection waiting for the reply (for calls this connection serves)."""
    last_packet: float = 0.0

    def send(self, message: Packet) -> None:
        if not self.writer.is_closing():
            self.writer.write(sbproto.encode(message))


class Router:
    def __init__(self) -> None:
        self.instance_id = uuid.uuid4().bytes
        self.endpoints: dict[str, Connection] = {}
        self.subscribers: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()

    def resolve(self, address: str) -> Connection | None:
        prefix = address
        while prefix:
            found = self.endpoints.get(prefix)
            if found is not None:
                return found
            prefix = prefix.rpartition("/")[0]
        return None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        conn = Connection(writer, last_packet=loop.time())
        self.connections.add(conn)
        conn.send(packet("hello", name="beacon-sb-router", version="0.1", instance_id=self.instance_id))
        pinger = asyncio.create_task(self._ping(conn))
        try:
            first = await sbproto.read_packet(reader)
            if first.kind != "hello":
                log.warning("connection did not start with Hello (%s); closing", first.kind)
                return
            conn.name = f"{first['name']}/{first['version']}"
            while True:
                message = await sbproto.read_packet(reader)
                conn.last_packet = loop.time()
                self.handle(conn, message)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, sbproto.ProtocolError) as exc:
            log.debug("connection %s closed: %s", conn.name, type(exc).__name__)
        finally:
            pinger.cancel()
            self.drop(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def handle(self, conn: Connection, message: Packet) -> None:
        kind = message.kind
        if kind == "register_request":
            service = message["service_id"]
            if service in self.endpoints:
                conn.send(
                    packet("register_reply", code=sbproto.REGISTER_CONFLICT, message="already registered")
                )
                return
            self.endpoints[service] = conn
            conn.services.add(service)
            log.info("registered %s for %s", service, conn.name)
            conn.send(packet("register_reply"))
        elif kind == "unregister_request":
            service = message["service_id"]
            if self.endpoints.get(service) is conn:
                del self.endpoints[service]
                conn.services.discard(service)
                conn.send(packet("unregister_reply"))
            else:
                conn.send(packet("unregister_reply", code=404))
        elif kind == "call_request":
            self._call(conn, message)
        elif kind == "call_reply":
            request_id = message["request_id"]
            partial = message["reply_type"] == sbproto.REPLY_PARTIAL
            caller = conn.pending.get(request_id) if partial else conn.pending.pop(request_id, None)
            if caller is not None:
                caller.send(message)
        elif kind == "subscribe_request":
            topic = message["topic"]
            self.subscribers.setdefault(topic, set()).add(conn)
            conn.topics.add(topic)
            conn.send(packet("subscribe_reply"))
        elif kind == "unsubscribe_request":
            topic = message["topic"]
            found = conn in self.subscribers.get(topic, set())
            self.subscribers.get(topic, set()).discard(conn)
            conn.topics.discard(topic)
            conn.send(packet("unsubscribe_reply", code=0 if found else 404))
        elif kind == "broadcast_request":
            for subscriber in list(self.subscribers.get(message["topic"], ())):
                subscriber.send(message)
            conn.send(packet("broadcast_reply"))
        elif kind == "ping":
            conn.send(packet("pong"))
        elif kind in ("pong", "hello"):
            pass
        else:
            log.warning("unexpected %s from %s", kind, conn.name)

    def _call(self, conn: Connection, message: Packet) -> None:
        target = self.resolve(message["address"])
        if target is None or target.writer.is_closing():
            if not message["no_reply"]:
                reason = b"endpoint address not found" if target is None else b"lost connection"
                code = sbproto.CALL_BAD_REQUEST if target is None else sbproto.CALL_SERVICE_FAILURE
                conn.send(packet("call_reply", request_id=message["request_id"], code=code, data=reason))
            return
        if not message["no_reply"]:
            target.pending[message["request_id"]] = conn
        target.send(message)

    def drop(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for service in conn.services:
            if self.endpoints.get(service) is conn:
                del self.endpoints[service]
        for topic in conn.topics:
            self.subscribers.get(topic, set()).discard(conn)
        # Calls this connection was serving will never be answered: tell their callers.
        for request_id, caller in conn.pending.items():
            caller.send(
                packet(
                    "call_reply",
                    request_id=request_id,
                    code=sbproto.CALL_SERVICE_FAILURE,
                    data=b"lost connection",
                )
            )
        conn.pending.clear()

    async def _ping(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PING_INTERVAL_S / 2)
            quiet = loop.time() - conn.last_packet
            if quiet > PING_TIMEOUT_S:
                log.warning("no data from %s for %.0f s; dropping it", conn.name, quiet)
                conn.writer.close()
                return
            if quiet > PING_INTERVAL_S / 2:
                conn.send(packet("ping"))


async def run(host: str, port: int, ready_file: str | None = None) -> None:
    router = Router()
    server = await asyncio.start_server(router.serve, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("router listening on %s:%d", host, port)
    if ready_file:
        await asyncio.to_thread(Path(ready_file).write_text, str(os.getpid()))
    async with server:
        await stop.wait()
    log.info("router stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The devnet's stand-in for ya-sb-router (central net hub)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7464)
    parser.add_argument("--ready-file", help="written with the PID once listening")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(args.host, args.port, args.ready_file))


if __name__ == "__main__":
    main()
