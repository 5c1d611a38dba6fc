"""What the local tools print: the bot's DingTalk messages made readable, and one line for a request that
got no HTTP answer."""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping

import requests

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


def unreachable(url: str, exc: requests.RequestException) -> str:
    """One readable sentence (Chinese, for the person at the terminal) for a request that got no HTTP answer."""
    if isinstance(exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                        requests.exceptions.InvalidURL)):
        return f"{url!r} 不是 http(s) 地址：请写完整，例如 https://xxx.cn-hangzhou.fcapp.run"
    if isinstance(exc, requests.Timeout):
        return f"连不上 {url}：15 秒内没有应答"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"连不上 {url}：TLS 握手失败"
    return (f"连不上 {url}：没有程序在应答（地址写错了，或接收函数没有运行；本地请先在另一个终端运行 make run）")
