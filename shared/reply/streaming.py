"""The answer streamed into DingTalk AI cards as the model writes it.

Reasoning is split off at every update (``llm/reasoning.py``), so the card never shows it as the
answer (unless ``SHOW_REASONING=quote``) and history never keeps it. Whatever the cards could not
show (a card step failed, or the call budget ran out) is returned to be posted as messages.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.dingtalk.cards import CardError, CardStream
from shared.reply.llm.model import ChatModel
from shared.reply.llm.prompt import Prompt
from shared.reply.llm.reasoning import split_reasoning, with_reasoning

logger = log.get("streaming")


class Answer(NamedTuple):
    """What the model said (what history keeps), what happened, and what still has to be posted as
    messages (None: all of ``text``; "": nothing, the cards showed it). ``asked`` is the question as
    history keeps it, when it differs from the message's text (pictures, files, quotes)."""

    text: str
    outcome: str
    to_post: Optional[str] = None
    record: Optional[str] = None
    asked: Optional[str] = None
    plain: bool = False  # echoes the user's text: sent as text, never as markdown

    @property
    def posting(self) -> str:
        return self.text if self.to_post is None else self.to_post


def displayed(answer: str, reasoning: str, show_reasoning: bool, notes: str = "") -> str:
    """What the chat shows: the answer (after its quoted reasoning, if asked for), then any notes."""
    shown = with_reasoning(answer, reasoning) if show_reasoning else answer
    return f"{shown}\n\n{notes}" if notes else shown


def stream_into_cards(cards: CardStream, model: ChatModel, prompt: Prompt, show_reasoning: bool,
                      on_card_error: Callable[[CardError], None], notes: str = "") -> Optional[Answer]:
    """None when no card could be created (the caller answers the usual way)."""
    try:
        cards.start()
    except CardError as exc:
        on_card_error(exc)
        logger.warning("card streaming unavailable, answering through the session webhook: %s", exc)
        return None
    showing = True

    def step(action: Callable[[], object]) -> bool:
        try:
            action()
        except CardError as exc:
            on_card_error(exc)
            logger.warning("a card step failed, the answer follows as messages: %s", exc)
            return False
        return True

    raw, reasoning = "", ""
    try:
        for delta in model.stream(prompt):
            raw, reasoning = raw + delta.content, reasoning + delta.reasoning
            split = split_reasoning(raw)
            display = displayed(split.answer, split.reasoning or reasoning, show_reasoning)
            if showing and display.strip():
                showing = step(lambda display=display: cards.show(display))
    except LLMError as exc:
        reason, split = exc.user_message, split_reasoning(raw)
        so_far = displayed(split.answer, split.reasoning or reasoning, show_reasoning).strip()
        failed_in_card = showing and step(lambda: cards.fail(so_far, reason))
        return Answer(reason, "llm-error", "" if failed_in_card else None)
    split = split_reasoning(raw)
    answer = split.answer.strip()
    if not answer:
        failed_in_card = showing and step(lambda: cards.fail("", texts.EMPTY_ANSWER))
        return Answer(texts.EMPTY_ANSWER, "llm-error", "" if failed_in_card else None)
    display = displayed(answer, split.reasoning or reasoning, show_reasoning, notes)
    rest: list = []
    if showing and step(lambda: rest.append(cards.finish(display))):
        logger.info("streamed into %d card(s) with %d API calls", len(cards.cards), cards.calls)
        return Answer(answer, "answered", rest[0])
    return Answer(answer, "answered", display)
