"""Chat commands through the reply function: one-line confirmations, `\\` or `/`, admin rules in groups."""

import json

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback


def say(reply, sink, text, **kwargs) -> str:
    event = parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()
    before = len(sink.messages)
    reply(event, context("reply"))
    message = sink.wait_for(before + 1)[-1]
    return message.get("text", {}).get("content") or message["markdown"]["text"]


@pytest.mark.parametrize("prefix", ["\\", "/"])
def test_help_lists_every_command(prefix, reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    text = say(reply, sink, f"{prefix}help")
    for command in ("\\help", "\\clear", "\\system", "\\model"):
        assert command in text
    assert llm.requests == []


def test_model_shows_the_model_in_use(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "MODEL": "qwen-plus"})
    assert say(reply, sink, "/model") == "当前模型：qwen-plus"


def test_persona_is_shown_set_used_and_reset_per_conversation(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "SYSTEM_PROMPT": "你是默认助手"})
    shown = say(reply, sink, "\\system", group=False, conversation_id="cid-p")
    assert shown.startswith("本会话使用管理员设置的默认人设")
    assert say(reply, sink, "\\system 你是一只猫，句尾加喵", group=False, conversation_id="cid-p").startswith("已设置")
    say(reply, sink, "你好", group=False, conversation_id="cid-p")
    assert llm.requests[-1]["messages"][0] == {"role": "system", "content": "你是一只猫，句尾加喵"}
    assert "一只猫" in say(reply, sink, "/system", group=False, conversation_id="cid-p")
    say(reply, sink, "你好", group=False, conversation_id="cid-other")
    assert llm.requests[-1]["messages"][0]["content"] == "你是默认助手"
    assert say(reply, sink, "\\system reset", group=False, conversation_id="cid-p") == "已恢复默认人设。"
    say(reply, sink, "你好", group=False, conversation_id="cid-p")
    assert llm.requests[-1]["messages"][0]["content"] == "你是默认助手"


def test_only_group_admins_change_the_group_persona(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    assert say(reply, sink, "\\system 你是海盗", conversation_id="cid-g") == "只有群管理员可以修改群里的人设。"
    assert say(reply, sink, "\\system", conversation_id="cid-g").startswith("本会话没有设置人设")
    assert say(reply, sink, "\\system 你是海盗", conversation_id="cid-g", is_admin=True).startswith("已设置")
    assert say(reply, sink, "\\system reset", conversation_id="cid-g") == "只有群管理员可以修改群里的人设。"
    say(reply, sink, "你好", conversation_id="cid-g")
    assert llm.requests[-1]["messages"][0]["content"] == "你是海盗"


def test_clear_keeps_the_persona(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    say(reply, sink, "\\system 简短回答", group=False, conversation_id="cid-c")
    say(reply, sink, "\\clear", group=False, conversation_id="cid-c")
    say(reply, sink, "你好", group=False, conversation_id="cid-c")
    assert llm.requests[-1]["messages"] == [{"role": "system", "content": "简短回答"},
                                            {"role": "user", "content": "你好"}]


def test_overlong_persona_is_refused(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    assert "太长" in say(reply, sink, "\\system " + "长" * 2001, group=False)


def test_the_operators_system_prompt_is_never_shown_to_members(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "SYSTEM_PROMPT": "内部折扣码 VIP-2026，不要告诉用户"})
    for asker in ({}, {"is_admin": True}, {"group": False}):
        assert "VIP-2026" not in say(reply, sink, "\\system", **asker)


@pytest.mark.parametrize("setting, member, admin", [("everyone", "已清空本会话的上下文。", "已清空本会话的上下文。"),
                                                    ("admins", "只有群管理员可以清空群里的上下文。",
                                                     "已清空本会话的上下文。")])
def test_clear_in_groups_can_be_kept_for_admins(setting, member, admin, reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "CLEAR_IN_GROUPS": setting})
    assert say(reply, sink, "\\clear", conversation_id="cid-clear") == member
    assert say(reply, sink, "\\clear", conversation_id="cid-clear", is_admin=True) == admin
    assert say(reply, sink, "\\clear", group=False) == "已清空本会话的上下文。"


def test_an_unknown_command_echoes_what_was_typed_as_text_never_as_a_link(reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    event = parse_callback(json.dumps(callback_body("\\[点此重新登录](https://evil.example/login)",
                                                    webhook_base=sink.url)).encode()).to_payload()
    reply(event, context("reply"))
    [message] = sink.wait_for(1)
    assert message["msgtype"] == "text" and "未知指令" in message["text"]["content"]
