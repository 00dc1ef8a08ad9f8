"""Logging: human-readable in debug mode, one JSON object per line in release mode.

Every line written while a request is handled carries its ``request_id`` (a context variable set by
the HTTP middleware). A filter scrubs bearer tokens and URL passwords from messages, so a secret
that slips into a log call never reaches the output.
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


def redact(text: str) -> str:
    """``text`` with bearer tokens, URL passwords and ``token=…``-style values replaced by ``****``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, request_id, and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.context = f" [{request_id}]" if request_id else ""
        return super().format(record)


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
