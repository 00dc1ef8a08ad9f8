"""How the portal phase judges what the browser recorded (beacon.portal.smoke), on recorded evidence
that is wrong in one way at a time. The real drive is in test_portal.py."""

from __future__ import annotations

from typing import Any

from beacon.portal.smoke import (
    PortalSmoke,
    SmokeStep,
    cors_errors,
    evaluate_smoke,
    preflight_problems,
    response_problems,
)

PORTAL = "http://127.0.0.1:8574"
API = "http://127.0.0.1:8090"
GOOD_PREFLIGHT = {
    "url": f"{API}/api/v1/jobs",
    "method": "OPTIONS",
    "type": "Preflight",
    "preflight": True,
    "status": 204,
    "request_headers": {"origin": PORTAL},
    "response_headers": {
        "access-control-allow-origin": PORTAL,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "Content-Type, Authorization, Idempotency-Key",
    },
    "failure": None,
    "cors_error": None,
}


def _get(path: str, status: int | None = 200, allow: str | None = PORTAL) -> dict[str, Any]:
    return {
        "url": API + path,
        "method": "GET",
        "type": "Fetch",
        "preflight": False,
        "status": status,
        "request_headers": {},
        "response_headers": {"access-control-allow-origin": allow} if allow else {},
        "failure": None if status else "net::ERR_FAILED",
        "cors_error": None if allow else "MissingAllowOriginHeader",
    }


def test_a_good_preflight_has_no_problem() -> None:
    assert preflight_problems(GOOD_PREFLIGHT, PORTAL) == []


def test_each_wrong_preflight_header_is_named() -> None:
    def with_headers(**changes: str) -> dict[str, Any]:
        return {**GOOD_PREFLIGHT, "response_headers": {**GOOD_PREFLIGHT["response_headers"], **changes}}

    assert preflight_problems({**GOOD_PREFLIGHT, "status": 403}, PORTAL)[0].startswith("status 403")
    assert (
        "Access-Control-Allow-Origin"
        in preflight_problems(with_headers(**{"access-control-allow-origin": "*"}), PORTAL)[0]
    )
    assert "Methods" in preflight_problems(with_headers(**{"access-control-allow-methods": "GET"}), PORTAL)[0]
    assert (
        "Headers"
        in preflight_problems(with_headers(**{"access-control-allow-headers": "Content-Type"}), PORTAL)[0]
    )


def test_a_response_without_cors_or_not_2xx_is_a_problem() -> None:
    assert response_problems(_get("/api/v1/questions"), PORTAL) == []
    assert response_problems(_get("/api/v1/questions", 404), PORTAL)[0].startswith("status 404")
    assert (
        "Access-Control-Allow-Origin None"
        in response_problems(_get("/api/v1/questions", 200, None), PORTAL)[0]
    )
    assert response_problems(_get("/api/v1/questions", None, None), PORTAL)[0].startswith("status None")


def test_cors_refusals_are_picked_from_the_console() -> None:
    console = [
        {
            "level": "error",
            "text": "Access to fetch at 'x' from origin 'y' has been blocked by CORS policy: ...",
        },
        {"level": "error", "text": "Failed to load resource: net::ERR_FAILED"},
    ]
    assert cors_errors(console) == console[:1]


def _smoke(steps: list[SmokeStep]) -> PortalSmoke:
    return PortalSmoke("Chrome/test", PORTAL, API, steps)


def _verdicts(smoke: PortalSmoke) -> dict[str, bool]:
    return {v.check_id: v.passed for v in evaluate_smoke(smoke)}


def test_nothing_recorded_passes_nothing_but_the_origins() -> None:
    verdicts = _verdicts(_smoke([]))
    assert verdicts.pop("cross_origin") is True
    assert not any(verdicts.values())  # nothing examined: no check passes, a silent console included


def test_the_same_origin_is_not_cross_origin() -> None:
    smoke = PortalSmoke("Chrome/test", API, API, [])
    assert _verdicts(smoke)["cross_origin"] is False


def test_questions_requested_but_none_rendered_fail() -> None:
    opened = SmokeStep("open", rendered={"questions": 0}, exchanges=[_get("/api/v1/questions")])
    assert _verdicts(_smoke([opened]))["questions_loaded"] is False
    opened.rendered["questions"] = 8
    assert _verdicts(_smoke([opened]))["questions_loaded"] is True


def test_rows_rendered_must_be_the_rows_listed() -> None:
    recent = {"state": "loaded", "executions": 3, "api_executions": 5, "diffs": 1, "api_diffs": 1}
    step = SmokeStep(
        "recent", rendered={"recent": recent}, exchanges=[_get("/api/v1/executions"), _get("/api/v1/diffs")]
    )
    verdicts = _verdicts(_smoke([step]))
    assert verdicts["executions_loaded"] is False and verdicts["diffs_loaded"] is True


def test_a_submission_without_a_preflight_or_with_a_console_error_fails() -> None:
    post = {**_get("/api/v1/jobs", 202), "method": "POST", "request_headers": {"idempotency-key": "k"}}
    submit = SmokeStep(
        "submit",
        rendered={"submission": {"state": "accepted"}},
        exchanges=[post],
        console=[{"source": "network", "level": "error", "text": "blocked by CORS policy", "url": None}],
    )
    verdicts = _verdicts(_smoke([submit]))
    assert verdicts["job_submitted"] is True
    assert verdicts["preflights_ok"] is False and verdicts["no_console_errors"] is False
    submit.exchanges.append(GOOD_PREFLIGHT)
    submit.console.clear()
    verdicts = _verdicts(_smoke([submit]))
    assert verdicts["preflights_ok"] is True and verdicts["no_console_errors"] is True
    submit.exchanges[0] = {**post, "request_headers": {}}
    assert _verdicts(_smoke([submit]))["job_submitted"] is False  # no Idempotency-Key sent
