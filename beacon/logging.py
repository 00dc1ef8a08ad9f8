"""Logging: human-readable in debug mode, one JSON object per line in release mode.

Every line written while a request is handled carries its ``request_id`` (a context variable set by
the HTTP middleware). One redaction (:func:`redact`) scrubs bearer tokens, URL passwords and
``token=…`` values from the message, the exception text and every string field, in both formats,
so a secret that slips into a log call never reaches the output. In text mode every field is also
escaped (:func:`escape_controls`): a request path holding ``%0A`` cannot start a forged line, and
the lines of a traceback are indented under their record.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from beacon.config import Settings

request_id_var: ContextVar[str | None] = ContextVar("beacon_request_id", default=None)
"""The id of the request being handled in this task (None outside requests)."""

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ****"),
    (re.compile(r"(://[^/\s:@]*):[^@/\s]*@"), r"\1:****@"),
    (
        re.compile(
            r"(?i)\b((?:[a-z_]*_)?(?:token|password|secret|appkey)s?[\"']?\s*[=:]\s*[\"']?)[^\s,;\"'&]+"
        ),
        r"\1****",
    ),
)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def redact(text: str) -> str:
    """``text`` with bearer tokens, URL passwords and ``token=…``-style values replaced by ``****``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def escape_controls(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1, U+2028/9) as visible escapes: one line, always."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactingFilter(logging.Filter):
    """Renders the message once, scrubbed of secrets (extras are the caller's to keep clean)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class _RedactingFormatter(logging.Formatter):
    """What both formats share: the record's message, exception and extras, each redacted once."""

    def message(self, record: logging.LogRecord) -> str:
        return redact(record.getMessage())

    def exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info:
            return redact(self.formatException(record.exc_info))
        if record.exc_text:
            return redact(record.exc_text)
        return None

    def extras(self, record: logging.LogRecord) -> dict[str, Any]:
        return {
            key: _redacted(value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        }


class JsonFormatter(_RedactingFormatter):
    """One JSON object per record: ts, level, logger, msg, request_id, and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.message(record),
        }
        entry.update(self.extras(record))
        if (exc := self.exception(record)) is not None:
            entry["exc"] = exc
        return orjson.dumps(entry, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


class TextFormatter(_RedactingFormatter):
    """``HH:MM:SS LEVEL logger: message [request id]`` — one line per record, whatever the fields hold.

    A traceback follows on lines indented by four spaces, each escaped too, so no line a client
    can influence starts where a record does.
    """

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        context = f" [{escape_controls(str(request_id))}]" if request_id else ""
        line = (
            f"{self.formatTime(record, self.datefmt)} {record.levelname:<7} {escape_controls(record.name)}: "
            f"{escape_controls(self.message(record))}{context}"
        )
        exc = self.exception(record)
        if exc is None:
            return line
        return line + "".join(f"\n    {escape_controls(part)}" for part in exc.splitlines())


def _handler(settings: Settings) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.release else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.set_name("beacon")
    return handler


def configure_logging(settings: Settings) -> None:
    """Route every logger (uvicorn's included) through one handler on the root logger."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "beacon":
            root.removeHandler(existing)
    root.addHandler(_handler(settings))
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Alembic announces each of its autogenerate plugins at INFO on every start: not news to an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # Beacon writes its own access log (beacon.access) with the request id, route and role.
    logging.getLogger("uvicorn.access").disabled = True


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A ``log_config`` for uvicorn that defers to :func:`configure_logging` (call it first)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"level": settings.log_level.upper(), "propagate": True},
            "uvicorn.error": {"level": settings.log_level.upper(), "propagate": True},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
        },
    }
