"""A reasoning model's thinking is not the answer: split it off, show it only if asked, never store it.

Some OpenAI-compatible providers stream the reasoning inline, before the answer, as
``<think>…</think>``; some drop the opening tag (the chat template already had it) and send only
``…</think>``; others send it apart, as ``reasoning_content`` deltas, which never reach the
answer here. The split is a pure function of the whole text so far, so a streamed card can show
the right thing at every update even when a tag arrives cut across two chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"
QUOTE_CHARS = 800
LEADING_OPEN = re.compile(r"\s*<think>", re.S)


@dataclass(frozen=True)
class Split:
    """The answer, and the reasoning the model wrote before it."""

    answer: str
    reasoning: str


def split_reasoning(raw: str) -> Split:
    opened = LEADING_OPEN.match(raw)
    if opened:
        body = raw[opened.end():]
        end = body.find(CLOSE)
        if end < 0:
            return Split("", body)  # still thinking
        return Split(body[end + len(CLOSE):].lstrip(), body[:end].strip())
    end = raw.find(CLOSE)
    if end >= 0 and OPEN not in raw[:end]:
        return Split(raw[end + len(CLOSE):].lstrip(), raw[:end].strip())
    stripped = raw.lstrip()
    if stripped and OPEN.startswith(stripped):
        return Split("", "")  # "<thi": wait for the rest of the tag
    return Split(raw, "")


def with_reasoning(answer: str, reasoning: str) -> str:
    """The answer after its reasoning, quoted and marked, shortened to its last ``QUOTE_CHARS`` characters."""
    reasoning = reasoning.strip()
    if not reasoning:
        return answer
    if len(reasoning) > QUOTE_CHARS:
        reasoning = "…" + reasoning[-QUOTE_CHARS:]
    quoted = "\n".join("> " + line if line.strip() else ">" for line in reasoning.splitlines())
    return f"> 💭 思考过程\n>\n{quoted}\n\n{answer}".rstrip()
