"""The one stream of events a brain yields and the card and the webhook path consume.

Every brain (``brains/``) speaks in these: the answer's text as it is written, reasoning shown
apart from it, a status line while a tool or a workflow step runs (shown in the card, never kept),
a picture the brain made (posted after the answer, and the only kind of picture the answer may
show without ``ANSWER_IMAGE_HOSTS``), the sources it used and a note of its own (both shown under the
answer), and REPLACE, which puts its text in place of everything written so far (Dify's moderation
does that).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

TEXT, REASONING, STATUS, PICTURE, SOURCES, NOTE, REPLACE = (
    "text", "reasoning", "status", "picture", "sources", "note", "replace")


class Event(NamedTuple):
    """``kind`` is one of the names above; ``text`` its text ("" in a STATUS clears the status; a URL in a
    PICTURE; one source's name in SOURCES)."""

    kind: str
    text: str


def sources_line(sources: Iterable[str]) -> str:
    """The line under an answer that names what it rests on, the same for every brain and the knowledge folder."""
    return "来源：" + "；".join(sources)
