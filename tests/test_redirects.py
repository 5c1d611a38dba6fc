"""Secrets never follow a redirect, and URLs that came from outside never reach the function's network.

A loopback "FC API" or "DingTalk" answers 307 to a thief on another port; nothing the request carried
(the STS token, the access key id, the message, the app secret) may reach the thief, and the hand-off
counts as failed."""

import json
import threading
from typing import Dict, List

import pytest
from conftest import APP_SECRET, context
from test_receiver import call_fc2, call_fc3

from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.loopback import JsonHandler, LoopbackServer
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import texts
from shared.reply.config import DingTalkApp
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError, TokenCache
from shared.reply.netguard import Refused, check_url, is_public


class _Recording(JsonHandler):
    server: "Server"

    def _any(self) -> None:
        body = self.read_body()
        with self.server.lock:
            self.server.seen.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        if self.server.location:
            self.send_response(307)
            self.send_header("Location", self.server.location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json(200, {"errcode": 0, "accessToken": "stolen", "expireIn": 7200})

    do_GET = do_POST = do_PUT = _any


class Server(LoopbackServer):
    def __init__(self, location: str = "") -> None:
        super().__init__(_Recording)
        self.location = location
        self.seen: List[Dict] = []
        self.lock = threading.Lock()


@pytest.fixture
def thief():
    server = Server().start()
    yield server
    server.stop()


@pytest.fixture
def redirector(thief):
    server = Server(location=thief.url).start()
    yield server
    server.stop()


@pytest.mark.parametrize("call, extra", [(call_fc3, {}), (call_fc2, {"SERVICE_NAME": "dingbot"})],
                         ids=["fc3", "fc2-sdk"])
def test_a_redirected_invoke_is_a_failed_hand_off_and_nothing_reaches_the_target(
        call, extra, receiver, receiver_env, use_env, redirector, thief):
    use_env({**receiver_env, "ENDPOINT": redirector.url, **extra})
    status, _ = call(receiver, encode(callback_body("机密问题", webhook_base="https://oapi.dingtalk.com")),
                     signed_headers(APP_SECRET))
    assert status == 502  # DingTalk redelivers what was not accepted
    assert len(redirector.seen) == 1 and thief.seen == []


def test_the_access_token_request_never_follows_a_redirect_with_the_secret(redirector, thief):
    api = OpenApi(DingTalkApp("app-key", "app-secret-value", redirector.url), tokens=TokenCache())
    with pytest.raises(OpenApiError, match="307"):
        api.call("card", "POST", "/v1.0/card/instances/createAndDeliver", {})
    assert thief.seen == [] and b"app-secret-value" in redirector.seen[0]["body"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1@localhost:{port}/files/x",
    "http://127.0.0.1:{port}@169.254.169.254/latest/meta-data/",
    "https://100.100.100.200/latest/meta-data/ram/security-credentials/",
    "https://[::1]:{port}/files/x",
    "https://[::ffff:127.0.0.1]:{port}/files/x",
    "https://2130706433:{port}/files/x",
    "https://0177.0.0.1:{port}/files/x",
    "https://10.0.0.8/files/x",
    "http://localhost:{port}/files/x",
    "file:///etc/passwd",
    "ftp://example.com/x",
], ids=["userinfo-localhost", "userinfo-metadata", "alibaba-metadata", "ipv6-loopback", "ipv4-mapped",
        "decimal", "octal", "private", "other-loopback-name", "file", "ftp"])
def test_a_download_url_that_points_into_the_functions_network_is_never_fetched(
        url, reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
             "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off"})
    sink.files["pic"] = b"\x89PNG\r\n\x1a\n"
    sink.download_url = url.replace("{port}", str(sink.address[1]))
    body = callback_body("", webhook_base=sink.url, msgtype="picture", content={"downloadCode": "pic"})
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    assert status == "media-error" and sink.file_requests == 0 and llm.requests == []
    assert sink.wait_for(1)[0]["text"]["content"] == texts.DOWNLOAD_FAILED


@pytest.mark.parametrize("address, public", [("8.8.8.8", True), ("2001:4860:4860::8888", True), ("127.0.0.1", False),
                                             ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
                                             ("100.64.0.1", False), ("100.100.100.200", False),
                                             ("169.254.169.254", False), ("::1", False), ("fe80::1", False),
                                             ("fd00::1", False), ("::ffff:10.0.0.1", False), ("0.0.0.0", False),
                                             ("224.0.0.1", False)])
def test_public_addresses_are_told_from_the_rest(address, public):
    assert is_public(address) is public


def test_a_name_is_resolved_once_and_every_address_must_be_public():
    with pytest.raises(Refused, match="10.0.0.5"):
        check_url("https://intranet.example/", resolver=lambda host, port: ["93.184.216.34", "10.0.0.5"])
    target = check_url("https://example.com/a?b=1", resolver=lambda host, port: ["93.184.216.34"])
    assert (target.host, target.port, target.addresses) == ("example.com", 443, ("93.184.216.34",))
