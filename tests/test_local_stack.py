"""End to end through the local stack: receiver process → FC API → reply workers → model → webhook."""

import json
import sys
from pathlib import Path

import pytest

from devstack.stack import LocalStack, StackSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", params=["fc3", "fc2"])
def stack(request, tmp_path_factory):
    settings = StackSettings(state_dir=tmp_path_factory.mktemp(request.param), fc2=request.param == "fc2", workers=2)
    with LocalStack(settings) as running:
        yield running


def texts(exchange):
    return [m.get("text", {}).get("content") or m["markdown"]["text"] for m in exchange.replies]


def test_group_message_is_answered_mentioning_the_asker(stack):
    exchange = stack.send("你好", conversation_id="cid-e2e-group", sender_staff_id="staff-a")
    assert (exchange.status, exchange.outcome) == (200, "answered")
    assert exchange.replies[0]["at"]["atUserIds"] == ["staff-a"]
    assert "你好" in texts(exchange)[0]


def test_direct_message_is_answered_without_mention(stack):
    exchange = stack.send("你好", group=False, conversation_id="cid-e2e-dm")
    assert exchange.outcome == "answered" and "at" not in exchange.replies[0]


def test_context_carries_across_turns_and_clear_resets_it(stack):
    stack.send("我最喜欢的颜色是蓝色", conversation_id="cid-e2e-ctx")
    assert "蓝色" in texts(stack.send("我刚才说了什么", conversation_id="cid-e2e-ctx"))[0]
    assert stack.send(" \\clear", conversation_id="cid-e2e-ctx").outcome == "cleared"
    assert "第一句" in texts(stack.send("我刚才说了什么", conversation_id="cid-e2e-ctx"))[0]


def test_history_is_readable_json_on_the_oss_mount(stack):
    stack.send("存一下", conversation_id="cid-e2e-file")
    records = [json.loads(f.read_text("utf-8")) for f in (stack.oss_dir / "dingbot" / "history").glob("*/*.json")]
    assert any(r["question"] == "存一下" and "存一下" in r["answer"] for r in records if r["kind"] == "turn")


def test_forged_callback_never_reaches_the_reply_function(stack):
    stack.settings.app_secret, real = "forged-secret", stack.settings.app_secret
    try:
        exchange = stack.send("伪造的消息", conversation_id="cid-e2e-forged")
    finally:
        stack.settings.app_secret = real
    assert exchange.status == 403 and exchange.replies == []


@pytest.fixture(scope="module")
def streaming_stack(tmp_path_factory):
    with LocalStack(StackSettings(state_dir=tmp_path_factory.mktemp("stream"), stream=True)) as running:
        yield running


@pytest.mark.parametrize("group", [True, False], ids=["group", "direct"])
def test_streaming_mode_answers_in_a_card_through_the_whole_chain(streaming_stack, group):
    exchange = streaming_stack.send("你好", group=group, conversation_id="cid-e2e-card", sender_staff_id="staff-c")
    assert (exchange.status, exchange.outcome, exchange.replies) == (200, "answered", [])
    [card] = exchange.cards
    assert card["finalized"] and "你好" in card["content"]
    assert card["openSpaceId"].endswith("IM_GROUP.cid-e2e-card" if group else "IM_ROBOT.staff-c")


def test_make_run_with_cards_shows_a_tools_status_line_then_the_answer(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import chat

    with LocalStack(StackSettings(state_dir=tmp_path / "state", stream=True)) as stack:
        stack.search.search_delay = 0.5  # the card shows the status line while the search runs
        chat.Chat(stack).say("搜索 钉钉机器人")
    out = capsys.readouterr().out
    assert "🔍 正在搜索：钉钉机器人" in out
    assert out.index("🔍 正在搜索") < out.index("根据工具的结果")


def test_make_run_sends_a_picture_and_a_file_through_the_whole_chain(tmp_path, capsys):
    import fixtures

    sys.path.insert(0, str(ROOT / "scripts"))
    import chat

    (tmp_path / "cat.png").write_bytes(fixtures.png())
    (tmp_path / "报告.pdf").write_bytes(fixtures.pdf("Revenue grew"))
    with LocalStack(StackSettings(state_dir=tmp_path / "state")) as stack:
        user = chat.Chat(stack)
        assert user.local_command(f"/image {tmp_path / 'cat.png'} 这是什么动物")
        assert user.local_command(f"/file '{tmp_path / '报告.pdf'}'")
        assert user.prompt.endswith("单聊> ")  # the next question goes where the file is
        user.say("这份文件讲了什么")
        assert user.local_command("/image /no/such/file.png")
        [asked_in] = {i["payload"]["conversationId"] for i in stack.fc.invocations[1:]}
    out = capsys.readouterr().out
    assert "看到了 1 张图片。这是什么动物" in out
    assert "已切换到单聊" in out and "【文件：报告.pdf】" in out and "Revenue grew" in out
    assert asked_in.startswith("cid-dm-") and "发不出去" in out


def test_a_link_the_guard_refuses_is_answered_in_chinese_with_the_reason_in_the_log(stack):
    exchange = stack.send("总结一下 http://10.0.0.1/admin", conversation_id="cid-e2e-ssrf")
    [answer] = texts(exchange)
    assert exchange.outcome == "answered"
    assert "1 个工具没有拿到结果" in answer and "The tool failed" not in answer and "10.0.0.1" not in answer
