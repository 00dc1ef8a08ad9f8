"""The portal's pages as ``beacon portal`` serves them alone (the runner's /portal/: tests/api/test_app.py)."""

from __future__ import annotations

import re

import httpx
import pytest

from beacon.portal import STATIC_DIR, portal_app


async def test_a_portal_on_its_own_origin_may_connect_only_to_its_api() -> None:
    app = portal_app("http://127.0.0.1:8090/")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://portal.test"
    ) as http:
        page = await http.get("/")
        config = await http.get("/config.json")
    assert "connect-src 'self' http://127.0.0.1:8090;" in page.headers["content-security-policy"]
    assert config.json() == {"api_base": "http://127.0.0.1:8090"}
    with pytest.raises(ValueError, match="http"):
        portal_app("ftp://example.org")


def test_the_pages_load_nothing_from_elsewhere() -> None:
    """No external fonts, scripts, styles or trackers: every reference is relative."""
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".html", ".css", ".js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"(?:src|href)\s*=\s*[\"']([^\"']+)", text):
            assert not re.match(r"^(https?:)?//", match.group(1)), (path.name, match.group(1))
        assert "@import" not in text and "googleapis" not in text and "cdn" not in text.lower(), path.name
