"""The brain stage's core, for a question someone asked and for a scheduled prompt alike: the brain asked once,
what it says guarded against what it read (``provenance.py``, ``safe_markdown.py``), into the cards or as the
whole answer, with the pictures it made after it."""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional

from shared.reply.answer import Answer
from shared.reply.brains.base import Ask, Brain
from shared.reply.config.dingtalk import DeliverySettings
from shared.reply.dingtalk.cards import CardError, CardStream
from shared.reply.events import PICTURE, Event
from shared.reply.outcomes import Outcome
from shared.reply.provenance import of_texts


def _ignore(_: CardError) -> None:
    return None


def think(brain: Brain, ask: Ask, display: DeliverySettings, *, cards: Optional[CardStream] = None, notes: str = "",
          on_card_error: Callable[[CardError], None] = _ignore, started: Callable[[], None] = lambda: None) -> Answer:
    """The brain's events consumed once; ``started`` is called as the brain is first asked."""
    from shared.reply.dingtalk.safe_markdown import AnswerGuard
    from shared.reply.streaming import answer_from_events, stream_into_cards

    # What the answer may let out is judged against what the bot read: first, the prompt.
    ask = ask._replace(provenance=of_texts(ask.prompt().texts()))
    pictures: List[str] = []
    guard = AnswerGuard(ask.provenance, lambda: pictures, display.answer_image_hosts)

    def events() -> Iterator[Event]:
        started()
        for event in brain.run(ask, streamed=cards is not None):
            if event.kind == PICTURE:
                pictures.append(event.text)
            yield event

    if cards is not None:
        answer = stream_into_cards(cards, events(), display.show_reasoning, on_card_error, notes, guard)
    else:
        answer = answer_from_events(events(), display.show_reasoning, notes, guard)
    if answer.outcome != Outcome.ANSWERED:
        return answer
    answer = answer._replace(asked=ask.question.for_history, note=brain.report.note)
    if pictures:
        shown = "\n\n".join(f"![图片]({url})" for url in pictures)
        # After the cards, the pictures follow as a message of their own.
        answer = answer._replace(to_post=f"{answer.posting}\n\n{shown}" if answer.posting else shown,
                                 note=(answer.note + " [图片]").strip())
    return answer
