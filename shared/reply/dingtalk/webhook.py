"""Posting to DingTalk's ``sessionWebhook``: only to DingTalk, only while it is valid, errcode checked.

The webhook URL comes from the callback body, so it is attacker-controlled data until the
signature is checked, and still a way to make the function POST anywhere: only the allowed
hosts are used (DingTalk's by default). DingTalk answers HTTP 200 with a non-zero ``errcode``
for refused messages, so the body is always checked.
"""

from __future__ import annotations

import functools
import random
import time
from collections import deque
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

import requests

from shared.common import log
from shared.common.errors import WebhookError

THROTTLED = {130101, 130102}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ATTEMPTS = 4
BASE_DELAY_SECONDS = 0.5
RATE_LIMIT_MESSAGES = 20
RATE_LIMIT_WINDOW_SECONDS = 60.0

logger = log.get("webhook")


@functools.lru_cache(maxsize=1)
def shared_session() -> requests.Session:
    """One session per FC instance: warm invocations reuse the kept-alive TLS connection to DingTalk.

    It only ever talks to the allow-listed DingTalk hosts, so it skips the proxy and netrc lookups in
    the environment that requests otherwise repeats on every call (about 1 ms each time).
    """
    session = requests.Session()
    session.trust_env = False
    return session


class WebhookSender:
    def __init__(self, allowed_hosts: Tuple[str, ...], *, session: Optional[requests.Session] = None,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random) -> None:
        self.allowed_hosts = allowed_hosts
        self.session = session or shared_session()
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.sent_at: deque[float] = deque(maxlen=RATE_LIMIT_MESSAGES)

    def check(self, url: str, expires_ms: Optional[int]) -> None:
        """Raise ``WebhookError`` for a host we may not post to or an expired session."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts:
            raise WebhookError(f"webhook host {host or '?'} is not in ALLOWED_WEBHOOK_HOSTS")
        if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK):
            raise WebhookError(f"webhook scheme {parts.scheme} is not https")
        if expires_ms is not None and expires_ms <= self.clock() * 1000:
            raise WebhookError("session webhook has expired")

    def post(self, url: str, body: Dict[str, Any]) -> None:
        """POST one message; raise ``WebhookError`` (``retryable`` for throttling/5xx/network)."""
        try:
            response = self.session.post(url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise WebhookError(f"webhook unreachable: {type(exc).__name__}", retryable=True) from None
        if response.status_code >= 500:
            raise WebhookError(f"webhook HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise WebhookError(f"webhook HTTP {response.status_code}")
        try:
            result = response.json()
        except ValueError:
            raise WebhookError("webhook answered with a non-JSON body") from None
        errcode = result.get("errcode", 0) if isinstance(result, dict) else 0
        if errcode:
            raise WebhookError(f"webhook errcode {errcode}: {result.get('errmsg', '')}",
                               retryable=errcode in THROTTLED)

    def _pace(self, expires_ms: Optional[int]) -> None:
        """DingTalk allows a robot 20 messages a minute: a long answer waits rather than be refused."""
        if len(self.sent_at) < RATE_LIMIT_MESSAGES:
            return
        wait = self.sent_at[0] + RATE_LIMIT_WINDOW_SECONDS - self.clock()
        if wait <= 0:
            return
        if expires_ms is not None and (self.clock() + wait) * 1000 >= expires_ms:
            raise WebhookError("session webhook would expire before the rate limit allows another message")
        logger.info("pacing: %d messages in the last minute, waiting %.1fs", RATE_LIMIT_MESSAGES, wait)
        self.sleep(wait)

    def post_with_retry(self, url: str, body: Dict[str, Any], expires_ms: Optional[int]) -> None:
        """Retry what DingTalk may accept later (network, 5xx, throttling) with exponential backoff
        and jitter, at most ``ATTEMPTS`` times; give up rather than wait past the webhook's expiry."""
        for attempt in range(1, ATTEMPTS + 1):
            self._pace(expires_ms)
            try:
                self.post(url, body)
                self.sent_at.append(self.clock())
                return
            except WebhookError as exc:
                delay = BASE_DELAY_SECONDS * 2 ** (attempt - 1) * (0.5 + self.jitter())
                expires_first = expires_ms is not None and (self.clock() + delay) * 1000 >= expires_ms
                if not exc.retryable or attempt == ATTEMPTS or expires_first:
                    raise
                logger.warning("%s; retry %d in %.2fs", exc, attempt, delay)
                self.sleep(delay)
