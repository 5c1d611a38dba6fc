"""Code fences open and close as CommonMark says, checked against markdown-it-py (a CommonMark parser): a
```` ``` ```` line inside a ``~~~`` or a longer fence is code, so long answers split and tables rewrite right."""

import random

import pytest
from markdown_it import MarkdownIt

from shared.reply.dingtalk import fences
from shared.reply.dingtalk.mobile import tables_as_lists
from shared.reply.dingtalk.split import split_message

COMMONMARK = MarkdownIt("commonmark")


def commonmark_code_lines(text):
    lines = text.split("\n")
    inside = [False] * len(lines)
    for token in COMMONMARK.parse(text):
        if token.type == "fence":
            for number in range(token.map[0], min(token.map[1], len(lines))):
                inside[number] = True
    return inside


def code_of(text):
    return [token.content for token in COMMONMARK.parse(text) if token.type == "fence"]


NESTED = {
    "backticks-in-tildes": "说明\n~~~markdown\n```python\nprint(1)\n```\n~~~\n之后",
    "short-inside-long": "````md\n```\ncode\n```\n````\n正文",
    "tildes-in-backticks": "```\n~~~\nstill code\n~~~\n```\n正文",
    "longer-closer": "```\ncode\n`````\n正文",
    "closer-with-info-is-code": "```\ncode\n```python\nmore\n```\n正文",
    "backtick-info-with-backtick": "``` a`b\n不是代码\n```\n代码\n```",
    "unclosed-runs-to-end": "正文\n~~~~\n```\n代码\n```",
    "indented-up-to-three": "   ```\ncode\n  ```\n正文",
    "trailing-spaces-close": "```\ncode\n```   \n正文",
    "table-in-code": "~~~\n```\n| a | b |\n| --- | --- |\n| 1 | 2 |\n```\n~~~\n| c | d |\n| --- | --- |\n| 3 | 4 |",
}


@pytest.mark.parametrize("name", list(NESTED))
def test_code_lines_match_commonmark(name):
    text = NESTED[name]
    assert fences.in_code(text.split("\n")) == commonmark_code_lines(text)


def test_random_documents_match_commonmark():
    # Top-level blocks only: inside list items CommonMark counts a fence's indentation from the item's content,
    # which fences.py deliberately does not track (its docstring says why).
    vocabulary = ["```", "````", "~~~", "~~~~", "```python", "~~~ md", "```  ", " ```", "   ~~~", "``` a`b",
                  "正文一段。", "| a | b |", "| --- | --- |", "", "# 标题", "`````", "~~~`~"]
    generator = random.Random(20261204)
    for _ in range(500):
        text = "\n".join(generator.choice(vocabulary) for _ in range(generator.randint(1, 14))).rstrip("\n")
        assert fences.in_code(text.split("\n")) == commonmark_code_lines(text), text


def test_a_long_answer_with_nested_fences_splits_into_parts_that_keep_the_code_whole():
    inner = "\n".join(f"```\nprint({n})  # 示例第 {n} 行\n```" for n in range(60))
    text = "开头的说明。\n\n~~~~markdown\n" + inner + "\n~~~~\n\n结尾的说明。"
    parts = split_message(text, 600, measure=len)
    assert len(parts) > 3
    code = [block for part in parts for block in code_of(part)]
    assert "".join(code) == code_of(text)[0]
    for part in parts:
        assert len(part) <= 600
        assert fences.after(part.split("\n")) is None  # every part closes what it opens
    assert parts[0].startswith("开头的说明") and parts[-1].rstrip().endswith("结尾的说明。")


def test_a_reopened_fence_keeps_its_character_length_and_info_string():
    text = "~~~~python\n" + "\n".join(f"x = {n}" for n in range(200)) + "\n~~~~"
    parts = split_message(text, 300, measure=len)
    assert all(part.startswith("~~~~python\n") for part in parts)
    assert all(part.rstrip().endswith("~~~~") for part in parts)


def test_a_table_inside_a_tilde_block_with_backtick_lines_is_left_as_code():
    rewritten = tables_as_lists(NESTED["table-in-code"])
    assert "| a | b |" in rewritten and "| 1 | 2 |" in rewritten
    assert "| c | d |" not in rewritten and "**c：3**" in rewritten
