"""Fault injection: real loopback servers that fail on command; each test names its guarantee."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.stack import LocalStack, StackSettings
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.config import load_reply_config
from shared.reply.delivery import Delivery
from shared.reply.dingtalk.webhook import ATTEMPTS, WebhookSender
from shared.reply.oss.storage import Storage
from shared.reply.replier import Replier


def payload(sink, text, **kwargs) -> bytes:
    return parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()


def run(reply, event) -> str:
    return json.loads(reply(event, context("reply")))["status"]


def history_questions(oss):
    records = (oss / "dingbot" / "history").glob("*/*-turn-*")
    return sorted(json.loads(f.read_text("utf-8"))["question"] for f in records)


# --- deliver once --------------------------------------------------------------------------------

def test_fc_retry_of_an_answered_message_neither_calls_the_model_nor_answers_again(reply, reply_env, use_env,
                                                                                    llm, sink):
    use_env(reply_env)
    event = payload(sink, "你好")
    assert [run(reply, event) for _ in range(3)] == ["answered", "duplicate", "duplicate"]
    assert len(llm.requests) == 1 and len(sink.wait_for(1)) == 1


def test_two_deliveries_of_one_message_at_the_same_time_answer_once(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    llm.fail_next({"delay": 0.3})
    event = payload(sink, "你好")
    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: run(reply, event), range(2)))
    assert outcomes == ["answered", "duplicate"]
    assert len(llm.requests) == 1 and len(sink.wait_for(1)) == 1


def test_message_that_reached_nobody_can_be_answered_by_a_later_delivery(reply_env, use_env, llm, sink):
    use_env(reply_env)
    config = load_reply_config(reply_env)
    waits = []
    sender = WebhookSender(config.delivery.webhook_hosts, sleep=waits.append)
    replier = Replier(config, Delivery(config.delivery, sender, Storage.open(config.storage)))
    message = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode())
    sink.fail_next(*[{"status": 503}] * ATTEMPTS)
    assert replier.process(message) == "delivery-failed"
    assert sink.attempts == ATTEMPTS and len(waits) == ATTEMPTS - 1 and sink.messages == []
    assert replier.process(message) == "answered"
    assert len(sink.wait_for(1)) == 1


# --- webhook faults ------------------------------------------------------------------------------

def test_webhook_5xx_then_success_answers_once(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    sink.fail_next({"status": 500})
    assert run(reply, payload(sink, "你好")) == "answered"
    assert len(sink.wait_for(1)) == 1 and sink.attempts == 2


def test_a_throttled_webhook_goes_through_the_robot_openapi_when_the_app_is_set_up(reply, reply_env, use_env, llm,
                                                                                    sink):
    use_env({**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
             "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off"})
    sink.fail_next({"errcode": 130101})
    assert run(reply, payload(sink, "你好", conversation_id="cid-throttled")) == "answered"
    assert sink.attempts == 1 and sink.messages == []
    [sent] = sink.robot_messages
    assert sent["to"] == "cid-throttled" and "你好" in json.dumps(sent["msgParam"], ensure_ascii=False)


def test_a_throttled_webhook_without_the_app_is_logged_once_with_what_to_do(reply, reply_env, use_env, llm, sink,
                                                                             caplog):
    use_env(reply_env)
    sink.fail_next({"errcode": 130101}, {"errcode": 130101})
    outcomes = [run(reply, payload(sink, "你好")) for _ in range(2)]
    assert outcomes == ["delivery-failed", "delivery-failed"] and sink.attempts == 2
    advice = [r for r in caplog.records if "130101" in r.getMessage() and "DINGTALK_APP_KEY" in r.getMessage()
              and "robot OpenAPI meanwhile" in r.getMessage()]
    assert len(advice) == 1


def test_webhook_refusal_is_not_retried_and_leaves_no_turn(reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    sink.fail_next({"errcode": 460101})
    assert run(reply, payload(sink, "太长的回答")) == "delivery-failed"
    assert sink.attempts == 1 and history_questions(oss) == []


# --- model faults --------------------------------------------------------------------------------

def test_model_429_then_success_is_answered(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "LLM_MAX_RETRIES": "2"})
    llm.fail_next({"status": 429})
    assert run(reply, payload(sink, "你好")) == "answered"
    assert len(llm.requests) == 2 and "你好" in sink.wait_for(1)[0]["text"]["content"]


def test_model_retries_are_bounded_and_end_in_one_readable_message(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "LLM_MAX_RETRIES": "2"})
    llm.fail_next({"status": 503}, {"status": 502}, {"status": 500}, {"status": 500})
    assert run(reply, payload(sink, "你好")) == "llm-error"
    assert len(llm.requests) == 3
    [message] = sink.wait_for(1)
    assert message["text"]["content"] == "模型服务暂时不可用（HTTP 500），请稍后再试。"


def test_model_timeout_is_not_retried_past_the_timeout_budget(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "TIMEOUT": "1", "LLM_MAX_RETRIES": "3"})
    llm.fail_next({"delay": 1.5}, {"delay": 1.5})
    assert run(reply, payload(sink, "你好")) == "llm-error"
    assert len(llm.requests) == 1
    assert sink.wait_for(1)[0]["text"]["content"] == "请求超时，请稍后再试。"


def test_a_retry_after_longer_than_the_timeout_budget_is_not_waited_for(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "TIMEOUT": "5", "LLM_MAX_RETRIES": "3"})
    llm.fail_next({"status": 429, "retry_after": 30})
    assert run(reply, payload(sink, "你好")) == "llm-error"
    assert len(llm.requests) == 1
    assert sink.wait_for(1)[0]["text"]["content"] == "模型服务繁忙（请求过于频繁），请稍后再试。"


def test_model_errors_that_cannot_improve_are_not_retried(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "LLM_MAX_RETRIES": "3"})
    llm.fail_next({"status": 400})
    assert run(reply, payload(sink, "你好")) == "llm-error"
    assert len(llm.requests) == 1


# --- storage faults ------------------------------------------------------------------------------

def test_a_corrupt_record_is_ignored_and_the_message_still_answered(reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    run(reply, payload(sink, "第一句", conversation_id="cid-corrupt"))
    [record] = (oss / "dingbot" / "history").glob("*/*-turn-*")
    record.write_bytes(b"\x00garbage{")
    assert run(reply, payload(sink, "第二句", conversation_id="cid-corrupt")) == "answered"
    assert len(llm.requests[-1]["messages"]) == 1


@pytest.mark.parametrize("mount", ["missing", "unwritable"])
def test_without_a_usable_mount_the_bot_answers_without_context_and_says_why_in_the_log(
        mount, reply, reply_env, use_env, llm, sink, oss, caplog):
    if mount == "missing":
        oss.rmdir()
    else:
        (oss / "dingbot").write_text("a file where the data folder should be")
    use_env(reply_env)
    assert run(reply, payload(sink, "我叫李雷", conversation_id="cid-nomount")) == "answered"
    assert run(reply, payload(sink, "我刚才说了什么", conversation_id="cid-nomount")) == "answered"
    assert len(llm.requests[-1]["messages"]) == 1 and len(sink.wait_for(2)) == 2
    assert ("is not a directory" if mount == "missing" else "answering without") in caplog.text
    assert not oss.exists() or mount == "unwritable"


@pytest.mark.parametrize("command, effect", [("\\clear", "cleared"), ("\\system 你是一只猫", "persona")])
def test_a_command_nobody_heard_takes_no_effect_and_is_confirmed_when_delivered_again(
        command, effect, reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "SYSTEM_PROMPT": "默认"})
    run(reply, payload(sink, "记住这句", group=False, conversation_id="cid-cmd"))
    event = payload(sink, command, group=False, conversation_id="cid-cmd")
    sink.fail_next({"status": 400})
    assert run(reply, event) == "delivery-failed"
    run(reply, payload(sink, "还记得吗", group=False, conversation_id="cid-cmd"))
    unheard = llm.requests[-1]["messages"]
    assert unheard[0]["content"] == "默认" and unheard[1]["content"] == "记住这句"
    assert run(reply, event) in ("cleared", "persona-set")
    confirmation = sink.messages[-1]["body"]["text"]["content"]
    assert confirmation.startswith("已清空" if effect == "cleared" else "已设置")
    run(reply, payload(sink, "现在呢", group=False, conversation_id="cid-cmd"))
    heard = [m["content"] for m in llm.requests[-1]["messages"]]
    if effect == "cleared":
        assert "记住这句" not in heard and "还记得吗" in heard
    else:
        assert heard[0] == "你是一只猫"


def test_a_long_answer_cut_off_part_way_tells_the_user_the_rest_is_missing(reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    sink.fail_next({}, {"errcode": 460101})
    assert run(reply, payload(sink, "写一篇长文")) == "delivery-failed"
    messages = sink.wait_for(2)
    assert "第 1 段" in messages[0]["text"]["content"]
    assert messages[-1]["text"]["content"] == "（回答没能完整发出，后面的部分丢失了，请再问一次。）"
    assert history_questions(oss) == []


# --- access control ------------------------------------------------------------------------------

def test_conversations_outside_the_allow_list_are_refused_politely(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "ALLOWED_CONVERSATIONS": "cid-ok, cid-also-ok"})
    assert run(reply, payload(sink, "你好", conversation_id="cid-other")) == "refused"
    assert run(reply, payload(sink, "你好", conversation_id="cid-ok")) == "answered"
    assert len(llm.requests) == 1
    assert "没有为当前会话开放" in sink.wait_for(2)[0]["text"]["content"]


def test_users_outside_the_allow_list_are_refused_politely(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "ALLOWED_USERS": "staff-boss"})
    assert run(reply, payload(sink, "你好", sender_staff_id="staff-intern")) == "refused"
    assert run(reply, payload(sink, "你好", sender_staff_id="staff-boss")) == "answered"
    assert len(llm.requests) == 1


# --- through the local stack ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with LocalStack(StackSettings(state_dir=tmp_path_factory.mktemp("faults"), workers=4)) as running:
        yield running


def test_duplicate_callback_through_the_stack_is_answered_once(stack):
    body = callback_body("重复投递", webhook_base=stack.sink.url, conversation_id="cid-dup")
    first = stack.deliver(body)
    again = stack.deliver(body)
    assert (first.status, again.status) == (200, 200)
    assert len(stack.sink.for_session(body["sessionWebhook"])) == 1
    assert sum(m["messages"][-1]["content"] == "重复投递" for m in stack.llm.requests) == 1


def test_fifty_concurrent_conversations_each_get_exactly_one_answer(stack):
    def one(i):
        return stack.send(f"并发问题{i}", conversation_id=f"cid-load-{i}", sender_staff_id=f"staff-{i}")

    before = len(stack.llm.requests)
    with ThreadPoolExecutor(50) as pool:
        exchanges = list(pool.map(one, range(50)))
    assert [e.status for e in exchanges] == [200] * 50
    assert [e.outcome for e in exchanges] == ["answered"] * 50
    assert all(len(e.replies) == 1 and f"并发问题{i}" in e.replies[0]["text"]["content"]
               for i, e in enumerate(exchanges))
    assert len(stack.llm.requests) - before == 50
