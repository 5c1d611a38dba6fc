"""Hand a message to the reply function as an FC async invocation, through the official SDKs.

The tutorial's FC 2.0 setup (``SERVICE_NAME`` set) goes through ``aliyun-fc2``; FC 3.0, which
has no services, through ``alibabacloud-fc20230330``. Each SDK is imported only when used, so a
cold start pays for one of them. The task id derived from DingTalk's ``msgId`` lets FC drop a
redelivered callback: a repeat answers 409, which means "already accepted".
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from shared.common.errors import ConfigError, InvokeError

ASYNC = "Async"
CONFLICT = 409


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
                                      "<account_id>.<region>-internal.fc.aliyuncs.com")
    return f"https://{account}.{region}-internal.fc.aliyuncs.com"


def _status_of(exc: BaseException) -> Optional[int]:
    status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
    return int(status) if status else None


@functools.lru_cache(maxsize=8)
def _fc2_client(endpoint: str, creds: Credentials, timeout: float) -> Any:
    import fc2

    return fc2.Client(endpoint=endpoint, accessKeyID=creds.access_key_id,
                      accessKeySecret=creds.access_key_secret, securityToken=creds.security_token,
                      Timeout=timeout)


@functools.lru_cache(maxsize=8)
def _fc3_client(endpoint: str, creds: Credentials) -> Any:
    from alibabacloud_fc20230330.client import Client
    from alibabacloud_tea_openapi import utils_models

    scheme, _, host = endpoint.partition("://")
    return Client(utils_models.Config(access_key_id=creds.access_key_id,
                                      access_key_secret=creds.access_key_secret,
                                      security_token=creds.security_token or None,
                                      endpoint=host, protocol=scheme))


def invoke_fc2(endpoint: str, creds: Credentials, service: str, function: str, payload: bytes,
               task_id: str, timeout: float = 10.0) -> str:
    """POST /2016-08-15/services/{service}/functions/{function}/invocations, async."""
    headers = {"x-fc-invocation-type": ASYNC, "x-fc-stateful-async-invocation-id": task_id}
    try:
        response = _fc2_client(endpoint, creds, timeout).invoke_function(service, function, payload=payload,
                                                                          headers=headers)
    except Exception as exc:
        if _status_of(exc) == CONFLICT:
            return "duplicate"
        raise InvokeError(f"FC 2.0 async invoke of {service}/{function} failed: {exc}") from exc
    return str(response.headers.get("X-Fc-Request-Id") or response.headers.get("x-fc-request-id") or "")


def invoke_fc3(endpoint: str, creds: Credentials, function: str, payload: bytes, task_id: str,
               timeout: float = 10.0) -> str:
    """POST /2023-03-30/functions/{function}/invocations, async."""
    from alibabacloud_fc20230330 import models
    from darabonba.runtime import RuntimeOptions

    request = models.InvokeFunctionRequest(body=payload)
    headers = models.InvokeFunctionHeaders(x_fc_invocation_type=ASYNC, x_fc_async_task_id=task_id)
    runtime = RuntimeOptions(read_timeout=int(timeout * 1000), connect_timeout=int(timeout * 1000))
    try:
        response = _fc3_client(endpoint, creds).invoke_function_with_options(function, request, headers, runtime)
    except Exception as exc:
        if _status_of(exc) == CONFLICT:
            return "duplicate"
        raise InvokeError(f"FC 3.0 async invoke of {function} failed: {exc}") from exc
    if response.status_code == CONFLICT:
        return "duplicate"
    return str((response.headers or {}).get("x-fc-request-id", ""))
