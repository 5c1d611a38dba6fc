"""The seam between the reply path and whatever answers: a brain.

A brain is given one ``Ask`` (the question, the conversation as we keep it, the asker, the time)
and yields the events of ``events.py``, which the card and the webhook path consume the same way
whatever the brain. What the answer cost and what it leaves for next time is in its ``Report``,
complete once the events are consumed (also when they end with ``LLMError``): the summary line,
the usage record and the history read it from there and from nowhere else.

``reads_knowledge``: whether the knowledge folder's excerpts are searched for it. A Bailian or Dify
application has a knowledge base of its own, so for them the stage is skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, NamedTuple, Optional, Protocol

from shared.reply.address import ChatAddress
from shared.reply.oss.history import Conversation, Session
from shared.reply.provenance import Provenance
from shared.reply.question import Question

if TYPE_CHECKING:
    from shared.reply.events import Event
    from shared.reply.llm.model import Usage
    from shared.reply.llm.prompt import Prompt


class Ask(NamedTuple):
    """One question for a brain. ``persona`` is the conversation's ``\\system`` or ``SYSTEM_PROMPT``;
    ``knowledge`` the excerpts for the prompt (None when nothing was found or the brain reads none).
    ``provenance`` holds what the bot has read for this answer (``provenance.py``): the brain adds what
    its tools or its platform read, and the answer's guard judges pictures and links against it."""

    question: Question
    conversation: Conversation
    address: ChatAddress
    now: str
    provenance: Provenance
    persona: Optional[str] = None
    knowledge: Optional[str] = None
    at_ms: int = 0  # when the question was asked (DingTalk's createAt)

    def prompt(self) -> "Prompt":
        """The question with our history, persona, knowledge and clock, as a chat model is asked it."""
        from shared.reply.llm.prompt import build_prompt

        return build_prompt(self.question.content, self.conversation.messages(len(self.conversation.turns)),
                            self.persona, self.knowledge, self.now)


class Report:
    """What one answer cost and used. ``session`` is the platform's conversation to go on with next time
    (kept with the turn in history); ``note`` is kept in history after the answer (the tools' sources)."""

    __slots__ = ("model", "usage", "tool_calls", "session", "note")

    def __init__(self, model: str = "", usage: Optional["Usage"] = None, tool_calls: int = 0,
                 session: Optional[Session] = None, note: str = "") -> None:
        self.model = model
        self.usage = usage
        self.tool_calls = tool_calls
        self.session = session
        self.note = note


class Brain(Protocol):
    kind: str  # "chat", "bailian", "dify": the value of BRAIN
    reads_knowledge: bool
    report: Report

    def run(self, ask: Ask, *, streamed: bool) -> Iterator["Event"]:
        """The answer's events; raises ``LLMError`` with the sentence the chat gets. ``streamed`` is False when
        nobody watches the answer being written (no card), and a brain may then ask for it whole."""
        ...
