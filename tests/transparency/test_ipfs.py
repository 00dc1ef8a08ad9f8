"""Content store, kubo RPC client and gateway reads, against the loopback kubo stand-in over real HTTP."""

from __future__ import annotations

import hashlib

import pytest

from beacon.standins.kubo import KuboStandIn, serve
from beacon.store import Database
from beacon.transparency.cid import CHUNK_SIZE, compute_cid
from beacon.transparency.ipfs import (
    ContentIntegrityError,
    ContentNotFound,
    ContentStore,
    IpfsError,
    KuboClient,
    fetch_from_gateway,
)

BIG = hashlib.shake_256(b"ipfs").digest(3 * CHUNK_SIZE + 5)


async def test_kubo_round_trip_matches_local_cids() -> None:
    async with serve() as (standin, url):
        kubo = KuboClient(url)
        try:
            for data in (b"", b"hello world\n", BIG):
                cid = await kubo.add(data, name="bundle.json")
                assert cid == compute_cid(data)
                assert await kubo.cat(cid) == data
                assert cid in standin.pins
            assert (await kubo.version())["Version"]
        finally:
            await kubo.aclose()


async def test_kubo_with_other_importer_settings_is_refused() -> None:
    async with serve(KuboStandIn(chunk_size_override=1024)) as (_, url):
        kubo = KuboClient(url)
        try:
            with pytest.raises(IpfsError, match="expected"):
                await kubo.add(BIG)
        finally:
            await kubo.aclose()


async def test_corrupted_reads_are_refused_everywhere() -> None:
    standin = KuboStandIn()
    async with serve(standin) as (_, url):
        kubo = KuboClient(url)
        try:
            cid = await kubo.add(BIG)
            standin.corrupt_reads = True
            with pytest.raises(ContentIntegrityError):
                await kubo.cat(cid)
            with pytest.raises(ContentIntegrityError):
                await fetch_from_gateway(url, cid)
            standin.corrupt_reads = False
            assert await fetch_from_gateway(url, cid) == BIG
            with pytest.raises(ContentNotFound):
                await fetch_from_gateway(url, compute_cid(b"nobody has this"))
        finally:
            await kubo.aclose()


async def test_content_store_local_then_kubo(db: Database) -> None:
    standin = KuboStandIn()
    async with serve(standin) as (_, url):
        store = ContentStore(db, kubo=KuboClient(url))
        try:
            cid = await store.put(BIG, "application/json")
            assert cid in standin.pins
            assert (await store.info(cid)) == {
                "size": len(BIG),
                "media_type": "application/json",
                "pinned_remote": True,
            }
            assert await store.get(cid) == BIG
            # Content only kubo has is fetched from it (and re-checked).
            remote_only = await store.kubo.add(b"only in kubo")  # type: ignore[union-attr]
            assert await store.get(remote_only) == b"only in kubo"
            with pytest.raises(ContentNotFound):
                await store.get(compute_cid(b"nowhere"))
        finally:
            await store.aclose()


async def test_kubo_down_keeps_the_local_copy(db: Database) -> None:
    store = ContentStore(db, kubo=KuboClient("http://127.0.0.1:9", timeout=1.0))
    try:
        cid = await store.put(b"kept")
        assert await store.get(cid) == b"kept"
        assert (await store.info(cid))["pinned_remote"] is False  # type: ignore[index]
        assert (await store.health())["status"] == "degraded"
        with pytest.raises(IpfsError, match="unreachable"):
            await store.pin_remote(cid)
    finally:
        await store.aclose()
