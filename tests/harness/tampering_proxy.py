"""A tampering reverse proxy on loopback: a runner that misbehaves on purpose, for the fault matrix.

It forwards every request to the runner behind it and lets a test change what comes back —
a receipt's signature, the transparency root, CORS headers, a 5xx for a route — or act on the side
(kill the runner after a submission). One proxy in front of one embedded runner serves every case;
``proxy.fault = …`` switches the misbehaviour, ``None`` forwards faithfully.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "content-encoding",
    }
)


@dataclass
class Exchange:
    """One forwarded request and the response a fault may rewrite."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def set_json(self, document: Any) -> None:
        self.body = json.dumps(document).encode()


Fault = Callable[[Exchange], None]


@dataclass
class TamperingProxy:
    """``with TamperingProxy(upstream) as proxy: proxy.url`` — see the module docstring."""

    upstream: str
    fault: Fault | None = None
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.upstream, timeout=60.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                proxy.seen.append(f"{self.command} {self.path}")
                try:
                    answer = proxy._client.request(self.command, self.path, content=body, headers=headers)
                    exchange = Exchange(
                        self.command,
                        self.path,
                        answer.status_code,
                        {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
                        answer.content,
                    )
                except httpx.HTTPError:  # the runner is gone: so is the connection, as without a proxy
                    self.close_connection = True
                    return
                if proxy.fault is not None:
                    proxy.fault(exchange)
                self.send_response(exchange.status)
                for name, value in exchange.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(exchange.body)))
                self.end_headers()
                self.wfile.write(exchange.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tampering-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TamperingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


# --- faults ---------------------------------------------------------------------------------------

RECEIPT_ROUTE = re.compile(r"^/api/v1/executions/[^/?]+/receipt")


def tamper_receipt_signatures(exchange: Exchange) -> None:
    """Every receipt served carries a different (well-formed, wrong) signature."""
    if exchange.method == "GET" and RECEIPT_ROUTE.match(exchange.path) and exchange.status == 200:
        receipt = exchange.json()
        signature = str(receipt.get("signature") or "")
        flipped = ("B" if signature[:1] != "B" else "C") + signature[1:]
        exchange.set_json({**receipt, "signature": flipped})


def root_not_matching(exchange: Exchange) -> None:
    """``/transparency/root`` states a root hash no checkpoint has."""
    if (
        exchange.method == "GET"
        and exchange.path.startswith("/api/v1/transparency/root")
        and exchange.status == 200
    ):
        document = exchange.json()
        for key in ("root", "root_hash"):
            if isinstance(document.get(key), str):
                document[key] = "00" * 32 if document[key] != "00" * 32 else "11" * 32
        exchange.set_json(document)


def server_errors_on(*prefixes: str, methods: tuple[str, ...] = ("GET",)) -> Fault:
    """5xx (problem+json) for ``methods`` of routes starting with ``prefixes``."""

    def fault(exchange: Exchange) -> None:
        if exchange.method in methods and exchange.path.startswith(prefixes):
            exchange.status = 500
            exchange.headers["content-type"] = "application/problem+json"
            exchange.set_json(
                {"type": "about:blank", "title": "Internal error", "status": 500, "code": "internal_error"}
            )

    return fault


def strip_cors(exchange: Exchange) -> None:
    """No ``Access-Control-*`` header on any response."""
    exchange.headers = {
        k: v for k, v in exchange.headers.items() if not k.lower().startswith("access-control-")
    }


def refusals_not_problem_json(exchange: Exchange) -> None:
    """4xx answers as plain JSON without a request id (not RFC 9457)."""
    if 400 <= exchange.status < 500:
        exchange.headers["content-type"] = "application/json"
        try:
            document = exchange.json()
            if isinstance(document, dict):
                document.pop("request_id", None)
                exchange.set_json(document)
        except ValueError:
            pass


def kill_after_submit(kill: Callable[[], None]) -> Fault:
    """The runner dies right after it accepted a job (the answer still reaches the client)."""

    def fault(exchange: Exchange) -> None:
        if exchange.method == "POST" and exchange.path.startswith("/api/v1/jobs") and exchange.status == 202:
            kill()

    return fault


def forked_checkpoints(log_key_file: Path) -> Fault:
    """A forked log: the latest checkpoint is served for a different tree of the same size, signed with
    the log's own key (so only a consistency proof can tell)."""
    from beacon.keys import read_key_file
    from beacon.transparency.checkpoint import Checkpoint
    from beacon.transparency.note import Signer

    key = read_key_file(log_key_file)

    def fault(exchange: Exchange) -> None:
        if (
            exchange.method == "GET"
            and exchange.path.split("?")[0] == "/api/v1/transparency/checkpoint"
            and exchange.status == 200
        ):
            text = exchange.body.decode()
            origin, size = text.split("\n")[:2]
            forked_root = hashlib.sha256(b"fork" + text.encode()).digest()
            exchange.body = Checkpoint(origin, int(size), forked_root).sign(Signer(origin, key)).encode()

    return fault
