"""Claims: one answer per msgId, handed back when nobody heard it, taken over when abandoned, bounded."""

import json
import os

import oss2
import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.fake_oss import FakeOSS
from devstack.fc_context import Credentials
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.oss.blobs import ApiBlobs, MountBlobs
from shared.reply.oss.claims import HANDLED_TTL_MS, KEEP, Claims
from shared.reply.oss.history import digest

TTL = 60_000


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["mount", "oss-api"])
def claims(request, tmp_path, clock):
    if request.param == "mount":
        yield Claims(MountBlobs(tmp_path / "dingbot"), atomic_create=False, clock=clock)
        return
    server = FakeOSS().start()
    yield Claims(ApiBlobs.connect(server.endpoint, server.bucket, Credentials(), "dingbot/", server.region),
                 atomic_create=True, clock=clock)
    server.stop()


def test_a_second_delivery_is_skipped_while_the_first_is_answering(claims):
    assert claims.claim("cid", "m1", TTL) is not None
    assert claims.claim("cid", "m1", TTL) is None
    assert claims.claim("cid", "m2", TTL) is not None


def test_a_handled_message_is_skipped_even_after_the_time_to_live(claims, clock):
    claims.finish(claims.claim("cid", "m1", TTL))
    clock.now += 3600
    assert claims.claim("cid", "m1", TTL) is None


def test_a_released_claim_lets_a_later_delivery_answer(claims):
    claims.release(claims.claim("cid", "m1", TTL))
    assert claims.claim("cid", "m1", TTL) is not None


def test_an_abandoned_claim_is_taken_over_once(claims, clock):
    claims.claim("cid", "m1", TTL)
    clock.now += TTL / 1000 + 1
    takeover = claims.claim("cid", "m1", TTL)
    assert takeover is not None and takeover.name.endswith("-2.json")
    assert claims.claim("cid", "m1", TTL) is None
    claims.finish(takeover)
    clock.now += TTL / 1000 + 1
    assert claims.claim("cid", "m1", TTL) is None


def stem_of(msg_id):
    return digest(msg_id, 32)


def test_handled_claims_expire_after_a_day(tmp_path, clock):
    claims = Claims(MountBlobs(tmp_path), atomic_create=False, clock=clock)
    claims.finish(claims.claim("cid", "old", TTL))
    folder = tmp_path / claims.folder("cid")
    for path in folder.iterdir():
        os.utime(path, (clock.now - HANDLED_TTL_MS / 1000 - 60,) * 2)
    claims.finish(claims.claim("cid", "new", TTL))
    assert claims.compact("cid") == 1
    assert len(list(folder.iterdir())) == 1
    assert claims.claim("cid", "new", TTL) is None


def test_at_most_keep_claims_stay_per_conversation_generations_together(tmp_path, clock):
    claims = Claims(MountBlobs(tmp_path), atomic_create=False, clock=clock)
    folder = tmp_path / claims.folder("cid")
    claims.claim("cid", "oldest", TTL)
    clock.now += TTL / 1000 + 1
    claims.finish(claims.claim("cid", "oldest", TTL))  # generation 2
    for i in range(KEEP):
        claims.finish(claims.claim("cid", f"m{i}", TTL))
    for path in folder.iterdir():
        os.utime(path, (clock.now - 10,) * 2)
    for path in folder.glob(f"{stem_of('oldest')}-*.json"):
        os.utime(path, (clock.now - 1000,) * 2)
    assert claims.compact("cid") == 2
    assert len(list(folder.iterdir())) == KEEP


def test_a_claim_another_instance_overwrote_on_the_mount_is_given_up(tmp_path, clock):
    class RacingMount(MountBlobs):
        """The OSS mount where another instance's create of the same name lands right after ours."""

        def create(self, name, data):
            created = super().create(name, data)
            self.write(name, data.replace(b'"owner":"', b'"owner":"other-'))
            return created

    claims = Claims(RacingMount(tmp_path), atomic_create=False, clock=clock)
    assert claims.claim("cid", "m1", TTL) is None


def test_with_a_bucket_configured_the_reply_claims_through_the_oss_api(reply, reply_env, use_env, llm, sink):
    server = FakeOSS().start()
    try:
        use_env({**reply_env, "OSS_BUCKET": server.bucket, "OSS_ENDPOINT": server.endpoint})
        event = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()
        assert run_twice(reply, event) == ["answered", "duplicate"]
        [(key, (data, _))] = server.objects.items()
        assert key.startswith("dingbot/claims/") and json.loads(data)["state"] == "handled"
    finally:
        server.stop()


def test_oss_api_requests_are_signed_v4_and_the_bucket_refuses_v1(tmp_path):
    server = FakeOSS().start()
    try:
        claims = Claims(ApiBlobs.connect(server.endpoint, server.bucket, Credentials(), "dingbot/", server.region),
                        atomic_create=True)
        claims.finish(claims.claim("cid", "m1", TTL))
        assert claims.claim("cid", "m1", TTL) is None and claims.compact("cid") == 0
        assert server.refused == {}
        creds = Credentials()
        v1 = oss2.Bucket(oss2.StsAuth(creds.access_key_id, creds.access_key_secret, creds.security_token),
                         server.endpoint, server.bucket)
        with pytest.raises(oss2.exceptions.OssError) as refused:
            v1.put_object("dingbot/x", b"{}")
        assert refused.value.status == 403 and "dingbot/x" not in server.objects
    finally:
        server.stop()


@pytest.mark.parametrize("credentials, region, refusal", [
    (Credentials(access_key_secret="another-secret"), "cn-local", "SignatureDoesNotMatch"),
    (Credentials(), "cn-hangzhou", "InvalidArgument"),
])
def test_a_signature_with_the_wrong_secret_or_region_is_refused(credentials, region, refusal):
    server = FakeOSS().start()
    try:
        blobs = ApiBlobs.connect(server.endpoint, server.bucket, credentials, "dingbot/", region)
        with pytest.raises(OSError, match=refusal):
            blobs.create("claims/x.json", b"{}")
        assert server.objects == {}
    finally:
        server.stop()


def run_twice(reply, event):
    return [json.loads(reply(event, context("reply")))["status"] for _ in range(2)]


@pytest.mark.parametrize("state", ["Enabled", "Suspended"])
def test_a_versioned_bucket_keeps_claims_on_the_mount_and_the_log_says_what_is_lost(
        state, reply, reply_env, use_env, llm, sink, oss, caplog):
    server = FakeOSS(versioning=state).start()
    try:
        use_env({**reply_env, "OSS_BUCKET": server.bucket, "OSS_ENDPOINT": server.endpoint})
        event = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()
        assert run_twice(reply, event) == ["answered", "duplicate"]
        assert server.objects == {} and list((oss / "dingbot" / "claims").iterdir())
        warnings = [r.getMessage() for r in caplog.records if f"versioning {state}" in r.getMessage()]
        assert len(warnings) == 1 and "both answer" in warnings[0]
    finally:
        server.stop()


def test_the_v4_region_is_oss_region_then_the_endpoints_then_fcs(reply, reply_env, use_env, sink, caplog):
    from shared.reply.config.storage import oss_region_of
    assert oss_region_of("http://oss-cn-hangzhou-internal.aliyuncs.com") == "cn-hangzhou"
    assert oss_region_of("https://oss-ap-southeast-1.aliyuncs.com") == "ap-southeast-1"
    assert oss_region_of("http://127.0.0.1:9000") is None
    server = FakeOSS(region="cn-shanghai").start()
    try:
        env = {**reply_env, "OSS_BUCKET": server.bucket, "OSS_ENDPOINT": server.endpoint}
        use_env(env)  # FC's context says cn-local: the bucket refuses, the answer still comes
        event = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()
        assert json.loads(reply(event, context("reply")))["status"] == "answered"
        assert server.refused and "storage failed to claim" in caplog.text
        use_env({**env, "OSS_REGION": "cn-shanghai"})
        event = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()
        assert run_twice(reply, event) == ["answered", "duplicate"]
        assert any(key.startswith("dingbot/claims/") for key in server.objects)
    finally:
        server.stop()


def test_oss_api_listings_follow_every_page_objects_and_folders():
    server = FakeOSS().start()
    server.page_size = 3
    try:
        blobs = ApiBlobs.connect(server.endpoint, server.bucket, Credentials(), "dingbot/", server.region)
        for index in range(8):
            blobs.create(f"usage/2026-11-30/{index:02d}.json", b"{}")
        blobs.create("usage/2026-11-29/x.json", b"{}")
        blobs.create("usage/top.json", b"{}")
        assert len(blobs.entries("usage/2026-11-30/")) == 8
        assert blobs.list("usage/") == ["usage/2026-11-29", "usage/2026-11-30", "usage/top.json"]
        assert server.refused == {}
    finally:
        server.stop()
