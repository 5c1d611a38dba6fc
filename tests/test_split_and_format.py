import re

import pytest

from shared.reply.dingtalk.outgoing import dingtalk_messages, looks_like_markdown
from shared.reply.dingtalk.split import split_message


def _content(parts):
    return re.sub(r"\s+", "", "".join(parts))


@pytest.mark.parametrize("text", [
    "第一段。" * 3000,
    "\n\n".join(f"paragraph {i} " + "word " * 300 for i in range(30)),
    "无分隔符的中文" * 5000,
])
def test_long_answers_split_in_order_under_the_limit_losing_nothing(text):
    parts = split_message(text, 6000)
    assert len(parts) > 1
    assert all(len(p.encode("utf-8")) <= 6000 for p in parts)
    assert _content(parts) == re.sub(r"\s+", "", text)


def test_short_answers_stay_whole():
    assert split_message("你好", 6000) == ["你好"]


def test_splits_prefer_paragraph_boundaries():
    text = "\n\n".join("段" * 1000 for _ in range(4))
    parts = split_message(text, 6500)
    assert len(parts) == 2
    assert all(len(paragraph) == 1000 for part in parts for paragraph in part.strip().split("\n\n"))


def test_a_split_code_block_is_closed_and_reopened():
    text = "intro\n\n```python\n" + "print('x')\n" * 2000 + "```\nafter"
    parts = split_message(text, 6000)
    assert len(parts) > 2
    for part in parts[:-1]:
        assert part.count("```") % 2 == 0
    assert parts[1].startswith("```python\n")


def test_markdown_is_detected_and_plain_text_is_not():
    assert looks_like_markdown("看这里：\n```\ncode\n```")
    assert looks_like_markdown("1. 第一\n2. 第二")
    assert looks_like_markdown("**重点**")
    assert not looks_like_markdown("今天天气不错，适合出门。")


def test_group_answers_mention_the_asker_once():
    messages = dingtalk_messages("段落。" * 5000, mention="staff-1", max_bytes=6000)
    assert len(messages) > 1
    assert messages[0]["at"] == {"atUserIds": ["staff-1"], "isAtAll": False}
    assert all("at" not in m for m in messages[1:])
    assert all(len(str(m).encode()) < 15000 for m in messages)


def test_markdown_mention_is_written_into_the_text():
    [message] = dingtalk_messages("- a\n- b", mention="staff-1", max_bytes=6000)
    assert message["msgtype"] == "markdown"
    assert message["markdown"]["text"].startswith("@staff-1")
    assert message["markdown"]["title"]
