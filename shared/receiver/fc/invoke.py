"""Hand a message to the reply function as an FC async invocation.

The tutorial's FC 2.0 setup (``SERVICE_NAME`` set) goes through ``aliyun-fc2``, built into FC's
python3.10. FC 3.0, which has no services, is one POST to ``/2023-03-30/functions/{name}/invocations``
signed with ``ACS3-HMAC-SHA256`` (``acs3.py``) and sent with ``requests``, also built in: the
official FC 3.0 SDK would make the receiver's zip 11 MB and its cold start about three times
the tutorial's, while DingTalk waits only 2.5 s for the callback. The task id derived from
DingTalk's ``msgId`` lets FC drop a redelivered callback: a repeat answers 409, which means
"already accepted".

Both requests carry the role's STS credentials and the message, so neither follows a redirect:
an FC API that answers 3xx has not accepted the message (a failed hand-off, which DingTalk
retries), and nothing is re-sent to wherever the redirect points. ``aliyun-fc2`` follows
redirects and counts a 307 as success, so its one HTTP call is replaced (``_Fc2Client``).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote, urlsplit

from shared.common.errors import ConfigError, InvokeError
from shared.receiver.fc import acs3

ASYNC = "Async"
CONFLICT = 409
FC3_API_VERSION = "2023-03-30"


@dataclass(frozen=True)
class Credentials:
    """The function role's STS credentials, as FC puts them on ``context.credentials``."""

    access_key_id: str
    access_key_secret: str
    security_token: str = ""

    @classmethod
    def from_context(cls, context: Any) -> "Credentials":
        creds = getattr(context, "credentials", None)
        key_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
        secret = getattr(creds, "access_key_secret", None) or getattr(creds, "accessKeySecret", None)
        token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None) or ""
        if not key_id or not secret:
            raise InvokeError("the function has no role credentials: give the receiver a role that may "
                              "invoke the reply function (fc:InvokeFunction)")
        return cls(key_id, secret, token)


def task_id_for(msg_id: str) -> str:
    """FC task ids allow letters, digits, ``_`` and ``-`` and start with a letter; msgIds hold ``=+/``."""
    return "dingbot_" + hashlib.sha256(msg_id.encode("utf-8")).hexdigest()[:40]


def resolve_endpoint(configured: Optional[str], context: Any) -> str:
    """``ENDPOINT`` when set, else the region's internal endpoint (free traffic, no public hop)."""
    if configured:
        return configured
    account = getattr(context, "account_id", None)
    region = getattr(context, "region", None)
    if not account or not region:
        raise ConfigError("ENDPOINT", "not set and the FC context names no account/region; set it to "
                                      "<account_id>.<region>-internal.fc.aliyuncs.com",
                          hint="没有设置，FC 的上下文里也没有账号和地域：请设为 "
                               "<账号ID>.<地域>-internal.fc.aliyuncs.com")
    return f"https://{account}.{region}-internal.fc.aliyuncs.com"


class HandOffRefused(InvokeError):
    """The FC API answered with an HTTP error or a redirect; ``status_code`` says which."""

    def __init__(self, detail: str, status_code: int) -> None:
        super().__init__(detail)
        self.status_code = status_code


def _checked(response: Any, what: str) -> Any:
    """The response when FC accepted the request; ``HandOffRefused`` for an error or a redirect."""
    if response.status_code >= 300:
        kind = "a redirect, not followed" if response.status_code < 400 else _error_code(response)
        raise HandOffRefused(f"{what} failed: HTTP {response.status_code} {kind}", response.status_code)
    return response


@functools.lru_cache(maxsize=8)
def _fc2_client(endpoint: str, creds: Credentials, timeout: float) -> Any:
    import fc2

    class Fc2Client(fc2.Client):
        """aliyun-fc2 with its one HTTP call made here: no redirect followed, no retry sleeps (DingTalk
        waits 2.5 s and redelivers what was not accepted), the kept-alive session reused."""

        def _do_request(self, method: str, path: str, headers: Any, params: Any = None, body: Any = None) -> Any:
            response = _session().request(method, f"{self.endpoint}{path}", headers=headers, params=params,
                                          data=body, timeout=self.timeout, allow_redirects=False)
            return _checked(response, f"FC 2.0 {method} {path}")

    return Fc2Client(endpoint=endpoint, accessKeyID=creds.access_key_id,
                     accessKeySecret=creds.access_key_secret, securityToken=creds.security_token,
                     Timeout=timeout)


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    """Kept alive across warm invocations; only ever talks to the FC API, so no proxy lookups."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def invoke_fc2(endpoint: str, creds: Credentials, service: str, function: str, payload: bytes,
               task_id: str, timeout: float = 10.0) -> str:
    """POST /2016-08-15/services/{service}/functions/{function}/invocations, async."""
    headers = {"x-fc-invocation-type": ASYNC, "x-fc-stateful-async-invocation-id": task_id}
    try:
        response = _fc2_client(endpoint, creds, timeout).invoke_function(service, function, payload=payload,
                                                                          headers=headers)
    except HandOffRefused as exc:
        if exc.status_code == CONFLICT:
            return "duplicate"
        raise InvokeError(f"FC 2.0 async invoke of {service}/{function}: {exc}") from None
    except Exception as exc:
        raise InvokeError(f"FC 2.0 async invoke of {service}/{function} failed: {type(exc).__name__}") from None
    return str(response.headers.get("X-Fc-Request-Id") or response.headers.get("x-fc-request-id") or "")


def invoke_fc3(endpoint: str, creds: Credentials, function: str, payload: bytes, task_id: str,
               timeout: float = 10.0) -> str:
    """POST /2023-03-30/functions/{function}/invocations, async, signed with the role's STS credentials."""
    import requests

    path = f"/2023-03-30/functions/{quote(function, safe='')}/invocations"
    headers = acs3.signed_headers(
        method="POST", host=urlsplit(endpoint).netloc, path=path, action="InvokeFunction", version=FC3_API_VERSION,
        body=payload, headers={"x-fc-invocation-type": ASYNC, "x-fc-async-task-id": task_id},
        access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
        security_token=creds.security_token or None)
    try:
        response = _session().post(endpoint + path, data=payload, headers=headers, timeout=timeout,
                                   allow_redirects=False)
    except requests.RequestException as exc:
        raise InvokeError(f"FC 3.0 async invoke of {function} failed: {type(exc).__name__}") from None
    if response.status_code == CONFLICT:
        return "duplicate"
    return str(_checked(response, f"FC 3.0 async invoke of {function}").headers.get("x-fc-request-id", ""))


def _error_code(response: Any) -> str:
    """FC's error body: ``{"Code"|"ErrorCode": ..., "Message"|"ErrorMessage": ...}``."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return f"{body.get('Code') or body.get('ErrorCode') or ''}: {body.get('Message') or body.get('ErrorMessage') or ''}"
