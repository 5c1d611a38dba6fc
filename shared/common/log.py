"""Logging that follows one message across both functions and never prints a secret.

Every line of the ``dingbot`` loggers carries the bound fields (``msg_id``, ``request_id``,
``fn``), so a message can be traced from the receiver's log to the reply's. Redaction is a
filter on the root handlers, so it also covers third-party SDK lines: ``fc2`` logs its
request headers (STS token, signature) at DEBUG, and webhook URLs carry a session token.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from types import MappingProxyType
from typing import Iterator, Mapping, Set

_fields: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("dingbot_log_fields",
                                                                         default=MappingProxyType({}))
_secrets: Set[str] = set()
REDACTED = "***"
# ``extra={PLAIN: True}``: a line that must stay exactly as written (a JSON document), without bound fields.
PLAIN = "dingbot_plain"

_PATTERNS = (
    re.compile(r"(session=)[^&\s'\"]+"),
    re.compile(r"((?:security[-_]?token|x-acs-security-token|x-fc-security-token)['\"]?\s*[:=]\s*['\"]?)"
               r"[^'\"\s,}]+", re.I),
    re.compile(r"((?:authorization)['\"]?\s*[:=]\s*['\"]?)[^'\"\n,}]+", re.I),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+"),
    re.compile(r"(\bsk-)[A-Za-z0-9_\-]{6,}"),
)


def add_secret(*values: str | None) -> None:
    """Register values that must never appear in a log line (keys, app secret, STS parts)."""
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)


def redact(text: str) -> str:
    for value in sorted(_secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "dingbot_redacted", False):
            return True
        record.dingbot_redacted = True
        message = record.getMessage()
        fields = _fields.get()
        if fields and record.name.startswith("dingbot") and not getattr(record, PLAIN, False):
            message += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_filter = _RedactingFilter()


def setup(level: int) -> logging.Logger:
    """Attach redaction to whatever handlers the runtime installed (FC has its own), or add one."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    for handler in root.handlers:
        if _filter not in handler.filters:
            handler.addFilter(_filter)
    logger = logging.getLogger("dingbot")
    logger.setLevel(level)
    return logger


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add fields to every ``dingbot`` log line written inside the block."""
    merged = dict(_fields.get())
    merged.update({k: str(v) for k, v in fields.items() if v not in (None, "")})
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"dingbot.{name}")
