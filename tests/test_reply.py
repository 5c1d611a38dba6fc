"""The reply function through its FC entry, against the loopback LLM (real openai SDK) and webhook sink."""

import json
import time

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback


def payload(sink, text, **kwargs) -> bytes:
    body = callback_body(text, webhook_base=sink.url, **kwargs)
    return parse_callback(json.dumps(body).encode()).to_payload()


def run(reply, event):
    return json.loads(reply(event, context("reply")))["status"]


def texts_of(sink):
    return [m.get("text", {}).get("content") or m.get("markdown", {}).get("text") for m in sink.wait_for(0)]


def test_answer_is_posted_to_the_session_webhook_mentioning_the_asker(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    assert run(reply, payload(sink, "你好")) == "answered"
    [message] = sink.wait_for(1)
    assert message["msgtype"] == "text" and "你好" in message["text"]["content"]
    assert message["at"]["atUserIds"] == ["staff-zhangsan"]


def test_direct_chat_answers_without_mention(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    run(reply, payload(sink, "你好", group=False, conversation_id="cid-dm"))
    assert "at" not in sink.wait_for(1)[0]


def test_history_is_sent_to_the_model_on_the_next_turn(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "SYSTEM_PROMPT": "你是助手", "MODEL": "m-test", "TEMPERATURE": "0.3"})
    run(reply, payload(sink, "第一句"))
    run(reply, payload(sink, "我刚才说了什么"))
    last = llm.requests[-1]
    assert last["model"] == "m-test" and last["temperature"] == 0.3
    assert [m["role"] for m in last["messages"]] == ["system", "user", "assistant", "user"]
    assert last["messages"][1]["content"] == "第一句"
    assert "第一句" in texts_of(sink)[-1]


def test_history_is_per_conversation_not_per_nick(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    run(reply, payload(sink, "群A的问题", conversation_id="cid-A"))
    run(reply, payload(sink, "我刚才说了什么", conversation_id="cid-B"))
    assert len(llm.requests[-1]["messages"]) == 1


@pytest.mark.parametrize("command", ["\\clear", "  \\clear", "/clear", " /CLEAR "])
def test_clear_forgets_the_conversation_and_confirms(command, reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    run(reply, payload(sink, "记住这句"))
    assert run(reply, payload(sink, command)) == "cleared"
    assert "清空" in texts_of(sink)[-1]
    run(reply, payload(sink, "我刚才说了什么"))
    assert len(llm.requests[-1]["messages"]) == 1


def test_unknown_command_gets_help(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    assert run(reply, payload(sink, "\\foo")) == "unknown-command"
    assert "未知指令：foo" in texts_of(sink)[0] and "\\clear" in texts_of(sink)[0]
    assert llm.requests == []


@pytest.mark.parametrize("fault, expected", [({"status": 500}, "暂时不可用"), ({"status": 429}, "繁忙"),
                                             ({"status": 400}, "拒绝"), ({"empty": True}, "没有给出回答")])
def test_model_failures_become_one_readable_message_and_keep_history_clean(
        fault, expected, reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    llm.fail_next(fault)
    assert run(reply, payload(sink, "你好")) == "llm-error"
    [text] = texts_of(sink)
    assert expected in text and "{" not in text and "Traceback" not in text
    history = list((oss / "dingbot" / "history").glob("*.json"))
    assert all(json.loads(p.read_text())["turns"] == [] for p in history)


def test_model_timeout_says_so(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "TIMEOUT": "1"})
    llm.fail_next({"delay": 1.5})
    assert run(reply, payload(sink, "你好")) == "llm-error"
    assert texts_of(sink) == ["请求超时，请稍后再试。"]


def test_wrong_api_key_tells_the_chat_to_check_configuration(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "CHATGPT_API_KEY": "sk-wrong", "USER_API_KEY": "sk-wrong"})
    run(reply, payload(sink, "你好"))
    assert "API Key" in texts_of(sink)[0]


@pytest.mark.parametrize("msgtype, expected", [("video", "视频"), ("interactiveCard", "interactiveCard")])
def test_unsupported_messages_get_a_polite_reply(msgtype, expected, reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    assert run(reply, payload(sink, "", msgtype=msgtype)) == "unsupported"
    assert expected in texts_of(sink)[0] and llm.requests == []


def test_audio_is_answered_from_its_text(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    run(reply, payload(sink, "语音问题", msgtype="audio"))
    assert llm.requests[0]["messages"][-1]["content"] == "语音问题"


def test_long_answers_arrive_in_order_in_several_messages(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    run(reply, payload(sink, "写一篇长文"))
    messages = sink.wait_for(2)
    assert len(messages) > 1
    assert all(len(json.dumps(m, ensure_ascii=False).encode()) < 15000 for m in messages)
    joined = "".join(m["text"]["content"] for m in messages)
    positions = [joined.find(f"第 {i} 段") for i in (1, 10, 20, 40)]
    assert -1 not in positions and positions == sorted(positions)


def test_markdown_answers_are_sent_as_markdown(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    run(reply, payload(sink, "给我一段代码"))
    [message] = sink.wait_for(1)
    assert message["msgtype"] == "markdown" and "```python" in message["markdown"]["text"]


def test_expired_webhook_is_not_posted_to_and_the_model_is_not_called(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    event = payload(sink, "你好", now_ms=int(time.time() * 1000) - 10_000, webhook_lifetime_ms=5_000)
    assert run(reply, event) == "undeliverable"
    assert sink.messages == [] and llm.requests == []


def test_webhook_outside_allowed_hosts_is_never_called(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "ALLOWED_WEBHOOK_HOSTS": "oapi.dingtalk.com"})
    assert run(reply, payload(sink, "你好")) == "undeliverable"
    assert sink.messages == []


def test_refused_answer_leaves_no_turn_in_history(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    sink.fail_next({"errcode": 460101})
    assert run(reply, payload(sink, "第一句")) == "delivery-failed"
    run(reply, payload(sink, "我刚才说了什么"))
    assert len(llm.requests[-1]["messages"]) == 1


def test_per_sender_scope_separates_group_members(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "HISTORY_SCOPE": "sender"})
    run(reply, payload(sink, "张三的话", sender_staff_id="u1"))
    run(reply, payload(sink, "我刚才说了什么", sender_staff_id="u2"))
    assert len(llm.requests[-1]["messages"]) == 1


def test_missing_api_key_is_reported_in_the_chat_by_name(reply, reply_env, use_env, llm, sink):
    use_env({k: v for k, v in reply_env.items() if k != "CHATGPT_API_KEY"})
    assert run(reply, payload(sink, "你好")) == "misconfigured"
    assert "USER_API_KEY" in texts_of(sink)[0]


def test_malformed_payload_is_ignored_without_raising(reply, reply_env, use_env):
    use_env(reply_env)
    assert run(reply, b"not json") == "malformed"


def test_tutorial_payload_is_answered(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    legacy = {"sessionExpiredTime": "x", "sessionWebhook": sink.url + "/robot/sendBySession?session=s",
              "question": " 你好",
              "id": "张三"}
    assert run(reply, json.dumps(legacy).encode()) == "answered"
    assert len(sink.wait_for(1)) == 1


def test_tutorial_payloads_asking_the_same_again_are_new_messages_and_a_redelivery_is_not(
        reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    first = {"sessionExpiredTime": "2026-11-30 21:00:01", "sessionWebhook": sink.url + "/robot/sendBySession?session=s",
             "question": " 继续", "id": "张三"}
    again = {**first, "sessionExpiredTime": "2026-11-30 21:02:45"}
    outcomes = [run(reply, json.dumps(p).encode()) for p in (first, again, again)]
    assert outcomes == ["answered", "answered", "duplicate"]


def test_webhook_5xx_then_success_delivers_every_part_once_in_order(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    sink.fail_next({"status": 502})
    assert run(reply, payload(sink, "写一篇长文")) == "answered"
    messages = sink.wait_for(2)
    joined = "".join(m["text"]["content"] for m in messages)
    assert joined.count("第 1 段") == 1 and joined.count("第 40 段") == 1
    assert joined.find("第 1 段") < joined.find("第 40 段")
