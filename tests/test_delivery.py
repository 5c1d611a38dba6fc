"""Never lose an answer, and make it readable where it lands: the robot OpenAPI when the session is gone,
tables a phone can read, reasoning kept out of the answer, a context that never overflows."""

import json
import time

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.fake_llm import THOUGHT
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.dingtalk.mobile import tables_as_lists
from shared.reply.llm.prompt import Prompt, estimate_tokens


def ask(reply, sink, text, **kwargs) -> str:
    event = parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"]


@pytest.fixture
def app_env(reply_env, sink):
    """The app's credentials, cards off: answers go through the session webhook unless it is gone."""
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off"}


EXPIRED = {"now_ms": int(time.time() * 1000) - 10_000, "webhook_lifetime_ms": 5_000}


# --- the session is gone -------------------------------------------------------------------------

@pytest.mark.parametrize("group", [True, False], ids=["group", "direct"])
def test_an_expired_session_is_answered_through_the_robot_openapi_once(group, reply, app_env, use_env, llm, sink):
    use_env(app_env)
    assert ask(reply, sink, "你好", group=group, conversation_id="cid-late", sender_staff_id="staff-9",
               **EXPIRED) == "answered"
    [robot] = sink.robot_messages
    assert robot["to"] == ("cid-late" if group else ["staff-9"]) and robot["group"] is group
    assert robot["msgKey"] == "sampleText" and "你好" in robot["msgParam"]["content"]
    assert sink.messages == [] and len(llm.requests) == 1


def test_errcode_300001_part_way_sends_the_rest_through_the_robot_openapi(reply, app_env, use_env, llm, sink):
    use_env(app_env)
    sink.fail_next({}, {"errcode": 300001})
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-gone") == "answered"
    posted = [m["text"]["content"] for m in sink.wait_for(1)] + [r["msgParam"]["content"] for r in sink.robot_messages]
    joined = "".join(posted)
    assert len(sink.messages) == 1 and sink.robot_messages and joined.count("第 40 段") == 1
    assert joined.find("第 1 段") < joined.find("第 40 段")
    assert all(len(json.dumps(r["msgParam"], ensure_ascii=False).encode()) <= 15_000 for r in sink.robot_messages)


def test_without_app_credentials_an_expired_session_is_logged_as_undeliverable(reply, reply_env, use_env, llm, sink,
                                                                               caplog):
    use_env(reply_env)
    assert ask(reply, sink, "你好", **EXPIRED) == "undeliverable"
    assert llm.requests == [] and sink.robot_messages == [] and "session webhook has expired" in caplog.text


def test_a_spent_quota_makes_a_gone_session_undeliverable_without_calling_the_api_again(
        reply, app_env, use_env, llm, sink, caplog):
    use_env(app_env)
    sink.quota_spent = True
    assert ask(reply, sink, "你好", **EXPIRED) == "delivery-failed"
    calls = len(sink.api_calls)
    assert ask(reply, sink, "再问一次", **EXPIRED) == "undeliverable"
    assert len(sink.api_calls) == calls and "monthly API quota" in caplog.text


# --- readable on a phone ---------------------------------------------------------------------------

def test_a_table_becomes_a_list_that_keeps_every_cell():
    table = "价格表：\n\n| 名称 | 价格 | 备注 |\n|:---|---:|---|\n| 苹果 | 5 | 新鲜 |\n| 香蕉 | 3 |  |\n\n以上。"
    assert tables_as_lists(table) == ("价格表：\n\n- **名称：苹果**，价格：5，备注：新鲜\n"
                                      "- **名称：香蕉**，价格：3，备注：—\n\n以上。")


def test_a_table_inside_a_code_block_is_left_alone():
    code = "```\n| a | b |\n| --- | --- |\n| 1 | 2 |\n```"
    assert tables_as_lists(code) == code


def test_webhook_answers_carry_tables_as_lists(reply, reply_env, use_env, llm, sink, monkeypatch):
    use_env(reply_env)
    monkeypatch.setattr("devstack.fake_llm.offline_answer",
                        lambda messages: "| 城市 | 天气 |\n| --- | --- |\n| 北京 | 晴 |\n| 上海 | 雨 |")
    ask(reply, sink, "天气")
    [message] = sink.wait_for(1)
    assert message["msgtype"] == "markdown" and "|" not in message["markdown"]["text"]
    assert "**城市：北京**，天气：晴" in message["markdown"]["text"] and "上海" in message["markdown"]["text"]


# --- reasoning -----------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["inline", "separate"])
def test_reasoning_is_not_posted_nor_stored(style, reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    llm.reasoning = style
    assert ask(reply, sink, "你好") == "answered"
    [message] = sink.wait_for(1)
    assert THOUGHT not in json.dumps(message, ensure_ascii=False) and "你好" in message["text"]["content"]
    ask(reply, sink, "我刚才说了什么")
    assert all(THOUGHT not in m["content"] for m in llm.requests[-1]["messages"])


# --- context that never overflows --------------------------------------------------------------------

def test_a_full_context_drops_the_oldest_turns_and_asks_once_more(reply, reply_env, use_env, llm, sink, caplog):
    use_env({**reply_env, "HISTORY_LENGTH": "10"})
    for i in range(6):
        ask(reply, sink, f"第{i}个问题" + "很长的内容" * 20, conversation_id="cid-full")
    llm.context_limit = 1200
    assert ask(reply, sink, "我刚才说了什么", conversation_id="cid-full") == "answered"
    refused, accepted = llm.requests[-2:]
    assert len(accepted["messages"]) < len(refused["messages"]) and accepted["messages"][-1] == refused["messages"][-1]
    assert accepted["messages"][1]["content"] != refused["messages"][1]["content"]
    assert "context is full" in caplog.text


def test_a_question_too_long_for_the_model_alone_gets_one_readable_sentence(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    llm.context_limit = 50
    assert ask(reply, sink, "太长" * 100) == "llm-error"
    assert sink.wait_for(1)[0]["text"]["content"] == "这个问题太长了，超出了模型能读的长度，请精简后再问。"
    assert len(llm.requests) == 1


def test_max_context_tokens_keeps_the_prompt_under_the_budget_before_asking(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "HISTORY_LENGTH": "10", "MAX_CONTEXT_TOKENS": "600"})
    for i in range(8):
        ask(reply, sink, f"问题{i}" + "内容" * 60, conversation_id="cid-budget")
    sent = llm.requests[-1]["messages"]
    assert Prompt(sent[-1]["content"], tuple((sent[i]["content"], sent[i + 1]["content"])
                                              for i in range(0, len(sent) - 1, 2))).tokens() <= 600
    assert 1 < len(sent) < 2 * 7 + 1


def test_the_token_estimate_counts_cjk_heavier_than_latin():
    assert estimate_tokens("你好" * 10) == pytest.approx(12.0) and estimate_tokens("ab" * 10) == pytest.approx(6.0)
