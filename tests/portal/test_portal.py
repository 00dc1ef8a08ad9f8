"""The portal in headless Chromium against a real embedded runner on another origin (CORS is real).

One runner (``beacon serve --embedded``, SQLite, the SmolLM2 model) and one browser for the module;
the portal is served by :class:`beacon.portal.PortalServer` from its own port, listed in the runner's
``CORS_ORIGINS``. Each test drives the page's own controls and reads what it rendered and what the
browser reported.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beacon.harness.launcher import EmbeddedRunner
from beacon.keys import Ed25519Key, read_key_file
from beacon.portal import PortalServer
from beacon.portal.browser import Browser, Page
from beacon.portal.smoke import cors_errors, evaluate_smoke, run_portal_smoke

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def portal() -> Iterator[PortalServer]:
    server = PortalServer()  # its port first: the runner's CORS allowlist must name it
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runner(portal: PortalServer) -> Iterator[EmbeddedRunner]:
    with EmbeddedRunner(extra_env={"CORS_ORIGINS": portal.url}) as running:
        portal.api_base = running.url
        portal.start()
        yield running


@pytest.fixture(scope="module")
def trusted_seed(runner: EmbeddedRunner) -> str:
    assert runner.credentials is not None
    return base64.b64encode(read_key_file(runner.credentials.signing_key_file).seed).decode()


@pytest.fixture(scope="module")
def smoke(
    runner: EmbeddedRunner, portal: PortalServer, trusted_seed: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The phase's whole drive, once: import the trusted key, submit a signed job from the UI, follow it."""
    return run_portal_smoke(
        runner.url,
        trusted_seed,
        tmp_path_factory.mktemp("shots"),
        regions=("US", "EU"),
        max_tokens=8,
        portal_server=portal,
    )


@pytest.fixture
def page(browser: Browser, portal: PortalServer, runner: EmbeddedRunner) -> Iterator[Page]:
    tab = browser.new_page()
    tab.navigate(portal.url + "/")
    tab.wait_for("document.body.dataset.ready === 'true'", 30)
    yield tab
    tab.close()


def _generate_key(page: Page) -> str:
    """Click "Generate a new keypair"; the trust state it ends in."""
    page.evaluate("document.querySelector('#keypair').dataset.state = 'clicked'")
    page.click("#key-generate")
    return _state(page, "#keypair", "trusted", "untrusted", "error")


def _state(page: Page, selector: str, *states: str, timeout_s: float = 30) -> str:
    return str(
        page.wait_for(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)}).dataset.state;"
            f" return {json.dumps(list(states))}.includes(s) ? s : null; }})()",
            timeout_s,
        )
    )


def test_a_job_signed_in_the_browser_is_accepted_followed_verified_and_compared(smoke: Any) -> None:
    verdicts = {v.check_id: v for v in evaluate_smoke(smoke)}
    failed = {k: (v.actual, v.detail) for k, v in verdicts.items() if not v.passed}
    assert not failed
    submitted = smoke.step("submit").rendered["submission"]
    assert submitted["state"] == "accepted" and "202" in submitted["text"]
    preflight = next(e for e in smoke.api_exchanges() if e["preflight"])
    assert preflight["request_headers"]["origin"] == smoke.portal_origin
    assert "idempotency-key" in preflight["request_headers"]["access-control-request-headers"]


def test_an_untrusted_key_is_shown_as_such_and_its_submission_refused_with_the_problem(page: Page) -> None:
    assert _generate_key(page) == "untrusted"
    assert page.evaluate("document.querySelector('#key-trust').dataset.status") == "unknown"
    assert "non-extractable" in page.evaluate("document.querySelector('#key-storage').textContent")
    page.evaluate(
        "document.querySelectorAll('#questions input[name=question]').forEach((b, i) => b.checked = i === 0)"
    )
    page.click("#submit")
    assert _state(page, "#submission", "accepted", "refused") == "refused"
    problem = page.evaluate(
        "(() => { const p = document.querySelector('#submission .problem');"
        " return {code: p.dataset.code, text: p.textContent}; })()"
    )
    assert problem["code"] == "key_unknown"
    assert "request id" in problem["text"] and "TRUSTED_KEYS" in problem["text"]


def test_the_key_stays_in_indexeddb_across_reloads(page: Page, portal: PortalServer) -> None:
    _generate_key(page)
    kid = page.evaluate("document.querySelector('#key-kid').textContent")
    page.navigate(portal.url + "/")
    page.wait_for("document.body.dataset.ready === 'true'", 30)
    _state(page, "#keypair", "trusted", "untrusted", "error")
    assert page.evaluate("document.querySelector('#key-kid').textContent") == kid


def test_an_origin_the_runner_does_not_list_is_refused_and_the_console_says_cors(
    runner: EmbeddedRunner, trusted_seed: str, tmp_path: Path
) -> None:
    smoke = run_portal_smoke(runner.url, trusted_seed, tmp_path)  # a portal on a port CORS_ORIGINS lacks
    assert smoke.portal_origin != smoke.api_origin
    errors = [c for c in smoke.console() if c["level"] == "error"]
    assert cors_errors(errors), errors
    verdicts = {v.check_id: v.passed for v in evaluate_smoke(smoke)}
    for check_id in (
        "no_console_errors",
        "questions_loaded",
        "responses_2xx",
        "key_trusted",
        "job_submitted",
    ):
        assert verdicts[check_id] is False, check_id
    assert smoke.step("open").rendered["connection"].startswith("the API at")


def verify_receipts_with(
    tab: Page, portal: PortalServer, job_id: str, pattern: str, rewrite: Callable[[str, bytes], bytes]
) -> str:
    """Open the job with the responses matching ``pattern`` rewritten, press "verify all": the verdict."""
    tab.intercept_responses(pattern, rewrite)
    tab.navigate(f"{portal.url}/#job={job_id}")
    _state(tab, "#job", "completed", "failed", "cancelled", "timed_out", timeout_s=60)
    tab.wait_for("!document.querySelector('#verify-all').disabled", 10)
    tab.click("#verify-all")
    return _state(tab, "#receipts", "valid", "invalid", timeout_s=60)


def test_a_tampered_receipt_fails_verification_in_the_browser(
    browser: Browser, portal: PortalServer, smoke: Any
) -> None:
    job_id = smoke.step("submit").rendered["job"]["id"]

    def tamper(url: str, body: bytes) -> bytes:
        job = json.loads(body)
        job["executions"][0]["receipt"]["timings"]["duration_s"] = 0.001  # the runner lies about one receipt
        return json.dumps(job).encode()

    tab = browser.new_page()
    try:
        assert (
            verify_receipts_with(tab, portal, job_id, "*/api/v1/jobs/*include=executions*", tamper)
            == "invalid"
        )
        verdicts = tab.evaluate(
            "[...document.querySelectorAll('#receipt-results > li')].map((li) => [li.dataset.verdict, li.textContent])"
        )
        assert verdicts[0][0] == "invalid" and "signature does not match" in verdicts[0][1]
        assert all(v == "valid" for v, _ in verdicts[1:])
    finally:
        tab.close()


def test_a_runner_signing_key_that_is_not_the_runners_is_caught(
    browser: Browser, portal: PortalServer, smoke: Any
) -> None:
    job_id = smoke.step("submit").rendered["job"]["id"]
    impostor = Ed25519Key.generate().public_key_b64

    def other_keys(url: str, body: bytes) -> bytes:
        keys = json.loads(body)
        for entry in keys["keys"]:
            entry["public_key"] = impostor
        return json.dumps(keys).encode()

    tab = browser.new_page()
    try:
        assert verify_receipts_with(tab, portal, job_id, "*/api/v1/keys", other_keys) == "invalid"
        assert "not one of the runner's keys" in tab.evaluate(
            "document.querySelector('#receipt-results').textContent"
        )
    finally:
        tab.close()


def test_every_control_has_a_label_and_the_composer_is_reachable_by_keyboard(page: Page) -> None:
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input, textarea, select')]"
        ".filter((c) => c.labels.length === 0 && !c.getAttribute('aria-label')).map((c) => c.outerHTML)"
    )
    assert unlabelled == []
    nameless = page.evaluate(
        "[...document.querySelectorAll('button')].filter((b) => !b.textContent.trim()).length"
    )
    assert nameless == 0
    page.evaluate("document.querySelector('.skip').focus()")
    page.press("Enter", text="\r")  # the skip link
    assert page.evaluate("location.hash") == "#composer"
