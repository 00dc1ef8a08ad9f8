"""Portal test fixtures: one headless Chromium per module (Debian's ``chromium``), the portal's pages
served on their own origin, and a helper that runs a JavaScript snippet against the portal's modules.

Without Chromium the tests skip with the reason; under ``CI=true`` they fail (.ci/run installs it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from beacon.portal import PortalServer
from beacon.portal.browser import Browser, BrowserUnavailable, Page, find_chromium
from tests.services import IN_CI


@pytest.fixture(scope="session")
def chromium() -> str:
    try:
        return find_chromium()
    except BrowserUnavailable as exc:
        if IN_CI:
            pytest.fail(f"{exc} (CI=true: .ci/run must install it)", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with Browser(chromium) as running:
        yield running


@pytest.fixture(scope="module")
def static_portal() -> Iterator[PortalServer]:
    """The portal's pages for module-level JS tests; its API base points nowhere (port 9 is refused)."""
    with PortalServer("http://127.0.0.1:9") as server:
        yield server


@pytest.fixture
def modules(browser: Browser, static_portal: PortalServer) -> Iterator[Page]:
    """A tab on the portal's origin, so ``import('./js/…')`` loads its modules."""
    page = browser.new_page()
    page.navigate(static_portal.url + "/config.json")  # a page of that origin that runs no portal code
    yield page
    page.close()


def run_js(page: Page, body: str, **values: Any) -> Any:
    """Run ``body`` (an async function body; ``values`` are its JSON arguments) and return its result."""
    names = ", ".join(values)
    arguments = ", ".join(json.dumps(v) for v in values.values())
    return page.evaluate(f"(async ({names}) => {{ {body} }})({arguments})")
