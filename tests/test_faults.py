"""Fault injection: real loopback servers that fail on command; each test names its guarantee."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.stack import LocalStack, StackSettings
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.app import Replier
from shared.reply.config import load_reply_config
from shared.reply.dingtalk.webhook import ATTEMPTS, WebhookSender
from shared.reply.llm.model import ChatModel
from shared.reply.oss.history import FileHistoryStore


def payload(sink, text, **kwargs) -> bytes:
    return parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()


def run(reply, event) -> str:
    return json.loads(reply(event, context("reply")))["status"]


def history_questions(oss):
    files = [f for f in (oss / "dingbot" / "history").glob("*.json") if ".corrupt-" not in f.name]
    return sorted(t["question"] for f in files for t in json.loads(f.read_text("utf-8"))["turns"])


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
    replier = Replier(config, FileHistoryStore(config.oss_mount_point), ChatModel(config),
                      WebhookSender(config.allowed_webhook_hosts, sleep=waits.append))
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


def test_webhook_throttling_errcode_is_retried(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    sink.fail_next({"errcode": 130101})
    assert run(reply, payload(sink, "你好")) == "answered"
    assert len(sink.wait_for(1)) == 1


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


def test_model_errors_that_cannot_improve_are_not_retried(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "LLM_MAX_RETRIES": "3"})
    llm.fail_next({"status": 400})
    assert run(reply, payload(sink, "你好")) == "llm-error"
    assert len(llm.requests) == 1


# --- history faults ------------------------------------------------------------------------------

def test_corrupt_history_is_moved_aside_and_the_message_still_answered(reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    run(reply, payload(sink, "第一句", conversation_id="cid-corrupt"))
    [path] = (oss / "dingbot" / "history").glob("*.json")
    path.write_bytes(b"\x00garbage{")
    assert run(reply, payload(sink, "第二句", conversation_id="cid-corrupt")) == "answered"
    assert history_questions(oss) == ["第二句"]
    assert len(list(path.parent.glob("*.corrupt-*.json"))) == 1


def test_concurrent_messages_of_one_conversation_keep_every_turn(reply, reply_env, use_env, llm, sink, oss):
    use_env({**reply_env, "HISTORY_LENGTH": "20"})
    events = [payload(sink, f"问题{i}", conversation_id="cid-busy") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda e: run(reply, e), events))
    assert outcomes == ["answered"] * 8
    assert history_questions(oss) == sorted(f"问题{i}" for i in range(8))


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
