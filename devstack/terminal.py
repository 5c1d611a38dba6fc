"""How the bot's DingTalk messages look in a terminal: markdown made readable, mentions shown."""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping

BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def render_markdown(text: str) -> str:
    lines, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            lines.append("    │ " + line)
            continue
        line = BOLD.sub(r"\1", LINK.sub(r"\1 <\2>", line))
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        lines.append(f"【{heading.group(2)}】" if heading else line)
    return "\n".join(lines)


def render_message(message: Mapping[str, Any], names: Dict[str, str]) -> str:
    """One DingTalk message as the chat would show it, with ``@name`` for mentioned staff ids."""
    mentioned = (message.get("at") or {}).get("atUserIds") or []
    if message.get("msgtype") == "markdown":
        text = message["markdown"]["text"]
        for staff_id in mentioned:
            text = text.replace(f"@{staff_id}", f"@{names.get(staff_id, staff_id)}")
        return render_markdown(text)
    content = (message.get("text") or {}).get("content", "")
    prefix = " ".join(f"@{names.get(s, s)}" for s in mentioned)
    return f"{prefix} {content}" if prefix else content
