"""One JSON line per handled message that the operator can query in SLS: outcome, latencies, tokens, card
calls, storage mode; ids only as hashes, no text, no secrets."""

import json

import pytest
from conftest import API_KEY, context

from devstack.fake_dingtalk import callback_body
from devstack.fake_llm import offline_answer
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.summary import EVENT


def ask(reply, sink, text, **kwargs):
    body = callback_body(text, webhook_base=sink.url, **kwargs)
    event = parse_callback(json.dumps(body).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"], body


def summaries(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith('{"event":"' + EVENT)]


@pytest.fixture
def card_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_UPDATE_INTERVAL_MS": "50"}


def test_a_streamed_answer_leaves_one_line_with_its_figures_and_no_text(reply, card_env, use_env, llm, sink, caplog):
    use_env(card_env)
    status, body = ask(reply, sink, "机密的问题内容", conversation_id="cid-secret-name")
    assert status == "answered"
    [line] = summaries(caplog)
    assert line["outcome"] == "answered" and line["storage"] == "mount" and line["model"] == "gpt-4.1-mini"
    assert line["card_calls"] == sink.card_calls() > 0
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0 and line["tokens_estimated"] is False
    assert 0 <= line["first_text_ms"] <= line["total_ms"]
    raw = json.dumps(line, ensure_ascii=False)
    for private in ("机密", "cid-secret-name", body["msgId"], API_KEY, "session="):
        assert private not in raw
    assert llm.requests[-1]["stream_options"] == {"include_usage": True}


def test_a_webhook_answer_reports_the_apis_usage(reply, reply_env, use_env, llm, sink, caplog):
    use_env(reply_env)
    assert ask(reply, sink, "你好")[0] == "answered"
    [line] = summaries(caplog)
    assert (line["card_calls"], line["tokens_estimated"]) == (0, False)
    assert line["completion_tokens"] == len(offline_answer([{"role": "user", "content": "你好"}]))
    assert line["first_text_ms"] is not None


def test_without_usage_from_the_provider_tokens_are_estimated_and_marked(reply, card_env, use_env, llm, sink, caplog):
    use_env(card_env)
    llm.usage = False
    assert ask(reply, sink, "你好")[0] == "answered"
    [line] = summaries(caplog)
    assert line["tokens_estimated"] is True and line["prompt_tokens"] > 0 and line["completion_tokens"] > 0


def test_a_provider_that_refuses_stream_options_is_asked_again_without_and_remembered(
        reply, card_env, use_env, llm, sink, caplog):
    use_env(card_env)
    llm.refuse_stream_options = True
    assert [ask(reply, sink, "你好")[0] for _ in range(2)] == ["answered", "answered"]
    assert ["stream_options" in r for r in llm.requests] == [True, False, False]
    assert [line["tokens_estimated"] for line in summaries(caplog)] == [True, True]


def test_skipped_and_refused_messages_leave_their_line_too(reply, reply_env, use_env, llm, sink, caplog):
    use_env({**reply_env, "ALLOWED_USERS": "someone-else"})
    body = callback_body("你好", webhook_base=sink.url)
    event = parse_callback(json.dumps(body).encode()).to_payload()
    outcomes = [json.loads(reply(event, context("reply")))["status"] for _ in range(2)]
    assert outcomes == ["refused", "duplicate"]
    assert [line["outcome"] for line in summaries(caplog)] == ["refused", "duplicate"]
    assert all(line["prompt_tokens"] == 0 and line["model"] is None for line in summaries(caplog))
