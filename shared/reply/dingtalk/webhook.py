"""Posting to DingTalk's ``sessionWebhook``: only to DingTalk, only while it is valid, errcode checked.

The webhook URL arrives inside the message, so it decides where the answer (and with it the
conversation's history) is sent. It is parsed once, by the same parser the HTTP client uses
(``requests`` prepares it, ``urllib3`` splits it), and the string that passed the checks is the
one posted; redirects are never followed. Anything a parser could read two ways is refused
outright: user info (``@``), backslashes, encoded separators, non-default ports, plain HTTP
(loopback test hosts aside). DingTalk answers HTTP 200 with a non-zero ``errcode`` for refused
messages, so the body is always checked.

Errcode 130101 means the robot sent too fast: a robot may post about 20 messages a minute, then
DingTalk blocks it for about 10 minutes (PLATFORM.md, "More throttling codes"), so it is not
retried within seconds; the answer goes through the robot OpenAPI instead when the app is set up.
"""

from __future__ import annotations

import re
import time
from collections import deque
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import requests

from shared.common import log
from shared.common.errors import WebhookError
from shared.reply.backoff import Backoff, fits
from shared.reply.dingtalk.session import dingtalk_session
from shared.reply.urls import parse_once

THROTTLED_FOR_MINUTES = {130101, 130102}
SESSION_GONE = {300001}
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
ATTEMPTS = 4
RATE_LIMIT_MESSAGES = 20
RATE_LIMIT_WINDOW_SECONDS = 60.0
# Characters and escapes that make one URL mean different places to different parsers.
AMBIGUOUS = re.compile(r"[\\@\s\x00-\x1f\x7f]|%(2f|5c|40|00|2e|3f|23)", re.I)

logger = log.get("webhook")


class Webhook(NamedTuple):
    """A session webhook that passed the checks; ``url`` is the exact string that is posted to."""

    url: str
    expires_ms: Optional[int]


def check_webhook(url: str, allowed_hosts: Tuple[str, ...], expires_ms: Optional[int], now: float) -> Webhook:
    """Raise ``WebhookError`` unless ``url`` is an unexpired HTTPS URL on an allowed host."""
    if not isinstance(url, str) or AMBIGUOUS.search(url):
        raise WebhookError("webhook URL has user info, a backslash or an encoded separator")
    try:
        prepared_url, parts = parse_once(url)
    except ValueError as exc:
        raise WebhookError(f"webhook URL does not parse: {exc}") from None
    host = (parts.host or "").lower()
    if host not in allowed_hosts:
        raise WebhookError(f"webhook host {host or '?'} is not in ALLOWED_WEBHOOK_HOSTS")
    if parts.auth is not None:
        raise WebhookError("webhook URL has user info")
    loopback = host in LOOPBACK
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise WebhookError(f"webhook scheme {parts.scheme} is not https")
    if parts.port not in (None, 443) and not loopback:
        raise WebhookError(f"webhook port {parts.port} is not the HTTPS default")
    if expires_ms is not None and expires_ms <= now * 1000:
        raise WebhookError("session webhook has expired", gone=True)
    return Webhook(prepared_url, expires_ms)


class WebhookSender:
    def __init__(self, allowed_hosts: Tuple[str, ...], *, session: Optional[requests.Session] = None,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, backoff: Backoff = Backoff()) -> None:
        self.allowed_hosts = allowed_hosts
        self.session = session or dingtalk_session()
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff
        self.sent_at: deque[float] = deque(maxlen=RATE_LIMIT_MESSAGES)

    def check(self, url: str, expires_ms: Optional[int]) -> Webhook:
        return check_webhook(url, self.allowed_hosts, expires_ms, self.clock())

    def post(self, webhook: Webhook, body: Dict[str, Any]) -> None:
        """POST one message; raise ``WebhookError`` (``retryable`` for throttling/5xx/network)."""
        try:
            response = self.session.post(webhook.url, json=body, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise WebhookError(f"webhook unreachable: {type(exc).__name__}", retryable=True) from None
        if response.status_code >= 500:
            raise WebhookError(f"webhook HTTP {response.status_code}", retryable=True)
        if response.status_code >= 300:
            raise WebhookError(f"webhook HTTP {response.status_code}")
        try:
            result = response.json()
        except ValueError:
            raise WebhookError("webhook answered with a non-JSON body") from None
        errcode = result.get("errcode", 0) if isinstance(result, dict) else 0
        if errcode:
            raise WebhookError(f"webhook errcode {errcode}: {result.get('errmsg', '')}",
                               throttled=errcode in THROTTLED_FOR_MINUTES, gone=errcode in SESSION_GONE)

    def _deadline(self, webhook: Webhook) -> Optional[float]:
        return None if webhook.expires_ms is None else webhook.expires_ms / 1000

    def _pace(self, webhook: Webhook) -> None:
        """DingTalk allows a robot 20 messages a minute: a long answer waits rather than be refused."""
        if len(self.sent_at) < RATE_LIMIT_MESSAGES:
            return
        wait = self.sent_at[0] + RATE_LIMIT_WINDOW_SECONDS - self.clock()
        if wait <= 0:
            return
        if not fits(self.clock(), wait, self._deadline(webhook)):
            raise WebhookError("session webhook would expire before the rate limit allows another message")
        logger.info("pacing: %d messages in the last minute, waiting %.1fs", RATE_LIMIT_MESSAGES, wait)
        self.sleep(wait)

    def send(self, webhook: Webhook, body: Dict[str, Any]) -> None:
        """Retry what DingTalk may accept soon (network, 5xx), at most ``ATTEMPTS`` times, never waiting past
        the webhook's expiry."""
        for attempt in range(1, ATTEMPTS + 1):
            self._pace(webhook)
            try:
                self.post(webhook, body)
                self.sent_at.append(self.clock())
                return
            except WebhookError as exc:
                delay = self.backoff.delay(attempt)
                if not exc.retryable or attempt == ATTEMPTS or not fits(self.clock(), delay, self._deadline(webhook)):
                    raise
                logger.warning("%s; retry %d in %.2fs", exc, attempt, delay)
                self.sleep(delay)
