import pytest
import responses

from shared.errors import WebhookError
from shared.webhook import WebhookSender

URL = "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
NOW = 1_700_000_000.0


def sender(hosts=("oapi.dingtalk.com",)):
    return WebhookSender(hosts, clock=lambda: NOW)


@responses.activate
def test_accepted_message_posts_json_once():
    responses.post(URL, json={"errcode": 0, "errmsg": "ok"})
    sender().post(URL, {"msgtype": "text", "text": {"content": "hi"}})
    assert len(responses.calls) == 1
    assert responses.calls[0].request.body == b'{"msgtype": "text", "text": {"content": "hi"}}'


@responses.activate
def test_http_200_with_errcode_is_a_failure():
    responses.post(URL, json={"errcode": 460101, "errmsg": "message too long"})
    with pytest.raises(WebhookError, match="460101") as error:
        sender().post(URL, {})
    assert not error.value.retryable


@responses.activate
@pytest.mark.parametrize("reply, retryable", [({"status": 502}, True), ({"json": {"errcode": 130101}}, True),
                                              ({"status": 404}, False)])
def test_transient_failures_are_marked_retryable(reply, retryable):
    responses.post(URL, **({"json": {}} | reply))
    with pytest.raises(WebhookError) as error:
        sender().post(URL, {})
    assert error.value.retryable is retryable


def test_hosts_outside_the_allow_list_are_refused():
    with pytest.raises(WebhookError, match="evil.example.com"):
        sender().check("https://evil.example.com/robot/sendBySession?session=x", None)


def test_plain_http_is_refused_except_on_loopback():
    with pytest.raises(WebhookError, match="https"):
        sender().check("http://oapi.dingtalk.com/robot/sendBySession", None)
    sender(("127.0.0.1",)).check("http://127.0.0.1:9/robot/sendBySession", None)


def test_expired_session_is_refused():
    with pytest.raises(WebhookError, match="expired"):
        sender().check(URL, int(NOW * 1000) - 1)
    sender().check(URL, int(NOW * 1000) + 60_000)
