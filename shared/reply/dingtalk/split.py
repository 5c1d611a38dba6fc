"""Split a long answer into ordered parts that each fit one DingTalk message or card, losing nothing.

DingTalk refuses robot messages of roughly 15,000+ bytes (errcode 460101 is reported near
20,000), so message parts are measured in UTF-8 bytes; a card is limited in characters (about
3,000 before it renders blank), so card parts are measured with ``len``. Cuts fall on paragraph,
then line, then sentence boundaries; a cut inside a fenced code block closes the fence (with
its own character and length, ``fences.py``) and reopens it with its info string in the next
part, so both halves still render as code. A part never changes once the
text after it is longer than the limit, so a growing answer can be split as it streams.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from shared.reply.dingtalk import fences
from shared.reply.dingtalk.fences import Fence

_SEPARATORS = ("\n\n", "\n", "。", ". ", "！", "？", "；", " ")


Measure = Callable[[str], int]


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def _hard_cut(text: str, limit: int, measure: Measure) -> int:
    """The largest character index whose prefix fits ``limit`` (never splits a character)."""
    if measure is len:
        return min(len(text), max(limit, 0))
    encoded = text.encode("utf-8")[:limit]
    return len(encoded.decode("utf-8", "ignore"))


def _cut_point(text: str, limit: int, measure: Measure) -> int:
    window = text[:_hard_cut(text, limit, measure)]
    for separator in _SEPARATORS:
        index = window.rfind(separator)
        if index > len(window) // 3:
            return index + len(separator)
    return len(window)


def split_message(text: str, limit: int, measure: Measure = utf8_size) -> List[str]:
    """Parts in order, each at most ``limit`` by ``measure`` (UTF-8 bytes unless told otherwise);
    joined, less the fences added around cuts, they give back the text."""
    if measure(text) <= limit:
        return [text]
    reserve = 40 if measure is utf8_size else 8
    parts: List[str] = []
    fence: Optional[Fence] = None
    rest = text
    while rest:
        prefix = f"{fence.opening}\n" if fence else ""
        budget = limit - measure(prefix) - reserve
        if measure(rest) <= limit - measure(prefix):
            parts.append(prefix + rest)
            break
        cut = max(1, _cut_point(rest, budget, measure))
        chunk, rest = rest[:cut], rest[cut:]
        fence_after = fences.after(chunk.splitlines(), fence)
        closing = f"\n{fence_after.closing}" if fence_after else ""
        parts.append(prefix + chunk.rstrip("\n") + closing if closing else prefix + chunk)
        fence = fence_after
    return parts
