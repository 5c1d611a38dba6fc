"""DingTalk's server API (``api.dingtalk.com``): the app access token, then JSON calls that carry it.

The API is JSON over HTTPS with the token in ``x-acs-dingtalk-access-token``; no request is
signed. The official Python SDK for robots (``dingtalk-stream``) calls it with ``requests``,
and so does this module: the Tea-based ``alibabacloud-dingtalk`` SDK would add aiohttp,
cryptography and its runtime (about 20 MB) to the reply package for the same requests. Tests
check every request built here against what that SDK sends.

Errors come back as ``{"code", "message", "requestid"}`` with an HTTP status. Three codes matter
beyond "it failed" (DingTalk's "调用频次与限流"): ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``
(the app's per-API rate, 20 QPS) and ``Forbidden.AccessDenied.QpsLimitForApi`` (the API's global
rate), which last about a second: wait and try again; and
``Forbidden.AccessDenied.ApiCountLimitForOrg`` (a free organisation's monthly quota of API calls
is spent: nothing helps until next month).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

import requests

from shared.common import log
from shared.common.errors import DingbotError
from shared.reply.backoff import Backoff, fits
from shared.reply.config import DingTalkApp
from shared.reply.dingtalk.session import dingtalk_session

TOKEN_RENEW_MARGIN_SECONDS = 300
TIMEOUT_SECONDS = 5.0
QPS_LIMITED = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
API_QPS_LIMITED = "Forbidden.AccessDenied.QpsLimitForApi"
QUOTA_SPENT = "Forbidden.AccessDenied.ApiCountLimitForOrg"
# The old API's numbers for the same limits, which some gateways still answer with.
QPS_LIMITED_ERRCODE, API_QPS_LIMITED_ERRCODE, QUOTA_SPENT_ERRCODE = 90018, 90002, 90020
THROTTLED_CODES = {QPS_LIMITED, API_QPS_LIMITED, str(QPS_LIMITED_ERRCODE), str(API_QPS_LIMITED_ERRCODE)}
THROTTLE_ATTEMPTS = 3

logger = log.get("openapi")


class OpenApiError(DingbotError):
    def __init__(self, what: str, status: int, code: str = "", message: str = "") -> None:
        super().__init__(f"{what} failed: HTTP {status} {code} {message}".strip())
        self.status = status
        self.code = code

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLED_CODES or self.status == 429

    @property
    def quota_spent(self) -> bool:
        return self.code in (QUOTA_SPENT, str(QUOTA_SPENT_ERRCODE))


def _error_of(what: str, response: requests.Response) -> OpenApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("code") or body.get("errcode") or ""
    return OpenApiError(what, response.status_code, str(code), str(body.get("message") or body.get("errmsg") or ""))


class TokenCache:
    """App access tokens (valid 2 h), shared by every caller in one FC instance.

    DingTalk answers a token request with the same token while it is valid and does not count
    token calls against the monthly quota; renewing five minutes early keeps a long answer from
    meeting an expired token half-way.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: Dict[Tuple[str, str], Tuple[str, float]] = {}
        self._lock = threading.Lock()

    def forget(self, app: DingTalkApp, token: str) -> None:
        """DingTalk refused ``token`` (the secret was reset, or the token revoked): fetch a new one next time."""
        with self._lock:
            if self._tokens.get((app.api_endpoint, app.app_key), ("",))[0] == token:
                del self._tokens[(app.api_endpoint, app.app_key)]

    def get(self, app: DingTalkApp, session: requests.Session) -> str:
        key = (app.api_endpoint, app.app_key)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] - TOKEN_RENEW_MARGIN_SECONDS > self.clock():
                return cached[0]
            what = "access token"
            try:
                # Carries the app's secret: a redirect is an error, never followed with the secret.
                response = session.post(f"{app.api_endpoint}/v1.0/oauth2/accessToken", timeout=TIMEOUT_SECONDS,
                                        json={"appKey": app.app_key, "appSecret": app.app_secret},
                                        allow_redirects=False)
            except requests.RequestException as exc:
                raise OpenApiError(what, 0, type(exc).__name__) from None
            if response.status_code != 200:
                raise _error_of(what, response)
            body = response.json() if response.content else {}
            token = body.get("accessToken") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise OpenApiError(what, response.status_code, "NoToken", "the response had no accessToken")
            log.add_secret(token)
            expires_in = body.get("expireIn") if isinstance(body.get("expireIn"), (int, float)) else 7200
            self._tokens[key] = (token, self.clock() + float(expires_in))
            return token


TOKENS = TokenCache()


class OpenApi:
    """Calls on behalf of one app; a call throttled by DingTalk waits and is made again (the QPS
    limit lasts a second), a few times at most and never past ``deadline``."""

    def __init__(self, app: DingTalkApp, *, tokens: TokenCache = TOKENS, session: Optional[requests.Session] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 backoff: Backoff = Backoff(base_seconds=1.0, cap_seconds=4.0)) -> None:
        self.app = app
        self.tokens = tokens
        self.session = session or dingtalk_session()
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff

    def call(self, what: str, method: str, path: str, body: Dict[str, Any], *,
             deadline: Optional[float] = None) -> Dict[str, Any]:
        """The JSON answer of ``method path``; raises ``OpenApiError``."""
        for attempt in range(1, THROTTLE_ATTEMPTS + 1):
            try:
                return self._once(what, method, path, body)
            except OpenApiError as exc:
                delay = self.backoff.delay(attempt)
                if not exc.throttled or attempt == THROTTLE_ATTEMPTS or not fits(self.clock(), delay, deadline):
                    raise
                logger.warning("%s throttled by DingTalk (%s); trying again in %.1fs", what, exc.code, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, body: Dict[str, Any], token: str) -> requests.Response:
        return self.session.request(method, f"{self.app.api_endpoint}{path}", json=body,
                                    headers={"x-acs-dingtalk-access-token": token},
                                    timeout=TIMEOUT_SECONDS, allow_redirects=False)

    def _once(self, what: str, method: str, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        token = self.tokens.get(self.app, self.session)
        try:
            response = self._send(method, path, body, token)
            if response.status_code == 401:
                # A cached token DingTalk no longer accepts (secret reset, token revoked): one fresh try.
                self.tokens.forget(self.app, token)
                response = self._send(method, path, body, self.tokens.get(self.app, self.session))
        except requests.RequestException as exc:
            raise OpenApiError(what, 0, type(exc).__name__) from None
        if response.status_code != 200:
            raise _error_of(what, response)
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            raise OpenApiError(what, response.status_code, "NotJson", "the response was not JSON") from None
        if isinstance(answer, dict) and answer.get("success") is False:
            raise OpenApiError(what, response.status_code, str(answer.get("code") or "Refused"),
                               str(answer.get("message") or ""))
        return answer if isinstance(answer, dict) else {}
