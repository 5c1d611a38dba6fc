"""Card streaming: answers grow in place in a DingTalk AI card; any failed step falls back to the webhook."""

import json

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.fake_llm import offline_answer
from shared.common.errors import ConfigError
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.config import ReplyConfig
from shared.reply.dingtalk.openapi import TokenCache
from shared.reply.dingtalk.session import dingtalk_session


@pytest.fixture
def stream_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_CARD_TEMPLATE_ID": "tpl-ai-card.schema", "DINGTALK_API_ENDPOINT": sink.url,
            "CARD_UPDATE_INTERVAL_MS": "50", "TIMEOUT": "30"}


def ask(reply, sink, text, **kwargs) -> str:
    event = parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"]


def test_answer_grows_in_a_card_in_the_group_and_no_webhook_message_is_sent(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    llm.stream_delay = 0.0005
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-s") == "answered"
    [card] = sink.cards_in("cid-s")
    assert card["openSpaceId"] == "dtv1.card//IM_GROUP.cid-s" and card["template"] == "tpl-ai-card.schema"
    assert card["finalized"] and not card["error"]
    assert card["content"] == offline_answer([{"role": "user", "content": "写一篇长文"}])
    lengths = [u["length"] for u in card["updates"]]
    assert len(lengths) >= 3 and lengths == sorted(lengths)
    assert sink.messages == []


def test_updates_are_batched_to_the_configured_cadence(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    llm.stream_delay = 0.0005
    ask(reply, sink, "写一篇长文", conversation_id="cid-b")
    [card] = sink.cards_in("cid-b")
    chunks = len(card["content"]) / 8
    assert len(card["updates"]) < chunks / 5
    gaps = [b["at"] - a["at"] for a, b in zip(card["updates"], card["updates"][1:-1])]
    assert all(gap >= 0.045 for gap in gaps)


def test_streamed_answers_keep_the_conversation_context(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    ask(reply, sink, "我叫王五", conversation_id="cid-ctx")
    ask(reply, sink, "我刚才说了什么", conversation_id="cid-ctx")
    last = llm.requests[-1]
    assert last["stream"] is True
    assert [m["content"] for m in last["messages"][:1]] == ["我叫王五"] and last["messages"][1]["role"] == "assistant"
    second = max(sink.cards_in("cid-ctx"), key=lambda card: card["created"])
    assert second["content"] == "【离线模型】你上一句说的是：「我叫王五」。"


def test_a_stream_that_outlasts_timeout_is_cut_and_says_so(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "TIMEOUT": "1"})
    llm.stream_delay = 0.02
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-slow") == "llm-error"
    [card] = sink.cards_in("cid-slow")
    full = offline_answer([{"role": "user", "content": "写一篇长文"}])
    assert card["error"] and card["content"].endswith("请求超时，请稍后再试。")
    assert 0 < len(card["content"]) < len(full) / 2


def test_direct_chat_cards_go_to_the_one_to_one_space(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    ask(reply, sink, "你好", group=False, conversation_id="cid-dm", sender_staff_id="staff-7")
    [card] = sink.cards.values()
    assert card["openSpaceId"] == "dtv1.card//IM_ROBOT.staff-7"


def test_access_token_is_fetched_once_and_reused(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    for i in range(3):
        ask(reply, sink, f"问题{i}", conversation_id=f"cid-t{i}")
    assert sink.token_requests == 1 and len(sink.cards) == 3


def test_card_that_cannot_be_created_falls_back_to_the_webhook(reply, stream_env, use_env, llm, sink, caplog):
    use_env(stream_env)
    sink.fail_card("create")
    assert ask(reply, sink, "你好") == "answered"
    assert len(sink.wait_for(1)) == 1 and sink.cards == {}
    assert "card streaming unavailable" in caplog.text


def test_refused_app_secret_falls_back_to_the_webhook(reply, stream_env, use_env, llm, sink):
    use_env({**stream_env, "DINGTALK_APP_SECRET": "not-the-secret"})
    assert ask(reply, sink, "你好") == "answered"
    assert len(sink.wait_for(1)) == 1 and sink.cards == {}


def test_card_update_failure_mid_answer_sends_the_whole_answer_through_the_webhook(reply, stream_env, use_env, llm,
                                                                                   sink):
    use_env(stream_env)
    sink.fail_card("update")
    assert ask(reply, sink, "你好") == "answered"
    [message] = sink.wait_for(1)
    assert "你好" in message["text"]["content"]


def test_model_failure_mid_stream_leaves_the_card_in_a_failed_state(reply, stream_env, use_env, llm, sink, oss):
    use_env(stream_env)
    llm.fail_next({"break_after": 3})
    assert ask(reply, sink, "写一篇长文", conversation_id="cid-f") == "llm-error"
    [card] = sink.cards_in("cid-f")
    assert card["finalized"] and card["error"]
    assert card["content"].endswith("回答中断了，请稍后再试。") and len(card["content"]) > 20
    assert sink.messages == []
    history = [json.loads(p.read_text()) for p in (oss / "dingbot" / "history").glob("*.json")]
    assert all(h["turns"] == [] for h in history)


def test_model_refusal_before_any_text_is_shown_in_the_card(reply, stream_env, use_env, llm, sink):
    use_env(stream_env)
    llm.fail_next({"status": 400})
    assert ask(reply, sink, "你好", conversation_id="cid-r") == "llm-error"
    [card] = sink.cards_in("cid-r")
    assert card["error"] and "拒绝" in card["content"]


def test_streaming_needs_the_app_secret_in_the_reply_function():
    with pytest.raises(ConfigError) as error:
        ReplyConfig.from_env({"CHATGPT_API_KEY": "k", "DINGTALK_APP_KEY": "a", "DINGTALK_CARD_TEMPLATE_ID": "t"})
    assert error.value.variable == "DINGTALK_APP_SECRET"


def test_webhook_mode_is_the_default():
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
