"""The receiver through both FC entry forms, invoking a loopback FC API with the real SDKs."""

import json
import time

import pytest
from conftest import APP_SECRET, context

from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.http_runtime import fc3_event, wsgi_environ
from shared.receiver.fc import invoke

WEBHOOK = "https://oapi.dingtalk.com"


def call_fc3(handler, body: bytes, headers):
    result = handler(fc3_event("POST", "/", {k.lower(): v for k, v in headers.items()}, body), context("receiver"))
    return result["statusCode"], json.loads(result["body"])


def call_fc2(handler, body: bytes, headers):
    status = []
    environ = wsgi_environ("POST", "/", {k.lower(): v for k, v in headers.items()}, body, context("receiver"))
    chunks = handler(environ, lambda s, h: status.append(s))
    return int(status[0].split()[0]), json.loads(b"".join(chunks))


FORMS = pytest.mark.parametrize("call", [call_fc3, call_fc2], ids=["fc3-event", "fc2-wsgi"])


@FORMS
def test_signed_message_is_handed_off_async_and_acked(call, receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    body = callback_body("你好", webhook_base=WEBHOOK)
    status, payload = call(receiver, encode(body), signed_headers(APP_SECRET))
    assert (status, payload) == (200, {})
    [invocation] = fc_api.invocations
    assert invocation["api"] == "fc3"
    assert invocation["task_id"] == invoke.task_id_for(body["msgId"])
    assert invocation["payload"]["question"] == "你好"
    assert invocation["payload"]["sessionWebhook"] == body["sessionWebhook"]
    assert invocation["payload"]["conversationId"] == body["conversationId"]


def test_tutorial_setup_with_service_name_uses_the_signed_fc2_api(receiver, receiver_env, use_env, fc_api):
    use_env({**receiver_env, "SERVICE_NAME": "dingbot"})
    status, _ = call_fc2(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), signed_headers(APP_SECRET))
    assert status == 200
    assert [i["api"] for i in fc_api.invocations] == ["fc2"]


def test_fc2_api_rejects_wrong_sts_credentials(receiver, receiver_env, use_env, fc_api):
    from devstack.fc_context import Credentials
    fc_api.credentials = Credentials(access_key_secret="another-secret")
    use_env({**receiver_env, "SERVICE_NAME": "dingbot"})
    status, _ = call_fc2(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), signed_headers(APP_SECRET))
    assert status == 502 and fc_api.invocations == []


@FORMS
@pytest.mark.parametrize("headers", [
    {},
    {"timestamp": str(int(time.time() * 1000))},
    signed_headers("some-other-secret"),
    signed_headers(APP_SECRET, now_ms=int(time.time() * 1000) - 3601 * 1000),
], ids=["no-headers", "no-sign", "wrong-secret", "replayed-after-an-hour"])
def test_unverifiable_callbacks_are_403_and_invoke_nothing(call, headers, receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    status, _ = call(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), headers)
    assert status == 403 and fc_api.invocations == []


@FORMS
def test_missing_app_secret_rejects_instead_of_accepting_everything(call, receiver, receiver_env, use_env, fc_api,
                                                                     caplog):
    use_env({k: v for k, v in receiver_env.items() if k != "DINGTALK_APP_SECRET"})
    status, payload = call(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), signed_headers(""))
    assert (status, payload) == (403, {"error": "forbidden"}) and fc_api.invocations == []
    assert "DINGTALK_APP_SECRET" in caplog.text


NOW_MS = int(time.time() * 1000)


@FORMS
@pytest.mark.parametrize("timestamp", ["²" * 13, "１７００００００００００００", "1" * 5000, "-1", " 1", "1e12", "",
                                       str(NOW_MS) + "\n", "0x1", "１"])
def test_hostile_timestamps_are_refused_before_any_arithmetic(call, timestamp, receiver, receiver_env, use_env,
                                                              fc_api):
    use_env(receiver_env)
    headers = {**signed_headers(APP_SECRET), "timestamp": timestamp}
    status, payload = call(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), headers)
    assert (status, payload) == (403, {"error": "forbidden"}) and fc_api.invocations == []


@pytest.mark.parametrize("headers", [{"Timestamp": ["1", "2"], "Sign": {"a": 1}}, "not headers", None,
                                     {"Sign": "x" * 100_000, "Timestamp": str(NOW_MS)},
                                     {"Sign": "签名", "Timestamp": str(NOW_MS)}])
def test_any_other_header_shape_is_a_4xx_not_a_crash(headers, receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    event = json.loads(fc3_event("POST", "/", {}, encode(callback_body("hi", webhook_base=WEBHOOK))))
    event["headers"] = headers
    result = receiver(json.dumps(event).encode(), context())
    assert result["statusCode"] == 403 and json.loads(result["body"]) == {"error": "forbidden"}


@pytest.mark.parametrize("event", [b"[]", b'{"body": 5}', b'{"body": "e30=", "isBase64Encoded": true, '
                                   b'"requestContext": "x"}', b'{"body": "!!", "isBase64Encoded": true}',
                                   b"[" * 100_000, b'{"headers": 1, "requestContext": {"http": 1}}'])
def test_events_that_are_not_http_triggers_get_a_4xx_that_names_nothing_internal(event, receiver, receiver_env,
                                                                                  use_env):
    use_env(receiver_env)
    result = receiver(event, context())
    assert 400 <= result["statusCode"] < 500 and json.loads(result["body"])["error"] in ("bad request", "forbidden")


def _signed_call(receiver, body):
    return call_fc3(receiver, body if isinstance(body, bytes) else json.dumps(body).encode(),
                    signed_headers(APP_SECRET))


def _mutated(**changes):
    body = callback_body("hi", webhook_base=WEBHOOK)
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return body


@pytest.mark.parametrize("body", [
    _mutated(msgtype="richText", content={"richText": 5}),
    _mutated(msgtype="richText", content={"richText": [5]}),
    _mutated(text=["hi"]),
    _mutated(text__content={"nested": "text"}),
    _mutated(createAt=1e400),
    _mutated(createAt="1.7e12"),
    _mutated(createAt=True),
    _mutated(sessionWebhookExpiredTime=-1),
    _mutated(msgId=12345),
    _mutated(msgId=["m"]),
    _mutated(isAdmin="yes"),
    _mutated(conversationType="3"),
    _mutated(senderStaffId={"id": 1}),
    _mutated(sessionWebhook=None),
    _mutated(text__isReplyMsg=True, text__repliedMsg={"msgType": "text", "content": "{not json"}),
    _mutated(text__isReplyMsg=True, text__repliedMsg={"msgType": "text", "content": 7}),
    b'{"msgtype": "text", "deep": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    b'{"msgtype": "text", "createAt": NaN}',
    b'{"msgtype": "text", "createAt": ' + b"9" * 5000 + b"}",
], ids=lambda body: "raw" if isinstance(body, bytes) else None)
def test_wrong_json_types_after_authentication_are_400_and_invoke_nothing(body, receiver, receiver_env, use_env,
                                                                          fc_api):
    use_env(receiver_env)
    status, payload = _signed_call(receiver, body)
    assert status == 400 and payload["error"] and fc_api.invocations == []


@FORMS
def test_malformed_body_is_400(call, receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    status, payload = call(receiver, b"{not json", signed_headers(APP_SECRET))
    assert status == 400 and payload["error"] and fc_api.invocations == []


@FORMS
def test_huge_body_is_413_before_parsing(call, receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    status, _ = call(receiver, b"{" + b" " * 200_000 + b"}", signed_headers(APP_SECRET))
    assert status == 413 and fc_api.invocations == []


def test_fc3_header_names_are_matched_case_insensitively(receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    headers = {k.upper(): v for k, v in signed_headers(APP_SECRET).items()}
    event = json.loads(fc3_event("POST", "/", headers, encode(callback_body("hi", webhook_base=WEBHOOK))))
    event["headers"] = headers
    assert receiver(json.dumps(event).encode(), context())["statusCode"] == 200


def test_not_an_http_event_is_400(receiver, receiver_env, use_env):
    use_env(receiver_env)
    result = receiver(b"\xff\xfe not json", context())
    assert result["statusCode"] == 400 and json.loads(result["body"]) == {"error": "bad request"}


def test_an_unexpected_failure_is_a_500_without_a_stack_trace(receiver, receiver_env, use_env, monkeypatch, caplog):
    from shared.receiver import app

    use_env(receiver_env)
    monkeypatch.setattr(app, "signing_robot", lambda *a, **k: 1 / 0)
    status, payload = call_fc3(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), signed_headers(APP_SECRET))
    assert (status, payload) == (500, {"error": "internal error"}) and "ZeroDivisionError" in caplog.text


def test_redelivered_callback_is_acked_but_invoked_once(receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    body = encode(callback_body("hi", webhook_base=WEBHOOK))
    assert call_fc3(receiver, body, signed_headers(APP_SECRET))[0] == 200
    assert call_fc3(receiver, body, signed_headers(APP_SECRET))[0] == 200
    assert len(fc_api.invocations) == 1 and len(fc_api.pool.submitted) == 1


def test_unreachable_fc_api_is_a_502_not_a_crash(receiver, receiver_env, use_env):
    use_env({**receiver_env, "ENDPOINT": "http://127.0.0.1:9"})
    status, payload = call_fc3(receiver, encode(callback_body("hi", webhook_base=WEBHOOK)), signed_headers(APP_SECRET))
    assert status == 502 and "reply function" in payload["error"]


def test_get_is_405(receiver, receiver_env, use_env):
    use_env(receiver_env)
    event = fc3_event("GET", "/", signed_headers(APP_SECRET), b"")
    assert receiver(event, context())["statusCode"] == 405


def test_endpoint_defaults_to_the_regions_internal_fc_endpoint():
    assert invoke.resolve_endpoint(None, context()) == "https://1234567890.cn-local-internal.fc.aliyuncs.com"


def test_task_ids_fit_fcs_alphabet():
    task_id = invoke.task_id_for("msgABC+/==")
    assert task_id[0].isalpha() and len(task_id) <= 128
    assert set(task_id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def test_payload_carries_what_the_reply_needs(receiver, receiver_env, use_env, fc_api):
    use_env(receiver_env)
    body = callback_body("hi", webhook_base=WEBHOOK)
    call_fc3(receiver, encode(body), signed_headers(APP_SECRET))
    payload = fc_api.invocations[0]["payload"]
    for field in ("msgId", "conversationId", "conversationType", "senderStaffId", "senderNick",
                  "sessionWebhook", "sessionWebhookExpiredTime", "question"):
        assert payload[field] == (body[field] if field != "question" else "hi")
    assert len(fc_api.pool.submitted[0]["payload"]) < 4096
