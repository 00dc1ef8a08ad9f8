"""Content by CID: the local store (``content`` table), a kubo RPC client and IPFS gateway reads.

Every read — local, kubo or gateway — recomputes the CID of the bytes it got and refuses them if it
differs (:class:`ContentIntegrityError`): nothing here trusts a node or a gateway. Writes always go
to the local store first; with ``IPFS_URL`` set they are also added and pinned through kubo's RPC
API (``/api/v0/add?cid-version=1&raw-leaves=true&pin=true``), and kubo's CID must equal ours.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import httpx
import sqlalchemy as sa

from beacon.errors import VerificationError
from beacon.store import Database
from beacon.store.db import now
from beacon.store.tables import content
from beacon.transparency.cid import CHUNK_SIZE, CIDError, check_cid, compute_cid, parse_cid

log = logging.getLogger("beacon.transparency.ipfs")

MAX_CONTENT_BYTES = 64 << 20


class ContentError(Exception):
    """Base class of content-store errors."""


class ContentNotFound(ContentError):
    """No store that was asked has this CID."""


class ContentIntegrityError(ContentError, VerificationError):
    """Bytes that do not hash to the CID they were fetched under."""

    code = "content_mismatch"


class IpfsError(ContentError):
    """The kubo node failed, answered something unexpected, or computed another CID."""


def _checked(cid: str, data: bytes, source: str) -> bytes:
    try:
        check_cid(cid, data)
    except CIDError as exc:
        raise ContentIntegrityError(f"{source}: {exc}") from exc
    return data


class KuboClient:
    """The few kubo RPC calls Beacon needs (``add``, ``cat``, ``pin/add``, ``version``)."""

    def __init__(
        self, base_url: str, *, timeout: float = 30.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def _post(self, path: str, params: dict[str, str], **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}/api/v0/{path}"
        try:
            response = await self._client.post(url, params=params, **kwargs)
        except httpx.HTTPError as exc:
            raise IpfsError(f"kubo at {self.base_url} unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            message = response.text[:300]
            with contextlib.suppress(ValueError):
                message = str(response.json().get("Message", message))
            raise IpfsError(f"kubo {path} answered {response.status_code}: {message}")
        return response

    async def add(self, data: bytes, *, name: str = "data", pin: bool = True) -> str:
        """Add and pin ``data``; return the CID after checking it equals the locally computed one."""
        params = {
            "cid-version": "1",
            "raw-leaves": "true",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
            "progress": "false",
        }
        response = await self._post("add", params, files={"file": (name, data, "application/octet-stream")})
        lines = [line for line in response.text.splitlines() if line.strip()]
        try:
            cid = str(json.loads(lines[-1])["Hash"])
        except (IndexError, ValueError, KeyError, TypeError) as exc:
            raise IpfsError(f"kubo add answered an unexpected body: {response.text[:200]!r}") from exc
        expected = compute_cid(data)
        if cid != expected:
            raise IpfsError(f"kubo computed CID {cid}, expected {expected} (different importer settings?)")
        return cid

    async def cat(self, cid: str) -> bytes:
        """The bytes of ``cid``, re-checked against it."""
        response = await self._post("cat", {"arg": cid})
        return _checked(cid, response.content, f"kubo {self.base_url}")

    async def pin(self, cid: str) -> None:
        await self._post("pin/add", {"arg": cid})

    async def version(self) -> dict[str, Any]:
        response = await self._post("version", {})
        body: dict[str, Any] = response.json()
        return body

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


async def fetch_from_gateway(gateway: str, cid: str, *, client: httpx.AsyncClient | None = None) -> bytes:
    """``GET {gateway}/ipfs/{cid}``, refused unless the bytes hash to ``cid``."""
    parse_cid(cid)
    url = f"{gateway.rstrip('/')}/ipfs/{cid}"
    owned = client is None
    http = client or httpx.AsyncClient(timeout=30.0, follow_redirects=True)
    try:
        async with http.stream("GET", url) as response:
            if response.status_code == 404:
                raise ContentNotFound(f"gateway {gateway} has no {cid}")
            if response.status_code != 200:
                raise ContentError(f"gateway {gateway} answered {response.status_code} for {cid}")
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > MAX_CONTENT_BYTES:
                    raise ContentError(f"gateway content for {cid} exceeds {MAX_CONTENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise ContentError(f"gateway {gateway} unreachable: {exc}") from exc
    finally:
        if owned:
            await http.aclose()
    return _checked(cid, bytes(body), f"gateway {gateway}")


class ContentStore:
    """Content-addressed storage in the database, mirrored to kubo when one is configured."""

    def __init__(self, db: Database, *, kubo: KuboClient | None = None) -> None:
        self.db = db
        self.kubo = kubo

    async def put(self, data: bytes, media_type: str = "application/octet-stream") -> str:
        """Store ``data`` locally (and pin it in kubo if configured); return its CID.

        A kubo failure is logged and leaves ``pinned_remote`` false (:meth:`pin_remote` retries);
        the local copy is the one of record.
        """
        async with self.db.begin() as conn:
            cid = await self.put_local(conn, data, media_type)
        if self.kubo is not None:
            try:
                await self.pin_remote(cid, data)
            except IpfsError as exc:
                log.warning("content %s kept locally, not pinned in kubo: %s", cid, exc)
        return cid

    async def put_local(self, conn: Any, data: bytes, media_type: str) -> str:
        """Store ``data`` in the caller's transaction; return its CID (idempotent)."""
        if len(data) > MAX_CONTENT_BYTES:
            raise ContentError(f"content larger than {MAX_CONTENT_BYTES} bytes")
        cid = compute_cid(data)
        statement = self.db.insert(content).values(
            cid=cid, data=data, size=len(data), media_type=media_type, pinned_remote=False, created_at=now()
        )
        await conn.execute(statement.on_conflict_do_nothing(index_elements=["cid"]))
        return cid

    async def pin_remote(self, cid: str, data: bytes | None = None) -> None:
        """Add (and pin) stored content to kubo, check its CID, and record that it is pinned."""
        if self.kubo is None:
            raise IpfsError("no IPFS node configured (IPFS_URL)")
        if data is None:
            data = await self.get_local(cid)
            if data is None:
                raise ContentNotFound(f"{cid} is not in the local store")
        remote = await self.kubo.add(data)
        if remote != cid:
            raise IpfsError(f"kubo stored {remote}, expected {cid}")
        async with self.db.begin() as conn:
            await conn.execute(sa.update(content).where(content.c.cid == cid).values(pinned_remote=True))

    async def get_local(self, cid: str) -> bytes | None:
        """Local bytes of ``cid`` (re-checked), or None."""
        async with self.db.connect() as conn:
            data = await conn.scalar(sa.select(content.c.data).where(content.c.cid == cid))
        if data is None:
            return None
        return _checked(cid, bytes(data), "local content store")

    async def info(self, cid: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(content.c.size, content.c.media_type, content.c.pinned_remote).where(
                        content.c.cid == cid
                    )
                )
            ).first()
        return (
            None
            if row is None
            else {"size": row.size, "media_type": row.media_type, "pinned_remote": row.pinned_remote}
        )

    async def get(self, cid: str, *, gateway: str | None = None) -> bytes:
        """The bytes of ``cid``: local store, then kubo, then ``gateway`` if given — always re-checked."""
        parse_cid(cid)
        data = await self.get_local(cid)
        if data is not None:
            return data
        if self.kubo is not None:
            try:
                return await self.kubo.cat(cid)
            except IpfsError as exc:
                log.info("kubo could not serve %s: %s", cid, exc)
        if gateway:
            return await fetch_from_gateway(gateway, cid)
        raise ContentNotFound(f"no content with CID {cid}")

    async def health(self) -> dict[str, Any]:
        if self.kubo is None:
            return {"status": "up", "ipfs": "not configured (local content store only)"}
        try:
            version = await self.kubo.version()
        except IpfsError as exc:
            return {"status": "degraded", "error": str(exc), "node": self.kubo.base_url}
        return {"status": "up", "node": self.kubo.base_url, "version": version.get("Version")}

    async def aclose(self) -> None:
        if self.kubo is not None:
            await self.kubo.aclose()
