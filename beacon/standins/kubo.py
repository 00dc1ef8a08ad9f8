"""A loopback STAND-IN for a kubo (go-ipfs) node's RPC API and gateway — not an IPFS node.

It speaks the wire format Beacon's client uses, as kubo documents it, so that the real client code
runs against real HTTP: every RPC call is a ``POST /api/v0/<command>`` with query arguments; ``add``
takes ``multipart/form-data`` and answers newline-delimited JSON ``{"Name", "Hash", "Size"}``;
errors are HTTP 500 with ``{"Message", "Code": 0, "Type": "error"}``; a GET on an RPC path is 405.
``GET /ipfs/{cid}`` plays the gateway. Blocks are kept in memory and CIDs are computed with the same
UnixFS importer (:mod:`beacon.transparency.cid`), honouring ``chunker=size-N``.

Only ``--cid-version=1 --raw-leaves`` imports are implemented (what Beacon asks for); other options
are refused with an error that says so. Two fault knobs exist for tests: ``corrupt_reads`` flips a
byte of everything served, ``chunk_size_override`` imports with another chunk size (like a node
configured differently), so CID checks on the client can be seen to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from beacon.transparency.cid import CHUNK_SIZE, CIDError, import_file, parse_cid, read_file

VERSION = "0.0.0-beacon-standin"


def _error(message: str, status: int = 500) -> JSONResponse:
    return JSONResponse({"Message": message, "Code": 0, "Type": "error"}, status_code=status)


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.lower() in ("1", "true", "yes")


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """``(filename, bytes)`` of each part of a ``multipart/form-data`` body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: list[tuple[str, bytes]] = []
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break
        raw = raw.removeprefix(b"\r\n")
        head, sep, data = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without headers")
        disposition = re.search(rb'filename="([^"]*)"', head) or re.search(rb'name="([^"]*)"', head)
        name = disposition.group(1).decode("utf-8", "replace") if disposition else ""
        parts.append((name, data.removesuffix(b"\r\n")))
    return parts


@dataclass
class KuboStandIn:
    """The stand-in's state and its ASGI app."""

    corrupt_reads: bool = False
    chunk_size_override: int | None = None
    blocks: dict[str, bytes] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rpc = ["add", "cat", "block/get", "pin/add", "pin/ls", "version"]
        routes = [Route(f"/api/v0/{name}", self._rpc, methods=["GET", "POST"]) for name in rpc]
        routes.append(Route("/ipfs/{cid}", self._gateway, methods=["GET", "HEAD"]))
        self.app = Starlette(routes=routes)

    def _serve_bytes(self, data: bytes) -> bytes:
        if self.corrupt_reads and data:
            return bytes([data[0] ^ 0x01]) + data[1:]
        return data

    def _file(self, arg: str | None) -> bytes:
        if not arg:
            raise LookupError('argument "ipfs-path" is required')
        cid = parse_cid(arg.removeprefix("/ipfs/"))
        try:
            return read_file(str(cid.set(base="base32")), self.blocks)
        except KeyError as exc:
            raise LookupError(f"block was not found locally (offline): ipld: could not find {arg}") from exc

    async def _rpc(self, request: Request) -> Response:
        command = request.url.path.removeprefix("/api/v0/")
        self.calls.append(command)
        if request.method != "POST":
            return _error(f"405 - Method Not Allowed: {command} requires POST", 405)
        query = request.query_params
        try:
            if command == "add":
                return await self._add(request)
            if command == "cat":
                return Response(self._serve_bytes(self._file(query.get("arg"))), media_type="text/plain")
            if command == "block/get":
                cid = str(parse_cid(query.get("arg") or "").set(base="base32"))
                if cid not in self.blocks:
                    raise LookupError(f"block was not found locally (offline): ipld: could not find {cid}")
                return Response(self._serve_bytes(self.blocks[cid]), media_type="application/octet-stream")
            if command == "pin/add":
                self._file(query.get("arg"))  # kubo pins only what it can fetch
                cid = str(parse_cid(query.get("arg") or "").set(base="base32"))
                self.pins.add(cid)
                return JSONResponse({"Pins": [cid]})
            if command == "pin/ls":
                return JSONResponse({"Keys": {cid: {"Type": "recursive"} for cid in sorted(self.pins)}})
            return JSONResponse(
                {"Version": VERSION, "Commit": "", "Repo": "16", "System": "stand-in", "Golang": ""}
            )
        except (LookupError, CIDError, ValueError) as exc:
            return _error(str(exc).strip('"'))

    async def _add(self, request: Request) -> Response:
        query = request.query_params
        if query.get("cid-version", "0") != "1" or not _truthy(query.get("raw-leaves"), False):
            return _error("kubo stand-in: only --cid-version=1 --raw-leaves imports are implemented")
        if query.get("hash", "sha2-256") != "sha2-256":
            return _error("kubo stand-in: only sha2-256 is implemented")
        chunk_size = CHUNK_SIZE
        chunker = query.get("chunker")
        if chunker:
            match = re.fullmatch(r"size-([0-9]+)", chunker)
            if not match or int(match.group(1)) < 1:
                return _error(f"kubo stand-in: unsupported chunker {chunker!r}")
            chunk_size = int(match.group(1))
        if self.chunk_size_override is not None:
            chunk_size = self.chunk_size_override
        parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
        if not parts:
            return _error("file argument 'path' is required")
        lines = []
        for name, data in parts:
            imported = import_file(data, chunk_size=chunk_size)
            self.blocks.update(imported.blocks)
            cid = str(imported.cid)
            if _truthy(query.get("pin"), True):
                self.pins.add(cid)
            lines.append(json.dumps({"Name": name or cid, "Hash": cid, "Size": str(imported.tsize)}))
        return Response("\n".join(lines) + "\n", media_type="application/json")

    async def _gateway(self, request: Request) -> Response:
        try:
            data = self._file(request.path_params["cid"])
        except CIDError as exc:
            return Response(str(exc), status_code=400, media_type="text/plain")
        except LookupError as exc:
            return Response(str(exc), status_code=404, media_type="text/plain")
        return Response(self._serve_bytes(data), media_type="application/octet-stream")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(standin: KuboStandIn | None = None) -> AsyncIterator[tuple[KuboStandIn, str]]:
    """Run a stand-in on a free loopback port; yield it and its base URL (``http://127.0.0.1:PORT``)."""
    standin = standin or KuboStandIn()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(standin.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("kubo stand-in did not start")
            await asyncio.sleep(0.01)
        yield standin, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
