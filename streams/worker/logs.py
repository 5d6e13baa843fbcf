"""The worker's logs through structlog: JSON lines (one object per line, for a log shipper)
when the output is not a terminal, a readable console format when it is. Faust's and
aiokafka's own log records go through the same formatter, so a log holds one format.

Customer ids are personal data: logs carry `customer_ref`, a hash of the id that is the same
for the same customer (to follow one through the logs) but does not show the id. A plain hash
of an id that follows a pattern (c-0001234) is reversed by hashing every candidate, so with
`LOYALTY_LOG_KEY` set the ref is an HMAC-SHA256 under that key instead: without the key a
ref cannot be tied to an id. The worker sets the key once at start (`use_log_key`)."""

from __future__ import annotations

import hashlib
import hmac
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


_log_key: bytes | None = None


def use_log_key(key: str | None) -> None:
    """Refs from now on are HMAC-SHA256 under `key` (None or empty: the plain hash)."""
    global _log_key  # noqa: PLW0603  # one key per process, like the logging config itself
    _log_key = key.encode() if key else None


def customer_ref(customer_id: str | None) -> str | None:
    """A stable stand-in for a customer id in logs: keyed when a log key is set."""
    if customer_id is None:
        return None
    if _log_key is not None:
        return hmac.new(_log_key, customer_id.encode(), hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(customer_id.encode()).hexdigest()[:16]


def redacted(message: str, *customer_ids: str | bytes | None) -> str:
    """`message` with every given customer id replaced by its ref (messages quote them)."""
    for given in customer_ids:
        text = given.decode(errors="replace") if isinstance(given, bytes) else given
        if text:
            message = message.replace(text, f"<customer {customer_ref(text)}>")
    return message


def resolved_format(log_format: LogFormat) -> Literal["json", "console"]:
    if log_format != "auto":
        return log_format
    return "console" if sys.stderr.isatty() else "json"


def logging_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """A logging.config.dictConfig for the whole process (Faust's Worker applies it)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if resolved_format(log_format) == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": _SHARED,
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_structlog() -> None:
    """Our own loggers (structlog.get_logger) hand their events to the stdlib handler above."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
