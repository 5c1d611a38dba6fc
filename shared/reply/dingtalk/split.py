"""Split a long answer into ordered parts that each fit one DingTalk message, losing nothing.

DingTalk refuses robot messages of roughly 15,000+ bytes (errcode 460101 is reported near
20,000), so parts are measured in UTF-8 bytes. Cuts fall on paragraph, then line, then
sentence boundaries; a cut inside a fenced code block closes the fence and reopens it in the
next part so both halves still render as code.
"""

from __future__ import annotations

import re
from typing import List

FENCE = re.compile(r"^\s*(```+|~~~+)(.*)$")
_SEPARATORS = ("\n\n", "\n", "。", ". ", "！", "？", "；", " ")


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _hard_cut(text: str, limit: int) -> int:
    """The largest character index whose prefix fits ``limit`` bytes (never splits a character)."""
    encoded = text.encode("utf-8")[:limit]
    return len(encoded.decode("utf-8", "ignore"))


def _cut_point(text: str, limit: int) -> int:
    window = text[:_hard_cut(text, limit)]
    for separator in _SEPARATORS:
        index = window.rfind(separator)
        if index > len(window) // 3:
            return index + len(separator)
    return len(window)


def _open_fence(text: str, state: str | None) -> str | None:
    """The fence line still open at the end of ``text`` (given the one open at its start)."""
    for line in text.splitlines():
        match = FENCE.match(line)
        if match:
            state = None if state else match.group(1) + match.group(2).strip()
    return state


def split_message(text: str, limit: int) -> List[str]:
    """Parts in order, each at most ``limit`` UTF-8 bytes; joined they give back the text."""
    if _size(text) <= limit:
        return [text]
    reserve = 40
    parts: List[str] = []
    fence: str | None = None
    rest = text
    while rest:
        prefix = f"{fence}\n" if fence else ""
        budget = limit - _size(prefix) - reserve
        if _size(rest) <= limit - _size(prefix):
            parts.append(prefix + rest)
            break
        cut = max(1, _cut_point(rest, budget))
        chunk, rest = rest[:cut], rest[cut:]
        fence_after = _open_fence(chunk, fence)
        closing = "\n```" if fence_after else ""
        parts.append(prefix + chunk.rstrip("\n") + closing if closing else prefix + chunk)
        fence = fence_after
    return parts
