"""The kubo stand-in speaks kubo's RPC wire format (POST-only RPC, multipart add, NDJSON, error shape)."""

from __future__ import annotations

import httpx

from beacon.standins.kubo import parse_multipart, serve
from beacon.transparency.cid import compute_cid


async def test_standin_speaks_the_kubo_wire_format() -> None:
    async with serve() as (_, url), httpx.AsyncClient(base_url=url) as http:
        # RPC is POST-only.
        assert (await http.get("/api/v0/version")).status_code == 405
        # add: multipart in, newline-delimited JSON out, Size as a string.
        response = await http.post(
            "/api/v0/add",
            params={"cid-version": "1", "raw-leaves": "true", "pin": "true"},
            files={"file": ("a.txt", b"hello world\n")},
        )
        assert response.status_code == 200
        assert response.json() == {
            "Name": "a.txt",
            "Hash": "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
            "Size": "12",
        }
        # errors: 500 with {Message, Code, Type}
        missing = await http.post("/api/v0/cat", params={"arg": compute_cid(b"never added")})
        assert missing.status_code == 500 and missing.json()["Type"] == "error"
        refused = await http.post("/api/v0/add", params={"cid-version": "0"}, files={"file": ("a", b"x")})
        assert refused.status_code == 500 and "stand-in" in refused.json()["Message"]


def test_multipart_parser_keeps_binary_bytes() -> None:
    data = b"\r\n--x\r\n\x00\xff"
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n'
        + data
        + b"\r\n--B--\r\n"
    )
    assert parse_multipart(body, "multipart/form-data; boundary=B") == [("f.bin", data)]
