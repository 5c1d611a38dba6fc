"""The answer streamed into DingTalk AI cards as the model writes it.

Reasoning is split off at every update (``llm/reasoning.py``), so the card never shows it as the
answer (unless ``SHOW_REASONING=quote``) and history never keeps it. Every update passes the answer's
guard (``dingtalk/safe_markdown.py``) before anything is shown or kept, so no picture or link that
would carry the conversation away reaches DingTalk, not even for the moment of one card update.
Whatever the cards could not show (a card step failed, or the call budget ran out) is returned to be
posted as messages.
"""

from __future__ import annotations

from typing import Callable, Iterator, List

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.answer import Answer
from shared.reply.dingtalk.cards import STOPPED_NOTE, CardError, CardStream, Stopped
from shared.reply.events import NOTE, REASONING, REPLACE, SOURCES, STATUS, TEXT, Event, sources_line
from shared.reply.llm.reasoning import split_reasoning, with_reasoning
from shared.reply.outcomes import Outcome

logger = log.get("streaming")
Guard = Callable[[str], str]  # rewrites what the model wrote before DingTalk shows it


def _unguarded(text: str) -> str:
    return text


def displayed(answer: str, reasoning: str, show_reasoning: bool, notes: str = "", guard: Guard = _unguarded) -> str:
    """What the chat shows: the answer (after its quoted reasoning, if asked for), guarded, then the bot's notes."""
    shown = guard(with_reasoning(answer, reasoning) if show_reasoning else answer)
    return f"{shown}\n\n{notes}" if notes else shown


class Transcript:
    """The answer so far, from a brain's events: the one place reasoning is split from the answer. The
    sources a brain names are shown under the answer, after the notes; pictures are posted by the replier."""

    def __init__(self, show_reasoning: bool, guard: Guard = _unguarded) -> None:
        self.show_reasoning = show_reasoning
        self.guard = guard
        self.raw = ""
        self.reasoning = ""
        self.status = ""
        self.sources: List[str] = []
        self.notes: List[str] = []

    def add(self, event: Event) -> None:
        if event.kind == TEXT:
            self.raw += event.text
            self.status = ""
        elif event.kind == REASONING:
            self.reasoning += event.text
        elif event.kind == STATUS:
            self.status = event.text
        elif event.kind == REPLACE:
            self.raw = event.text
        elif event.kind == SOURCES and event.text not in self.sources:
            self.sources.append(event.text)
        elif event.kind == NOTE and event.text not in self.notes:
            self.notes.append(event.text)

    @property
    def answer(self) -> str:
        return self.guard(split_reasoning(self.raw).answer)

    def display(self, notes: str = "", *, with_status: bool = True) -> str:
        notes = "\n".join(filter(None, (notes, *self.notes, sources_line(self.sources) if self.sources else "")))
        split = split_reasoning(self.raw)
        shown = displayed(split.answer, split.reasoning or self.reasoning, self.show_reasoning, notes, self.guard)
        if with_status and self.status:
            return f"{shown}\n\n{self.status}" if shown.strip() else self.status
        return shown


def answer_from_events(events: Iterator[Event], show_reasoning: bool, notes: str = "",
                       guard: Guard = _unguarded) -> Answer:
    """The webhook path: the whole answer once the loop is done (status events are for cards only)."""
    transcript = Transcript(show_reasoning, guard)
    try:
        for event in events:
            transcript.add(event)
    except LLMError as exc:
        return Answer(exc.user_message, Outcome.LLM_ERROR)
    answer = transcript.answer.strip()
    if not answer:
        return Answer(texts.EMPTY_ANSWER, Outcome.LLM_ERROR)
    return Answer(answer, Outcome.ANSWERED, transcript.display(notes, with_status=False).strip())


def _stopped(cards: CardStream, events: Iterator[Event], transcript: Transcript,
             step: Callable[[Callable[[], object]], bool]) -> Answer:
    """停止 was pressed: the model's stream is closed (the brain's generator with it), the card keeps what it shows
    and says so, and history keeps the answer so far, marked as stopped."""
    close = getattr(events, "close", None)
    if close is not None:
        close()
    logger.info("stopped from the card after %d characters", len(transcript.answer))
    step(lambda: cards.stop(transcript.display(with_status=False)))
    so_far = transcript.answer.strip()
    return Answer(f"{so_far}\n\n（{STOPPED_NOTE}）" if so_far else f"（{STOPPED_NOTE}）", Outcome.ANSWERED, "")


def stream_into_cards(cards: CardStream, events: Iterator[Event], show_reasoning: bool,
                      on_card_error: Callable[[CardError], None], notes: str = "", guard: Guard = _unguarded) -> Answer:
    """The answer in ``cards``, whose first card is showing; ``events`` is started only once the first card exists."""
    showing = True

    def step(action: Callable[[], object]) -> bool:
        try:
            action()
        except CardError as exc:
            on_card_error(exc)
            logger.warning("a card step failed, the answer follows as messages: %s", exc)
            return False
        return True

    transcript = Transcript(show_reasoning, guard)
    try:
        for event in events:
            transcript.add(event)
            display = transcript.display()
            if showing and display.strip():
                showing = step(lambda display=display: cards.show(display))
    except LLMError as exc:
        reason = exc.user_message
        so_far = transcript.display(with_status=False).strip()
        failed_in_card = showing and step(lambda: cards.fail(so_far, reason))
        return Answer(reason, Outcome.LLM_ERROR, "" if failed_in_card else None)
    except Stopped:
        return _stopped(cards, events, transcript, step)
    answer = transcript.answer.strip()
    if not answer:
        failed_in_card = showing and step(lambda: cards.fail("", texts.EMPTY_ANSWER))
        return Answer(texts.EMPTY_ANSWER, Outcome.LLM_ERROR, "" if failed_in_card else None)
    display = transcript.display(notes, with_status=False)
    rest: list = []
    if showing and step(lambda: rest.append(cards.finish(display))):
        logger.info("streamed into %d card(s) with %d API calls", len(cards.cards), cards.calls)
        return Answer(answer, Outcome.ANSWERED, rest[0])
    return Answer(answer, Outcome.ANSWERED, display)
