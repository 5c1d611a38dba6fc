"""Card streaming within DingTalk's real limits: card size, API-call budget, quotas, the built-in card.

The loopback DingTalk refuses what DingTalk refuses and marks a card blank past 3,000 characters;
these tests read what a user would see there.
"""

import json
import re

import pytest
from conftest import context

from devstack.fake_dingtalk import QPS_LIMITED, callback_body
from devstack.fake_llm import THOUGHT, offline_answer
from shared.common.errors import ConfigError
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.config import BUILTIN_CARD_TEMPLATE, CardSettings, DingTalkApp, ReplyConfig
from shared.reply.dingtalk.cards import CardStream
from shared.reply.dingtalk.openapi import OpenApi, TokenCache
from shared.reply.dingtalk.session import dingtalk_session

LONG = offline_answer([{"role": "user", "content": "写一篇长文"}])


@pytest.fixture
def stream_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_UPDATE_INTERVAL_MS": "50", "TIMEOUT": "30"}


def ask(reply, sink, text, **kwargs) -> str:
    event = parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"]


def flat(text):
    return re.sub(r"\s+|```", "", text)


def history_of(oss):
    return [json.loads(p.read_text("utf-8")) for p in (oss / "dingbot" / "history").glob("*/*-turn-*")]


# --- the card ------------------------------------------------------------------------------------

def test_an_app_key_alone_streams_into_dingtalks_builtin_ai_card_through_its_lifecycle(
        reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    assert ask(reply, sink, "你好", conversation_id="cid-s") == "answered"
    [card] = sink.cards_in("cid-s")
    assert card["template"] == BUILTIN_CARD_TEMPLATE and card["openSpaceId"] == "dtv1.card//IM_GROUP.cid-s"
    statuses = [call["body"]["cardData"]["cardParamMap"]["flowStatus"] for call in sink.api_calls
                if call["path"].startswith("/v1.0/card/instances")]
    assert statuses == ["1", "2", "3"] and card["finalized"] and not card["error"]
    assert card["content"] == offline_answer([{"role": "user", "content": "你好"}])
    assert sink.messages == []


def test_a_template_of_ones_own_is_finished_through_streaming(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "DINGTALK_CARD_TEMPLATE_ID": "tpl-own.schema", "DINGTALK_CARD_CONTENT_KEY": "answer"})
    assert ask(reply, sink, "你好", conversation_id="cid-own") == "answered"
    [card] = sink.cards_in("cid-own")
    assert card["template"] == "tpl-own.schema" and card["finalized"] and "flowStatus" not in card["params"]
    assert card["params"]["answer"] == card["content"] and "你好" in card["content"]


def test_card_streaming_can_be_turned_off(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "CARD_STREAMING": "off"})
    assert ask(reply, sink, "你好") == "answered"
    assert sink.cards == {} and len(sink.wait_for(1)) == 1


def test_direct_chat_cards_go_to_the_one_to_one_space(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    ask(reply, sink, "你好", group=False, conversation_id="cid-dm", sender_staff_id="staff-7")
    [card] = sink.cards.values()
    assert card["openSpaceId"] == "dtv1.card//IM_ROBOT.staff-7"


# --- size ----------------------------------------------------------------------------------------

def test_a_long_answer_continues_in_order_in_next_cards_none_over_3000_characters(
        reply, stream_env, use_env, llm, sink, oss):
    # A budget no pace of updates can spend, so what is shown does not depend on the machine's speed
    # (the budget itself is tested on a clock the test moves, in test_boundaries.py).
    use_env({**stream_env, "CARD_MAX_CALLS": "200"})
    llm.stream_delay = 0.0005
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-long") == "answered"
    cards = sink.cards_in("cid-long")
    assert len(cards) >= 5 and sink.messages == []
    assert all(c["finalized"] and not c["error"] and not c["blank"] and len(c["content"]) <= 3000 for c in cards)
    assert flat("".join(c["content"] for c in cards)) == flat(LONG)
    assert [t["answer"] for t in history_of(oss)] == [LONG]


def test_a_code_block_cut_between_two_cards_stays_a_code_block_in_both(stream_env, sink):
    app = DingTalkApp(sink.app_key, sink.app_secret, sink.url)
    address = ChatAddress.of(parse_callback(json.dumps(callback_body("q", webhook_base=sink.url)).encode()))
    stream = CardStream(CardSettings(BUILTIN_CARD_TEMPLATE, "msgContent", 0.0, 1000, 25),
                        OpenApi(app, tokens=TokenCache()), address)
    stream.start()
    code = "```python\n" + "print('x')\n" * 150 + "```"
    assert stream.finish(code) == ""
    contents = [c["content"] for c in sorted(sink.cards.values(), key=lambda c: c["created"])]
    assert len(contents) >= 2 and all(c.count("```") % 2 == 0 for c in contents)
    assert contents[1].startswith("```python\n")


# --- API budget ----------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def card_calls_for_an_answer(sink, seconds, chars_per_second, settings):
    """Stream an answer written at a steady pace, on a clock the test moves: the calls it cost."""
    clock = Clock()
    app = DingTalkApp(sink.app_key, sink.app_secret, sink.url)
    stream = CardStream(settings, OpenApi(app, tokens=TokenCache()),
                        ChatAddress.of(parse_callback(json.dumps(callback_body("q", webhook_base=sink.url)).encode())),
                        clock=clock)
    stream.start()
    text, shown_at = "", None
    for tick in range(int(seconds * 10)):
        clock.now = tick / 10
        text += "字" * int(chars_per_second / 10)
        stream.show(text)
        if shown_at is None and stream.updates:
            shown_at = clock.now
    rest = stream.finish(text)
    return stream.calls, shown_at, rest, text


@pytest.mark.parametrize("chars_per_second", [20, 50, 100, 300])
def test_a_20_second_answer_costs_at_most_25_card_calls_and_shows_text_at_the_first_token(sink, chars_per_second):
    settings = CardSettings(BUILTIN_CARD_TEMPLATE, "msgContent", 0.3, 3000, 25)
    calls, shown_at, rest, text = card_calls_for_an_answer(sink, 20, chars_per_second, settings)
    assert calls <= 25 and shown_at == 0.0 and rest == ""
    assert flat("".join(c["content"] for c in sink.cards.values())) == flat(text)


def test_updates_come_fast_first_and_slower_as_the_answer_grows(sink):
    card_calls_for_an_answer(sink, 20, 50, CardSettings(BUILTIN_CARD_TEMPLATE, "msgContent", 0.3, 3000, 25))
    [card] = sink.cards.values()
    lengths = [u["length"] for u in card["updates"]]
    growth = [b - a for a, b in zip(lengths, lengths[1:-1])]
    assert growth[0] < growth[-1] and growth == sorted(growth)


def test_what_the_budget_cannot_show_in_cards_goes_out_as_messages_in_order(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "CARD_MAX_CALLS": "8"})
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-budget") == "answered"
    cards = sink.cards_in("cid-budget")
    assert sink.card_calls() <= 8 and all(c["finalized"] and not c["blank"] for c in cards)
    posted = "".join(m["text"]["content"] for m in sink.wait_for(1))
    assert flat("".join(c["content"] for c in cards) + posted) == flat(LONG)


# --- quotas --------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [QPS_LIMITED, "Forbidden.AccessDenied.QpsLimitForApi", "90002", "90018"])
def test_qps_throttling_waits_and_carries_on_with_the_same_card(code, reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    sink.fail_api("/v1.0/card/streaming", status=403, code=code)
    assert ask(reply, sink, "你好", conversation_id="cid-qps") == "answered"
    [card] = sink.cards_in("cid-qps")
    assert card["finalized"] and "你好" in card["content"] and sink.messages == []


def test_a_spent_monthly_quota_answers_through_the_webhook_and_is_remembered_by_every_instance(
        reply, stream_env, use_env, llm, sink, oss, caplog):
    use_env(stream_env)
    sink.quota_spent = True
    assert ask(reply, sink, "第一句") == "answered"
    memo = json.loads((oss / "dingbot" / "state" / "dingtalk-api-quota.json").read_text())
    assert memo["code"] == "Forbidden.AccessDenied.ApiCountLimitForOrg"
    calls = len(sink.api_calls)
    assert ask(reply, sink, "第二句") == "answered"
    assert len(sink.api_calls) == calls and len(sink.wait_for(2)) == 2
    assert caplog.text.count("monthly API quota") == 1


# --- falling back --------------------------------------------------------------------------------

def test_the_card_shows_before_the_knowledge_search_and_the_model(reply, stream_env, use_env, llm, sink, tmp_path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "手册.md").write_text("# 报销\n报销单每月 25 日前提交。", "utf-8")
    use_env({**stream_env, "KNOWLEDGE_DIR": str(tmp_path / "kb"), "EMBEDDING_ENDPOINT": llm.url})
    assert ask(reply, sink, "报销什么时候提交", conversation_id="cid-order") == "answered"
    created = next(c["at"] for c in sink.api_calls if c["path"].endswith("/createAndDeliver"))
    assert llm.embedding_arrivals and created < min(llm.embedding_arrivals) < llm.arrivals[0]
    assert llm.raw_requests and "报销" in json.dumps(llm.raw_requests[0], ensure_ascii=False)


def test_an_unexpected_failure_after_the_card_showed_closes_it_with_one_sentence(reply, stream_env, use_env, llm,
                                                                                  sink, monkeypatch):
    from shared.reply.llm import prompt

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    use_env(stream_env)
    with monkeypatch.context() as patched:
        patched.setattr(prompt, "build_prompt", broken)
        assert ask(reply, sink, "你好", conversation_id="cid-bug", msg_id="msg-bug") == "internal-error"
    [card] = sink.cards_in("cid-bug")
    assert card["finalized"] and card["error"] and card["content"] == texts.INTERNAL
    assert sink.messages == [] and llm.requests == []
    # Nothing was answered, so the claim is free: DingTalk's redelivery is answered.
    assert ask(reply, sink, "你好", conversation_id="cid-bug", msg_id="msg-bug") == "answered"



def test_card_that_cannot_be_created_falls_back_to_the_webhook(reply, stream_env, use_env, llm, sink, caplog):
    use_env(stream_env)
    sink.fail_api("/v1.0/card/instances/createAndDeliver")
    assert ask(reply, sink, "你好") == "answered"
    assert len(sink.wait_for(1)) == 1 and sink.cards == {}
    assert "card streaming unavailable" in caplog.text


def test_a_card_delivered_to_nobody_falls_back_to_the_webhook(reply, stream_env, use_env, llm, sink, caplog):
    use_env(stream_env)
    sink.undeliverable = "机器人不在该群"
    assert ask(reply, sink, "你好") == "answered"
    [posted] = sink.wait_for(1)
    assert offline_answer([{"role": "user", "content": "你好"}]) in json.dumps(posted, ensure_ascii=False)
    assert "not delivered" in caplog.text and sink.card_calls() == 1


def test_refused_app_secret_falls_back_to_the_webhook(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "DINGTALK_APP_SECRET": "not-the-secret"})
    assert ask(reply, sink, "你好") == "answered"
    assert len(sink.wait_for(1)) == 1 and sink.cards == {}


def test_card_update_failure_mid_answer_sends_the_whole_answer_through_the_webhook(reply, stream_env, use_env, llm,
                                                                                   sink):
    use_env(stream_env)
    sink.fail_api("/v1.0/card/streaming")
    assert ask(reply, sink, "你好") == "answered"
    [message] = sink.wait_for(1)
    assert "你好" in message["text"]["content"]


def test_model_failure_mid_stream_leaves_the_card_in_a_failed_state(reply, stream_env, use_env, llm, sink, oss):
    use_env(stream_env)
    llm.fail_next({"break_after": 3})
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-f") == "llm-error"
    [card] = sink.cards_in("cid-f")
    assert card["finalized"] and card["error"] and card["params"]["flowStatus"] == "5"
    assert card["content"].endswith("回答中断了，请稍后再试。") and len(card["content"]) > 20
    assert sink.messages == [] and history_of(oss) == []


def test_model_refusal_before_any_text_is_shown_in_the_card(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    llm.fail_next({"status": 400})
    assert ask(reply, sink, "你好", conversation_id="cid-r") == "llm-error"
    [card] = sink.cards_in("cid-r")
    assert card["error"] and "拒绝" in card["content"]


def test_a_stream_that_outlasts_timeout_is_cut_and_says_so(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "TIMEOUT": "1"})
    llm.stream_delay = 0.02
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-slow") == "llm-error"
    [card] = sink.cards_in("cid-slow")
    assert card["error"] and card["content"].endswith("请求超时，请稍后再试。")
    assert 0 < len(card["content"]) < len(LONG) / 2


# --- what the card shows -------------------------------------------------------------------------

def test_streamed_answers_keep_the_conversation_context(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    ask(reply, sink, "我叫王五", conversation_id="cid-ctx")
    ask(reply, sink, "我刚才说了什么", conversation_id="cid-ctx")
    last = llm.requests[-1]
    assert last["stream"] is True
    assert [m["content"] for m in last["messages"][:1]] == ["我叫王五"] and last["messages"][1]["role"] == "assistant"
    assert sink.cards_in("cid-ctx")[-1]["content"] == "【离线模型】你上一句说的是：「我叫王五」。"


@pytest.mark.parametrize("style", ["inline", "separate"])
def test_reasoning_never_shows_as_the_answer_nor_stays_in_history(style, reply, stream_env, use_env, llm, sink, oss):
    use_env(stream_env)
    llm.reasoning = style
    assert ask(reply, sink, "你好", conversation_id="cid-think") == "answered"
    [card] = sink.cards_in("cid-think")
    assert THOUGHT not in card["content"] and "think>" not in card["content"] and "你好" in card["content"]
    assert not any(THOUGHT in u["content"] or "<think" in u["content"] for u in card["updates"])
    assert [THOUGHT in t["answer"] for t in history_of(oss)] == [False]


def test_reasoning_can_be_shown_quoted_but_is_still_not_stored(reply, stream_env, use_env, llm, sink, oss):
    use_env({**stream_env, "SHOW_REASONING": "quote"})
    llm.reasoning = "inline"
    ask(reply, sink, "你好", conversation_id="cid-quote")
    [card] = sink.cards_in("cid-quote")
    assert card["content"].startswith("> 💭 思考过程") and THOUGHT in card["content"]
    assert THOUGHT not in history_of(oss)[0]["answer"]


def test_cards_keep_markdown_tables(reply, stream_env, use_env, llm, sink, monkeypatch):
    use_env(stream_env)
    table = "| 名称 | 价格 |\n| --- | --- |\n| 苹果 | 5 |"
    monkeypatch.setattr("devstack.fake_llm.offline_answer", lambda messages: table)
    ask(reply, sink, "列个表", conversation_id="cid-table")
    assert sink.cards_in("cid-table")[0]["content"] == table


# --- settings and the token ----------------------------------------------------------------------

def test_access_token_is_fetched_once_and_reused(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    for i in range(3):
        ask(reply, sink, f"问题{i}", conversation_id=f"cid-t{i}")
    assert sink.token_requests == 1 and len(sink.cards) == 3


def test_streaming_needs_the_app_secret_in_the_reply_function():
    with pytest.raises(ConfigError) as error:
        ReplyConfig.from_env({"CHATGPT_API_KEY": "k", "DINGTALK_APP_KEY": "a"})
    assert error.value.variable == "DINGTALK_APP_SECRET"


def test_webhook_mode_is_the_default_without_an_app_key():
    assert ReplyConfig.from_env({"CHATGPT_API_KEY": "k", "DINGTALK_APP_SECRET": "s"}).card is None


def test_access_token_is_renewed_five_minutes_before_it_expires(stream_env, sink):
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    app = ReplyConfig.from_env(stream_env).app
    first = cache.get(app, dingtalk_session())
    now[0] += 7200 - 301
    assert cache.get(app, dingtalk_session()) == first and sink.token_requests == 1
    now[0] += 2
    cache.get(app, dingtalk_session())
    assert sink.token_requests == 2


def test_a_token_dingtalk_no_longer_accepts_is_replaced_once(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    ask(reply, sink, "第一句", conversation_id="cid-revoked")
    sink.token = "a-new-token-after-the-secret-was-reset"
    assert ask(reply, sink, "第二句", conversation_id="cid-revoked") == "answered"
    assert len(sink.cards_in("cid-revoked")) == 2 and sink.token_requests == 2 and sink.messages == []
