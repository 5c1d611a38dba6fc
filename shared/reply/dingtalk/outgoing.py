"""The DingTalk messages that carry one answer: text or markdown, split, the asker mentioned.

Markdown answers (code blocks, lists, headings, tables) go out as ``markdown`` so they render,
tables rewritten as lists since message markdown shows them on desktop only; plain answers go
as ``text``. DingTalk shows an @-mention in a markdown message only when the text itself
contains ``@userId``, so the first part carries it; ``text`` messages need only ``at``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from shared.reply.dingtalk.mobile import tables_as_lists
from shared.reply.dingtalk.split import split_message

MARKDOWN_HINTS = re.compile(
    r"(^|\n)\s*(```|~~~|#{1,6}\s|[-*+]\s+\S|\d+\.\s+\S|>\s|\|.*\|\s*$)|\*\*[^*\n]+\*\*|\[[^\]\n]+\]\([^)\s]+\)",
    re.M,
)
TITLE_CHARS = 20


def looks_like_markdown(text: str) -> bool:
    return bool(MARKDOWN_HINTS.search(text))


def _title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#>*-` ").strip()
        if line:
            return line[:TITLE_CHARS]
    return "回复"


def dingtalk_messages(answer: str, *, mention: Optional[str], max_bytes: int,
                      plain: bool = False) -> List[Dict[str, Any]]:
    """DingTalk message bodies, in order, each under ``max_bytes`` of UTF-8; ``plain`` (text that echoes
    what a user typed, where ``[登录](https://…)`` must not become the bot's link): text messages only."""
    markdown = not plain and looks_like_markdown(answer)
    if markdown:
        answer = tables_as_lists(answer)
    reserve = len(mention.encode("utf-8")) + 8 if mention else 0
    parts = split_message(answer, max_bytes - reserve)
    messages = []
    for index, part in enumerate(parts):
        at_this = bool(mention) and index == 0
        if markdown:
            text = f"@{mention}\n\n{part}" if at_this else part
            body: Dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": _title(part), "text": text}}
        else:
            body = {"msgtype": "text", "text": {"content": part}}
        if at_this:
            body["at"] = {"atUserIds": [mention], "isAtAll": False}
        messages.append(body)
    return messages
