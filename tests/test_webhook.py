import pytest
import responses

from shared.common.errors import WebhookError
from shared.reply.backoff import Backoff
from shared.reply.dingtalk.webhook import Webhook, WebhookSender

URL = "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
NOW = 1_700_000_000.0
HOOK = Webhook(URL, None)


def sender(hosts=("oapi.dingtalk.com",)):
    return WebhookSender(hosts, clock=lambda: NOW)


@pytest.mark.parametrize("url", [
    "https://evil.com\\@oapi.dingtalk.com/robot/sendBySession?session=x",
    "https://oapi.dingtalk.com@evil.com/robot/sendBySession?session=x",
    "https://user:pass@oapi.dingtalk.com/robot/sendBySession?session=x",
    "https://oapi.dingtalk.com%2f@evil.com/",
    "https://oapi.dingtalk.com%40evil.com/",
    "https://oapi.dingtalk.com\\evil.com/x",
    "https://oapi.dingtalk.com/robot%2f..%2fsendBySession?session=x",
    "https://oapi.dingtalk.com:8443/robot/sendBySession?session=x",
    "https://oapi.dingtalk.com./robot/sendBySession?session=x",
    "https://oapi.dingtalk.com.evil.com/robot/sendBySession?session=x",
    "https://evil.com/robot/sendBySession?next=https://oapi.dingtalk.com/",
    "https://oapi.dingtalk.com\tevil/x",
    "http://oapi.dingtalk.com/robot/sendBySession?session=x",
    "//oapi.dingtalk.com/robot/sendBySession",
    "ftp://oapi.dingtalk.com/x",
    "https://[::ffff:7f00:1]/x",
])
def test_every_form_that_could_reach_another_host_is_refused(url):
    with pytest.raises(WebhookError):
        sender().check(url, None)


def test_the_checked_url_is_the_one_posted_and_redirects_are_not_followed():
    with responses.RequestsMock() as mock:
        mock.post(URL, status=302, headers={"Location": "https://evil.example.com/steal"})
        hook = sender().check(URL, None)
        with pytest.raises(WebhookError, match="302"):
            sender().post(hook, {"msgtype": "text"})
        assert [c.request.url for c in mock.calls] == [URL]


@responses.activate
def test_accepted_message_posts_json_once():
    responses.post(URL, json={"errcode": 0, "errmsg": "ok"})
    sender().post(HOOK, {"msgtype": "text", "text": {"content": "hi"}})
    assert len(responses.calls) == 1
    assert responses.calls[0].request.body == b'{"msgtype": "text", "text": {"content": "hi"}}'


@responses.activate
def test_http_200_with_errcode_is_a_failure():
    responses.post(URL, json={"errcode": 460101, "errmsg": "message too long"})
    with pytest.raises(WebhookError, match="460101") as error:
        sender().post(HOOK, {})
    assert not error.value.retryable


@responses.activate
@pytest.mark.parametrize("reply, retryable", [({"status": 502}, True), ({"json": {"errcode": 130101}}, False),
                                              ({"status": 404}, False)])
def test_transient_failures_are_marked_retryable(reply, retryable):
    responses.post(URL, **({"json": {}} | reply))
    with pytest.raises(WebhookError) as error:
        sender().post(HOOK, {})
    assert error.value.retryable is retryable


@responses.activate
def test_a_webhook_throttled_for_minutes_is_not_retried_within_seconds():
    responses.post(URL, json={"errcode": 130101, "errmsg": "send too fast"})
    delays = []
    with pytest.raises(WebhookError) as error:
        retrying_sender(delays).send(HOOK, {})
    assert error.value.throttled and error.value.another_way
    assert len(responses.calls) == 1 and delays == []


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


def retrying_sender(delays):
    return WebhookSender(("oapi.dingtalk.com",), clock=lambda: NOW, sleep=delays.append,
                         backoff=Backoff(jitter=lambda: 0.5))


@responses.activate
def test_transient_failures_are_retried_with_growing_delays_until_accepted():
    for reply in ({"status": 502, "json": {}}, {"status": 503, "json": {}}, {"json": {"errcode": 0}}):
        responses.post(URL, **reply)
    delays = []
    retrying_sender(delays).send(HOOK, {"n": 1})
    assert len(responses.calls) == 3
    assert delays == [0.5, 1.0]


@responses.activate
def test_retries_are_bounded_when_dingtalk_keeps_failing():
    responses.post(URL, status=503, json={})
    delays = []
    with pytest.raises(WebhookError, match="503"):
        retrying_sender(delays).send(HOOK, {})
    assert len(responses.calls) == 4 and len(delays) == 3


@responses.activate
def test_refusals_are_not_retried():
    responses.post(URL, json={"errcode": 460101, "errmsg": "too long"})
    delays = []
    with pytest.raises(WebhookError):
        retrying_sender(delays).send(HOOK, {})
    assert len(responses.calls) == 1 and delays == []


@responses.activate
def test_no_retry_waits_past_the_webhook_expiry():
    responses.post(URL, status=502, json={})
    delays = []
    with pytest.raises(WebhookError):
        retrying_sender(delays).send(Webhook(URL, int(NOW * 1000) + 300), {})
    assert len(responses.calls) == 1 and delays == []


class FakeClock:
    def __init__(self, now):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_more_than_twenty_messages_a_minute_wait_for_the_window():
    clock = FakeClock(NOW)
    posted_at = []
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, URL, callback=lambda request: (posted_at.append(clock.now) or
                                                                         (200, {}, '{"errcode": 0}')))
        sender = WebhookSender(("oapi.dingtalk.com",), clock=clock, sleep=clock.sleep)
        for _ in range(45):
            sender.send(HOOK, {})
            clock.now += 0.1
    assert len(posted_at) == 45 and clock.slept
    assert all(later - earlier >= 60 for earlier, later in zip(posted_at, posted_at[20:]))


@responses.activate
def test_pacing_gives_up_rather_than_outlive_the_webhook():
    responses.post(URL, json={"errcode": 0})
    clock = FakeClock(NOW)
    sender = WebhookSender(("oapi.dingtalk.com",), clock=clock, sleep=clock.sleep)
    expires = int((NOW + 30) * 1000)
    for _ in range(20):
        sender.send(Webhook(URL, expires), {})
    with pytest.raises(WebhookError, match="rate limit"):
        sender.send(Webhook(URL, expires), {})
    assert len(responses.calls) == 20 and clock.slept == []
