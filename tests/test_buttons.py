"""Buttons on the answer's card (CARD_BUTTONS=on): 停止 while it streams, 重新回答 and 👍/👎 once it is done. The clicks
come as DingTalk's HTTP card callbacks to the receiver, signed with the registered apiSecret, and reach the reply
function asynchronously; the built-in card (no template) keeps working without them."""

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.stack import LocalStack, StackSettings
from shared.common.card_actions import CardAction, callback_secret
from shared.common.errors import ConfigError
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.config import ReplyConfig
from shared.reply.oss.card_marks import CardMarks
from shared.reply.oss.usage import Calendar

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    settings = StackSettings(state_dir=tmp_path_factory.mktemp("buttons"), stream=True, buttons=True, workers=3)
    with LocalStack(settings) as running:
        yield running


def marks(stack):
    from shared.reply.oss.blobs import MountBlobs

    blobs = MountBlobs(stack.oss_dir / "dingbot")
    return CardMarks(blobs, blobs, Calendar("Asia/Shanghai"))


def test_a_finished_answer_shows_again_and_feedback_and_is_remembered(stack):
    exchange = stack.send("你好", conversation_id="cid-buttons-done")
    assert exchange.outcome == "answered"
    card = stack.last_card("cid-buttons-done")
    assert card["callbackType"] == "HTTP" and card["callbackRouteKey"] == "dingbot"
    assert card["template"] == "dingbot-ai-card-with-buttons.schema"
    assert card["params"]["status"] == "finished" and "你好" in card["content"]
    answer = marks(stack).recall(card["outTrackId"])
    assert answer["conversation"] == "cid-buttons-done" and answer["model"] == "offline-demo"
    assert "session=" not in json.loads(answer["payload"])["sessionWebhook"]  # the session token is not kept


def test_stop_ends_a_long_answer_within_one_update_and_history_keeps_it_marked(stack):
    stack.llm.stream_delay = 0.01
    try:
        sender = threading.Thread(target=stack.send, args=("写一篇长文",),
                                  kwargs={"conversation_id": "cid-buttons-stop"})
        sender.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            card = stack.last_card("cid-buttons-stop")
            if card and len(card["content"]) > 100:
                break
            time.sleep(0.02)
        clicked = time.time()
        assert stack.click("stop", conversation_id="cid-buttons-stop")["status"] == "stopping"
        sender.join(60)
    finally:
        stack.llm.stream_delay = 0.0
    card = stack.last_card("cid-buttons-stop")
    assert card["params"]["status"] == "stopped" and card["content"].endswith("已停止")
    progress = [u for u in card["updates"] if u["wall"] > clicked and "已停止" not in u["content"]]
    assert len(progress) <= 1  # at most the update already on its way when the mark was written
    stack.send("继续", conversation_id="cid-buttons-stop")
    history = [m for m in stack.llm.requests[-1]["messages"] if m["role"] == "assistant"]
    assert history[-1]["content"].endswith("（已停止）") and len(history[-1]["content"]) < 3000


def test_again_answers_the_same_question_once_into_a_new_card(stack):
    stack.send("我最喜欢的颜色是蓝色", conversation_id="cid-buttons-again")
    first = stack.last_card("cid-buttons-again")
    asked = len(stack.llm.requests)
    results = [stack.click("again", conversation_id="cid-buttons-again", card=first["outTrackId"]) for _ in range(2)]
    assert [r["status"] for r in results] == ["answered", "duplicate"]
    cards = stack.sink.cards_in("cid-buttons-again")
    assert len(cards) == 2 and cards[-1]["outTrackId"] != first["outTrackId"]
    assert len(stack.llm.requests) == asked + 1
    assert stack.llm.requests[-1]["messages"][-1]["content"].endswith("我最喜欢的颜色是蓝色")
    assert cards[-1]["params"]["status"] == "finished"


def test_feedback_counts_once_per_person_and_a_second_click_changes_it(stack):
    stack.send("你好", conversation_id="cid-buttons-votes")
    card = stack.last_card("cid-buttons-votes")["outTrackId"]
    assert stack.click("good", conversation_id="cid-buttons-votes", user="staff-a")["status"] == "noted"
    assert stack.click("bad", conversation_id="cid-buttons-votes", user="staff-a")["feedback"] == "bad"
    assert stack.click("good", conversation_id="cid-buttons-votes", user="staff-b", card=card)["feedback"] == "good"
    today = Calendar("Asia/Shanghai").day()
    votes = [v for v in marks(stack).feedback_on(today) if v["model"] == "offline-demo"]
    mine = sorted(v["value"] for v in votes if v["conversation"] == marks_short("cid-buttons-votes"))
    assert mine == ["bad", "good"]
    admin = stack.send(" \\usage", conversation_id="cid-buttons-votes", is_admin=True)
    shown = admin.replies[-1]["text"]["content"] if admin.replies else stack.last_card("cid-buttons-votes")["content"]
    assert "本会话 👍 1 · 👎 1" in shown
    member = stack.send(" \\usage", conversation_id="cid-buttons-votes")
    shown = member.replies[-1]["text"]["content"] if member.replies else stack.last_card("cid-buttons-votes")["content"]
    assert "👍" not in shown


def marks_short(conversation_id):
    from shared.reply.oss.usage import short

    return short(conversation_id)


def test_forged_stale_and_replayed_callbacks_change_nothing(stack):
    stack.send("你好", conversation_id="cid-buttons-forged")
    card = stack.last_card("cid-buttons-forged")["outTrackId"]
    handed = len(stack.fc.invocations)
    assert stack.sink.click(card, "staff-a", "bad", sign="Zm9yZ2Vk").status_code == 403
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    assert stack.sink.click(card, "staff-a", "bad", timestamp_ms=two_hours_ago).status_code == 403
    assert len(stack.fc.invocations) == handed
    now = int(time.time() * 1000)
    assert stack.sink.click(card, "staff-a", "good", timestamp_ms=now).status_code == 200
    assert stack.sink.click(card, "staff-a", "good", timestamp_ms=now).status_code == 200  # FC: a duplicate task
    tasks = [i for i in stack.fc.invocations[handed:] if "cardAction" in i["payload"]]
    assert len(tasks) == 1


def test_a_click_from_another_conversation_changes_nothing(stack):
    stack.send("你好", conversation_id="cid-buttons-space")
    card = stack.last_card("cid-buttons-space")["outTrackId"]
    before = len(marks(stack).feedback_on(Calendar("Asia/Shanghai").day()))
    response = stack.sink.click(card, "staff-x", "bad", space_id="cid-somewhere-else")
    assert response.status_code == 200
    time.sleep(0)
    invocation = [i for i in stack.fc.invocations if (i["payload"].get("cardAction") or {}).get("space_id")
                  == "cid-somewhere-else"][-1]
    assert json.loads(stack.pool.wait(invocation["request_id"], timeout=30)["result"])["status"] == "refused"
    assert len(marks(stack).feedback_on(Calendar("Asia/Shanghai").day())) == before


@pytest.fixture
def buttons_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_BUTTONS": "on",
            "DINGTALK_CARD_TEMPLATE_ID": "tpl-buttons.schema"}


def answered_card(reply, sink):
    body = callback_body("你好", webhook_base=sink.url, conversation_id="cid-unit")
    assert json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"] \
        == "answered"
    return sink.cards_in("cid-unit")[-1]["outTrackId"]


def test_a_user_outside_allowed_users_and_a_replayed_click_change_nothing(reply, buttons_env, use_env, sink, oss):
    use_env({**buttons_env, "ALLOWED_USERS": "staff-zhangsan"})
    card = answered_card(reply, sink)
    outsider = CardAction(card, "staff-outsider", "bad", "cid-unit", "", "sig-1")
    assert json.loads(reply(outsider.to_payload(), context("reply")))["status"] == "refused"
    member = CardAction(card, "staff-zhangsan", "good", "cid-unit", "", "sig-2")
    assert json.loads(reply(member.to_payload(), context("reply")))["status"] == "noted"
    assert json.loads(reply(member._replace(action="bad").to_payload(), context("reply")))["status"] == "replayed"
    from shared.reply.oss.blobs import MountBlobs
    blobs = MountBlobs(oss / "dingbot")
    votes = CardMarks(blobs, blobs, Calendar("Asia/Shanghai")).feedback_on(Calendar("Asia/Shanghai").day())
    assert [v["value"] for v in votes] == ["good"]


def test_buttons_need_a_template_and_the_built_in_card_has_none(reply_env, sink):
    env = {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret, "CARD_BUTTONS": "on"}
    with pytest.raises(ConfigError) as raised:
        ReplyConfig.from_env(env)
    assert raised.value.variable == "DINGTALK_CARD_TEMPLATE_ID"
    assert ReplyConfig.from_env({**env, "CARD_BUTTONS": "off"}).card.builtin


def test_the_built_in_card_has_no_buttons_and_no_callback(reply, reply_env, use_env, sink):
    use_env({**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
             "DINGTALK_API_ENDPOINT": sink.url})
    body = callback_body("你好", webhook_base=sink.url, conversation_id="cid-builtin")
    reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply"))
    card = sink.cards_in("cid-builtin")[-1]
    assert card["callbackType"] == "STREAM" and "status" not in card["params"] and card["finalized"]


def test_make_doctor_registers_the_card_callback_for_each_robot(tmp_path, sink, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import doctor

    sink.add_app("ding-hr-app", "hr-secret")
    env = tmp_path / ".env"
    env.write_text(f"DINGTALK_APP_KEY={sink.app_key}\nDINGTALK_APP_SECRET={sink.app_secret}\n"
                   f"DINGTALK_API_ENDPOINT={sink.url}\nCHATGPT_API_KEY=sk-test\nOSS_MOUNT_POINT={tmp_path}\n"
                   "BOTS=" + json.dumps({"hr": {"DINGTALK_APP_KEY": "ding-hr-app", "DINGTALK_APP_SECRET": "hr-secret"}})
                   + "\n", "utf-8")
    results = doctor.register_card_callbacks(doctor.read_dotenv(env).merged(), "https://x.fcapp.run")
    assert all(r.ok for r in results) and len(results) == 2
    assert sink.card_callbacks["dingbot"] == {"url": "https://x.fcapp.run/card-callback",
                                              "apiSecret": callback_secret(sink.app_secret)}
    assert sink.card_callbacks["dingbot-hr"]["url"] == "https://x.fcapp.run/bots/hr/card-callback"
    assert not doctor.register_card_callbacks({}, None)[0].ok
