"""Probe helpers: header lists, log searches."""

from __future__ import annotations

import json

from beacon.harness.probes import error_log_lines, header_set, headers_allowed, log_lines_for


def test_header_lists() -> None:
    assert header_set("Content-Type, Authorization,Idempotency-Key") == {
        "content-type",
        "authorization",
        "idempotency-key",
    }
    assert headers_allowed(
        "Content-Type, Authorization, Idempotency-Key", ["idempotency-key", "Content-Type"]
    )
    assert not headers_allowed("Content-Type", ["Idempotency-Key"])
    assert headers_allowed("*", ["Anything"])
    assert not headers_allowed(None, ["Content-Type"])


def test_log_searches_in_json_and_text_logs() -> None:
    lines = [
        json.dumps(
            {
                "level": "warning",
                "msg": "problem 400 signature_missing",
                "code": "signature_missing",
                "request_id": "r1",
            }
        ),
        json.dumps(
            {
                "level": "error",
                "msg": "problem 503 submissions_paused",
                "code": "submissions_paused",
                "request_id": "r2",
            }
        ),
        json.dumps({"level": "error", "msg": "unhandled", "request_id": "r3"}),
        "Traceback (most recent call last):",
        "INFO: all good",
    ]
    text = "\n".join(lines)
    assert log_lines_for(text, "r1") == [lines[0]]
    assert error_log_lines(text) == [lines[1], lines[2], lines[3]]
