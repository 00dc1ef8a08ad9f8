"""Loopback bridge into the devnet's network namespace (only used when the devnet runs in one).

It binds its listening sockets on the host's 127.0.0.1 first, then enters the namespace (``setns``):
sockets keep the namespace they were made in, so each connection accepted on the host is forwarded to
127.0.0.1 inside the namespace. Nothing is routed; the namespace still has only its loopback interface.
Usage: ``python -m beacon.golem.bridge --netns NAME HOST_PORT:NS_PORT ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
    finally:
        os.close(fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(inner_port: int):  # type: ignore[no-untyped-def]
    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", inner_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, inner_writer), _pipe(inner_reader, writer))

    return forward


async def run(netns: str, mapping: list[tuple[int, int]]) -> None:
    listeners = []
    for outer, _inner in mapping:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", outer))
        sock.listen(64)
        listeners.append(sock)
    enter_netns(netns)
    servers = [
        await asyncio.start_server(_handler(inner), sock=sock)
        for sock, (_outer, inner) in zip(listeners, mapping, strict=True)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Forward host loopback ports into a network namespace")
    parser.add_argument("--netns", required=True)
    parser.add_argument("ports", nargs="+", help="HOST_PORT:NS_PORT")
    args = parser.parse_args(argv)
    mapping = [(int(a), int(b)) for a, b in (p.split(":") for p in args.ports)]
    asyncio.run(run(args.netns, mapping))


if __name__ == "__main__":
    main()
