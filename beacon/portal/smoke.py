"""The plan's "Portal Smoke via Browser", done by a program: headless Chromium on the portal, served
from another origin than the API's, driven through the page's own controls.

:func:`run_portal_smoke` opens the portal, imports a signing key, composes, signs and submits a job
from the UI, follows it, verifies its receipts in the browser, opens its difference report and
refreshes the recent executions and reports — and records, step by step, what the browser itself
reported (console errors, every request with its status and headers, CORS preflights included), what
the page rendered, and a screenshot. The judging functions (:func:`preflight_problems`, …) are
separate, so the Day-1 ``portal`` phase and the tests read the same evidence the same way.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from beacon.portal.browser import Browser, BrowserError, Exchange, Page
from beacon.portal.server import PortalServer
from beacon.worker.lifecycle import JOB_TERMINAL

PREFLIGHT_METHODS = ("POST",)
PREFLIGHT_HEADERS = ("content-type", "idempotency-key")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class SmokeStep:
    """One step of the smoke: what the browser sent and logged during it, and what it rendered."""

    name: str
    rendered: dict[str, Any] = field(default_factory=dict)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    screenshot: str | None = None
    error: str | None = None


@dataclass
class PortalSmoke:
    browser: str
    portal_origin: str
    api_origin: str
    steps: list[SmokeStep] = field(default_factory=list)

    def step(self, name: str) -> SmokeStep | None:
        return next((s for s in self.steps if s.name == name), None)

    def exchanges(self) -> list[dict[str, Any]]:
        return [dict(e, step=s.name) for s in self.steps for e in s.exchanges]

    def api_exchanges(self) -> list[dict[str, Any]]:
        """Requests to the API's origin (the portal's own files are not the API)."""
        return [e for e in self.exchanges() if origin_of(e["url"]) == self.api_origin]

    def console(self) -> list[dict[str, Any]]:
        return [dict(c, step=s.name) for s in self.steps for c in s.console]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preflight_problems(exchange: dict[str, Any], portal_origin: str) -> list[str]:
    """What is wrong with a CORS preflight the browser made (empty: 200/204 with the expected headers)."""
    problems = []
    headers = exchange.get("response_headers") or {}
    if exchange.get("status") not in (200, 204):
        problems.append(
            f"status {exchange.get('status')} ({exchange.get('failure') or exchange.get('cors_error')})"
        )
    if headers.get("access-control-allow-origin") != portal_origin:
        problems.append(f"Access-Control-Allow-Origin {headers.get('access-control-allow-origin')!r}")
    methods = {m.strip().upper() for m in headers.get("access-control-allow-methods", "").split(",")}
    if not set(PREFLIGHT_METHODS) <= methods:
        problems.append(f"Access-Control-Allow-Methods {headers.get('access-control-allow-methods')!r}")
    allowed = {h.strip().lower() for h in headers.get("access-control-allow-headers", "").split(",")}
    if not set(PREFLIGHT_HEADERS) <= allowed:
        problems.append(f"Access-Control-Allow-Headers {headers.get('access-control-allow-headers')!r}")
    return problems


def response_problems(exchange: dict[str, Any], portal_origin: str) -> list[str]:
    """What is wrong with a (non-preflight) API response the page read: not 2xx, or without CORS."""
    problems = []
    status = exchange.get("status")
    if not (isinstance(status, int) and 200 <= status < 300):
        problems.append(
            f"status {status} ({exchange.get('failure') or exchange.get('cors_error') or 'no response'})"
        )
    allow = (exchange.get("response_headers") or {}).get("access-control-allow-origin")
    if status is not None and allow != portal_origin:
        problems.append(f"Access-Control-Allow-Origin {allow!r}")
    return problems


def cors_errors(console: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Console entries that are CORS refusals ("… has been blocked by CORS policy")."""
    return [c for c in console if "cors" in c.get("text", "").lower()]


def _state(page: Page, selector: str, states: tuple[str, ...], timeout_s: float) -> str:
    wanted = json.dumps(list(states))
    return str(
        page.wait_for(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)}).dataset.state;"
            f" return {wanted}.includes(s) ? s : null; }})()",
            timeout_s,
        )
    )


RENDERED = """(() => {
  const q = (s) => document.querySelector(s);
  const all = (s) => [...document.querySelectorAll(s)];
  return {
    connection: q('#connection').textContent,
    questions: all('#questions input[name=question]').length,
    key: {kid: q('#key-kid').textContent, trust: q('#key-trust').dataset.status, label: q('#key-trust').textContent,
          storage: q('#key-storage').textContent, state: q('#keypair').dataset.state},
    submission: {state: q('#submission').dataset.state, text: q('#submission').textContent.trim(),
                 problem_code: q('#submission .problem')?.dataset.code ?? null},
    job: {id: q('#job-id').textContent, status: q('#job-status').textContent, state: q('#job').dataset.state,
          executions: all('#job-executions tbody tr').map((tr) => ({
            region: tr.cells[0].textContent, question: tr.cells[1].textContent, status: tr.dataset.status,
            latency: tr.cells[4].textContent}))},
    receipts: {state: q('#receipts').dataset.state,
               verdicts: all('#receipt-results > li').map((li) => ({verdict: li.dataset.verdict, text: li.textContent}))},
    diff: {state: q('#diff').dataset.state, signature: q('#diff').dataset.signature ?? null, summary: q('#diff-summary').textContent,
           items: all('#diff-items table').length, regions: all('#diff-items table:first-of-type thead th').length - 1,
           answers: all('#diff-items td.answer').filter((td) => td.textContent !== '–').length},
    recent: {state: q('#recent').dataset.state, executions: all('#recent-executions tbody tr').length,
             diffs: all('#recent-diffs button').length,
             api_executions: Number(document.body.dataset.executions ?? -1), api_diffs: Number(document.body.dataset.diffs ?? -1)},
  };
})()"""


class _Recorder:
    def __init__(self, page: Page, out_dir: Path, smoke: PortalSmoke) -> None:
        self.page, self.out_dir, self.smoke = page, out_dir, smoke
        self._console_seen = 0
        self._exchanges_seen: set[str] = set()
        self._taken: list[tuple[SmokeStep, list[Exchange]]] = []

    def step(self, name: str, action: Any, selector: str | None = None) -> SmokeStep:
        step = SmokeStep(name)
        try:
            action()
        except BrowserError as exc:
            step.error = str(exc)
        step.rendered = self.page.evaluate(RENDERED) or {}
        fresh = [e for rid, e in self.page.exchanges.items() if rid not in self._exchanges_seen]
        self._exchanges_seen.update(e.request_id for e in fresh)
        self._taken.append((step, fresh))
        step.console = self.page.console[self._console_seen :]
        self._console_seen = len(self.page.console)
        shot = self.out_dir / f"{len(self.smoke.steps) + 1:02d}-{name}.png"
        try:
            self.page.screenshot(shot, selector)
            step.screenshot = str(shot)
        except BrowserError as exc:
            step.error = step.error or f"screenshot: {exc}"
        self.smoke.steps.append(step)
        return step

    def finish(self) -> PortalSmoke:
        """Let the last responses arrive, then write every step's requests down."""
        self.page.settle()
        for step, exchanges in self._taken:
            step.exchanges = [e.as_dict() for e in exchanges]
        if self.smoke.steps:  # what the browser logged while settling belongs to the last step
            self.smoke.steps[-1].console.extend(self.page.console[self._console_seen :])
            self._console_seen = len(self.page.console)
        return self.smoke


def run_portal_smoke(
    runner_url: str,
    seed_b64: str,
    out_dir: Path,
    *,
    questions: int = 1,
    regions: tuple[str, ...] = ("US", "EU", "ASIA"),
    max_tokens: int = 16,
    job_timeout_s: float = 120.0,
    portal_host: str = "127.0.0.1",
    portal_port: int = 0,
    browser_path: str | None = None,
    portal_server: PortalServer | None = None,
) -> PortalSmoke:
    """Drive the portal (served on ``portal_host:portal_port``, or by the running ``portal_server``)
    against ``runner_url``; see the module doc.

    BrowserUnavailable when there is no Chromium; OSError when the portal's port is taken.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    api_origin = origin_of(runner_url)
    with contextlib.ExitStack() as stack:
        portal = portal_server or stack.enter_context(PortalServer(runner_url, portal_host, portal_port))
        browser = stack.enter_context(Browser(browser_path))
        smoke = PortalSmoke(browser.version, portal.url, api_origin)
        page = browser.new_page()
        record = _Recorder(page, out_dir, smoke)

        def open_portal() -> None:
            page.navigate(portal.url + "/")
            page.wait_for("document.body.dataset.ready === 'true'", 30)
            _state(page, "#recent", ("loaded", "error"), 30)

        def import_key() -> None:
            page.evaluate(
                f"document.querySelector('#key-seed').value = {json.dumps(seed_b64)};"
                " document.querySelector('#key-import').requestSubmit()"
            )
            _state(page, "#keypair", ("trusted", "untrusted", "error"), 30)

        def compose_and_submit() -> None:
            page.evaluate(
                "(() => { const boxes = [...document.querySelectorAll('#questions input[name=question]')];"
                f" boxes.forEach((b, i) => b.checked = i < {int(questions)});"
                f" const wanted = {json.dumps(list(regions))};"
                " document.querySelectorAll('#regions input').forEach((b) => b.checked = wanted.includes(b.value));"
                f" document.querySelector('#max-tokens').value = '{int(max_tokens)}'; }})()"
            )
            page.evaluate("document.querySelector('#submit').focus()")
            page.press("Enter", text="\r")  # the keyboard, not a scripted click
            _state(page, "#submission", ("accepted", "refused"), 30)

        def follow_job() -> None:
            _state(page, "#job", tuple(JOB_TERMINAL), job_timeout_s)

        def verify_receipts() -> None:
            page.wait_for("!document.querySelector('#verify-all').disabled", 10)
            page.click("#verify-all")
            _state(page, "#receipts", ("valid", "invalid"), 60)

        def open_diff() -> None:
            _state(page, "#diff", ("loaded", "absent", "error"), 60)

        def refresh_recent() -> None:
            page.evaluate("document.querySelector('#recent').dataset.state = 'loading'")
            page.click("#recent-refresh")
            _state(page, "#recent", ("loaded", "error"), 30)

        record.step("open", open_portal, None)
        record.step("key", import_key, "#keypair")
        submitted = record.step("submit", compose_and_submit, "#composer")
        if submitted.rendered.get("submission", {}).get("state") == "accepted":
            record.step("job", follow_job, "#job")
            record.step("receipts", verify_receipts, "#receipts")
            record.step("diff", open_diff, "#diff")
        record.step("recent", refresh_recent, "#recent")
        return record.finish()


@dataclass(frozen=True)
class Verdict:
    """One check of the ``portal`` phase judged from a :class:`PortalSmoke`."""

    check_id: str
    passed: bool
    expected: Any
    actual: Any
    detail: str | None = None


CHECK_IDS = (
    "cross_origin",
    "questions_loaded",
    "executions_loaded",
    "diffs_loaded",
    "key_trusted",
    "job_submitted",
    "job_followed",
    "receipts_verified",
    "diff_rendered",
    "preflights_ok",
    "responses_2xx",
    "no_console_errors",
    "screenshots_saved",
)


def _paths(exchanges: list[dict[str, Any]], path: str, method: str = "GET") -> list[dict[str, Any]]:
    return [
        e
        for e in exchanges
        if urlsplit(e["url"]).path == path and e["method"] == method and not e["preflight"]
    ]


def _read_verdict(check_id: str, smoke: PortalSmoke, path: str, rendered: int, listed: int) -> Verdict:
    calls = _paths(smoke.api_exchanges(), path)
    statuses = [e["status"] for e in calls]
    ok = (
        bool(calls)
        and all(isinstance(s, int) and 200 <= s < 300 for s in statuses)
        and rendered == listed >= 0
    )
    return Verdict(
        check_id,
        ok,
        {"requests": f"GET {path} from the browser, 2xx", "rendered": "what the API listed"},
        {"statuses": statuses, "rendered": rendered, "listed": listed},
        None if calls else f"the browser never requested {path}",
    )


def evaluate_smoke(smoke: PortalSmoke) -> list[Verdict]:
    """Every check of the ``portal`` phase, judged from what the browser recorded."""
    verdicts: list[Verdict] = []
    last = smoke.steps[-1].rendered if smoke.steps else {}
    opened = smoke.step("open")
    recent = last.get("recent", {})
    verdicts.append(
        Verdict(
            "cross_origin",
            smoke.portal_origin != smoke.api_origin,
            "the portal's origin differs from the API's",
            {"portal": smoke.portal_origin, "api": smoke.api_origin},
        )
    )
    questions = opened.rendered.get("questions", 0) if opened else 0
    listed_questions = questions if any(_paths(smoke.api_exchanges(), "/api/v1/questions")) else -1
    verdicts.append(
        _read_verdict("questions_loaded", smoke, "/api/v1/questions", questions, listed_questions)
    )
    if verdicts[-1].passed and questions == 0:
        verdicts[-1] = Verdict("questions_loaded", False, "at least one question rendered", 0)
    verdicts.append(
        _read_verdict(
            "executions_loaded",
            smoke,
            "/api/v1/executions",
            recent.get("executions", -2),
            recent.get("api_executions", -1),
        )
    )
    verdicts.append(
        _read_verdict(
            "diffs_loaded", smoke, "/api/v1/diffs", recent.get("diffs", -2), recent.get("api_diffs", -1)
        )
    )
    key_step = smoke.step("key")
    key = key_step.rendered.get("key", {}) if key_step else {}
    verdicts.append(
        Verdict(
            "key_trusted",
            key.get("state") == "trusted" and "non-extractable" in key.get("storage", ""),
            {"trust": "trusted", "private key": "non-extractable"},
            key,
            key_step.error if key_step else "no key step",
        )
    )
    submit = smoke.step("submit")
    submission = submit.rendered.get("submission", {}) if submit else {}
    posts = _paths([e for e in smoke.api_exchanges() if e["step"] == "submit"], "/api/v1/jobs", "POST")
    verdicts.append(
        Verdict(
            "job_submitted",
            submission.get("state") == "accepted"
            and [e["status"] for e in posts] == [202]
            and all("idempotency-key" in e["request_headers"] for e in posts),
            {"POST /api/v1/jobs": 202, "Idempotency-Key": "sent", "page": "accepted"},
            {"statuses": [e["status"] for e in posts], "page": submission},
            submit.error if submit else None,
        )
    )
    job_step = smoke.step("job")
    job = job_step.rendered.get("job", {}) if job_step else {}
    executions = job.get("executions", [])
    verdicts.append(
        Verdict(
            "job_followed",
            job.get("state") == "completed"
            and bool(executions)
            and all(e["status"] == "completed" for e in executions),
            {"job": "completed", "executions": "each completed, with its latency"},
            {"state": job.get("state"), "executions": executions},
            job_step.error if job_step else "the job was not submitted",
        )
    )
    receipts_step = smoke.step("receipts")
    receipts = receipts_step.rendered.get("receipts", {}) if receipts_step else {}
    verdicts_seen = [r["verdict"] for r in receipts.get("verdicts", [])]
    verdicts.append(
        Verdict(
            "receipts_verified",
            receipts.get("state") == "valid" and len(verdicts_seen) == len(executions) > 0,
            {"every receipt": "verified in the browser (signature and inclusion)", "count": len(executions)},
            {"state": receipts.get("state"), "verdicts": receipts.get("verdicts", [])},
            receipts_step.error if receipts_step else "no job to verify",
        )
    )
    diff_step = smoke.step("diff")
    diff = diff_step.rendered.get("diff", {}) if diff_step else {}
    verdicts.append(
        Verdict(
            "diff_rendered",
            diff.get("state") == "loaded"
            and diff.get("signature") == "valid"
            and diff.get("items", 0) > 0
            and diff.get("answers", 0) >= 2,
            {"report": "loaded, its signature verified", "answers": "side by side, at least two regions"},
            diff,
            diff_step.error if diff_step else "no job to compare",
        )
    )
    preflights = [e for e in smoke.api_exchanges() if e["preflight"]]
    bad_preflights = {e["url"]: p for e in preflights if (p := preflight_problems(e, smoke.portal_origin))}
    verdicts.append(
        Verdict(
            "preflights_ok",
            bool(preflights) and not bad_preflights,
            {
                "status": "200/204",
                "Access-Control-Allow-Origin": smoke.portal_origin,
                "allows": [*PREFLIGHT_METHODS, *PREFLIGHT_HEADERS],
            },
            {"preflights": len(preflights), "problems": bad_preflights},
            None
            if preflights
            else "the browser sent no preflight (the submission needs one: JSON body, Idempotency-Key)",
        )
    )
    reads = [e for e in smoke.api_exchanges() if not e["preflight"]]
    bad_reads = [
        f"{e['method']} {e['url']}: {'; '.join(p)}"
        for e in reads
        if (p := response_problems(e, smoke.portal_origin))
    ]
    verdicts.append(
        Verdict(
            "responses_2xx",
            bool(reads) and not bad_reads,
            "every API response 2xx with Access-Control-Allow-Origin",
            {"responses": len(reads), "problems": bad_reads},
        )
    )
    errors = [c for c in smoke.console() if c["level"] == "error"]
    verdicts.append(
        Verdict(
            "no_console_errors",
            bool(smoke.steps) and not errors,  # a console that was never open shows nothing
            {"console errors": 0, "CORS errors": 0},
            {"errors": errors, "cors": len(cors_errors(errors))},
        )
    )
    shots = [s.screenshot for s in smoke.steps if s.screenshot and Path(s.screenshot).is_file()]
    verdicts.append(
        Verdict(
            "screenshots_saved",
            len(shots) == len(smoke.steps) > 0,
            "one screenshot per step",
            {"steps": len(smoke.steps), "screenshots": [Path(s).name for s in shots]},
        )
    )
    return verdicts
