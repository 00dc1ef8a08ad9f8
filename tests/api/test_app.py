"""What create_app mounts beside the API: the portal's pages at /portal/, with their own CSP."""

from __future__ import annotations

import httpx

from beacon.portal import portal_csp


async def test_the_runner_serves_the_portal_with_its_own_csp(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/portal")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/portal/"
    page = await client.get("/portal/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == portal_csp()
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/portal/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert (await client.get("/portal/config.json")).json() == {"api_base": ""}
    assert (await client.get("/portal/js/nope.js")).status_code == 404
    api = await client.get("/health")  # the API keeps its own, stricter policy
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
