"""Log output cannot be forged or leak secrets: text mode escapes every field; one redaction for both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from beacon.logging import JsonFormatter, RequestIdFilter, TextFormatter, escape_controls


@pytest.fixture
def captured() -> Iterator[Callable[[logging.Formatter], io.StringIO]]:
    """Route the root logger through a formatter into a buffer (the handler configure_logging builds)."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    level = root.level

    def attach(formatter: logging.Formatter) -> io.StringIO:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
        handlers.append(handler)
        root.setLevel(logging.INFO)
        return stream

    yield attach
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


FORGED = "/x\n12:00:00 INFO    beacon.access: POST /admin/config 200 1.0ms"


def test_a_newline_in_a_field_cannot_start_a_forged_line(captured: Any) -> None:
    stream = captured(TextFormatter())
    logging.getLogger("beacon.access").info("%s %s %s", "GET", FORGED, 404, extra={"request_id": "r\r\n1"})
    output = stream.getvalue()
    assert output.count("\n") == 1  # one record, one line
    assert "\\n12:00:00 INFO    beacon.access: POST /admin/config 200" in output
    assert "[r\\r\\n1]" in output


def test_control_characters_become_visible_escapes() -> None:
    assert escape_controls("a\tb\x00c\x1b[31md\x7f\x85\u2028é") == "a\\tb\\x00c\\x1b[31md\\x7f\\x85\\u2028é"


def test_text_mode_redacts_and_indents_exception_text(captured: Any) -> None:
    stream = captured(TextFormatter())
    try:
        raise RuntimeError("cannot reach postgresql://beacon:hunter2@db/beacon\nINFO forged: line")
    except RuntimeError:
        logging.getLogger("beacon.test").exception("connect failed with Bearer abc.def")
    output = stream.getvalue()
    assert "hunter2" not in output and "abc.def" not in output
    first, *rest = output.rstrip("\n").split("\n")
    assert first.endswith("beacon.test: connect failed with Bearer ****")
    assert rest and all(line.startswith("    ") for line in rest)  # nothing in a traceback starts a record


def test_json_mode_redacts_string_fields_too(captured: Any) -> None:
    stream = captured(JsonFormatter())
    logging.getLogger("beacon.access").info(
        "GET /x", extra={"path": "/x?token=s3cr3t", "client": "1.2.3.4", "status": 200}
    )
    entry = json.loads(stream.getvalue())
    assert "s3cr3t" not in stream.getvalue()
    assert (entry["client"], entry["status"]) == ("1.2.3.4", 200)
