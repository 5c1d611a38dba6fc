"""The receiver's FC 3.0 call: its ACS3-HMAC-SHA256 signature agrees with Alibaba Cloud's official signer,
and the loopback FC API that checks it accepts the official FC 3.0 SDK's own requests too."""

import hashlib
import json
from types import SimpleNamespace

import pytest
from conftest import APP_SECRET, context

from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.fc_context import Credentials
from devstack.http_runtime import fc3_event
from shared.receiver.fc import acs3, invoke

OfficialSigner = pytest.importorskip("alibabacloud_openapi_util.client",
                                     reason="the official signer is a test dependency").Client


@pytest.mark.parametrize("path, query, headers, body", [
    ("/2023-03-30/functions/dingtalk_chatgpt_reply/invocations", {},
     {"host": "1.cn-hangzhou-internal.fc.aliyuncs.com", "x-fc-invocation-type": "Async",
      "x-fc-async-task-id": "dingbot_abc", "x-acs-date": "2026-11-26T00:00:00Z"}, b'{"msgId":"m"}'),
    ("/2023-03-30/functions/f/invocations", {"qualifier": "LATEST", "a b": "c/d~"},
     {"Host": "h", "X-Acs-Date": "2026-11-26T00:00:00Z", "Content-Type": " application/octet-stream "},
     "中文".encode()),
    ("/", {}, {"host": "h"}, b""),
])
def test_signature_matches_the_official_signer(path, query, headers, body):
    payload_hash = hashlib.sha256(body).hexdigest()
    ours = acs3.authorization("POST", path, query, headers, payload_hash, "STS.ak", "secret")
    request = SimpleNamespace(method="POST", pathname=path, query=query, headers=headers)
    assert ours == OfficialSigner.get_authorization(request, "ACS3-HMAC-SHA256", payload_hash, "STS.ak", "secret")


def test_signed_headers_cover_the_body_the_sts_token_and_every_header_sent():
    headers = acs3.signed_headers(method="POST", host="h", path="/p", action="InvokeFunction", version="2023-03-30",
                                  body=b"{}", headers={"x-fc-invocation-type": "Async"}, access_key_id="ak",
                                  access_key_secret="sk", security_token="tok", clock=lambda: 0, nonce=lambda: "n")
    assert headers["x-acs-content-sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert headers["x-acs-security-token"] == "tok" and headers["x-acs-date"] == "1970-01-01T00:00:00Z"
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert sorted(signed) == sorted(k for k in headers if k != "authorization")


def test_the_loopback_fc_api_accepts_the_official_fc3_sdks_request(fc_api):
    pytest.importorskip("alibabacloud_fc20230330", reason="the official FC 3.0 SDK is a test dependency")
    from alibabacloud_fc20230330 import models
    from alibabacloud_fc20230330.client import Client
    from alibabacloud_tea_openapi import utils_models
    from darabonba.runtime import RuntimeOptions

    creds = Credentials()
    client = Client(utils_models.Config(
        access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
        security_token=creds.security_token, endpoint=fc_api.url.split("://")[1], protocol="http"))
    response = client.invoke_function_with_options(
        "dingtalk_chatgpt_reply", models.InvokeFunctionRequest(body=b'{"msgId": "sdk"}'),
        models.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id="dingbot_sdk"),
        RuntimeOptions(read_timeout=5000, connect_timeout=5000))
    assert response.status_code == 202
    [invocation] = fc_api.invocations
    assert (invocation["api"], invocation["task_id"], invocation["payload"]) == ("fc3", "dingbot_sdk", {"msgId": "sdk"})


def test_our_invocation_is_accepted_once_and_a_repeat_is_a_duplicate(fc_api):
    creds = invoke.Credentials("STS.local-ak", "local-sk-secret", "local-sts-token")
    first = invoke.invoke_fc3(fc_api.url, creds, "dingtalk_chatgpt_reply", b'{"msgId": "m"}', "dingbot_m")
    again = invoke.invoke_fc3(fc_api.url, creds, "dingtalk_chatgpt_reply", b'{"msgId": "m"}', "dingbot_m")
    assert first and again == "duplicate" and len(fc_api.invocations) == 1


@pytest.mark.parametrize("wrong", [{"access_key_secret": "other"}, {"security_token": "expired"},
                                   {"access_key_id": "STS.other"}])
def test_a_signature_made_with_the_wrong_credentials_is_refused_and_the_receiver_says_502(
        wrong, receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    fc_api.credentials = Credentials(**{**vars(Credentials()), **wrong})
    result = receiver(fc3_event("POST", "/", signed_headers(APP_SECRET),
                                encode(callback_body("hi", webhook_base="https://oapi.dingtalk.com"))), context())
    assert result["statusCode"] == 502 and json.loads(result["body"]) == {"error": "could not reach the reply function"}
    assert fc_api.invocations == []
