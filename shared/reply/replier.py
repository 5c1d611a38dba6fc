"""One DingTalk message in, exactly one answer out.

Order matters for "exactly once": the msgId is claimed before any model call, a turn is
recorded only after DingTalk accepted the answer, and when nothing reached the user the claim
(and any command's record) is given back, so a redelivery can answer and nothing the user was
never told takes effect.

The first card is delivered as soon as the question is known, before the knowledge search and the
model stage: those (and the model SDK) are imported where they are first used, so on a cold
instance the card already shows while they load, and a slow embeddings call keeps nobody waiting
in front of an empty chat.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional, Tuple

from shared.common import log
from shared.common.errors import LLMError, WebhookError
from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.admit import not_allowed, over_quota
from shared.reply.answer import Answer
from shared.reply.background import in_background
from shared.reply.commands import Commands, parse_command
from shared.reply.config import ReplyConfig
from shared.reply.delivery import Delivery
from shared.reply.dingtalk.cards import CardError, CardFactory, CardStream, card_factory
from shared.reply.dingtalk.files import Downloader, DownloadError
from shared.reply.dingtalk.webhook import Webhook
from shared.reply.oss.history import Conversation, conversation_key
from shared.reply.oss.signatures import DETACHED, REPLAYED
from shared.reply.oss.storage import Storage
from shared.reply.question import MediaProblem, Question, QuestionBuilder
from shared.reply.record import record
from shared.reply.summary import Summary

if TYPE_CHECKING:  # imported at run time by the stages after the first card (module docstring)
    from shared.reply.llm.loop import Event, ModelLoop
    from shared.reply.llm.model import ChatModel
    from shared.reply.llm.prompt import Prompt

logger = log.get("reply")
ANSWERED_TYPES = ("text", "richText", "audio", "picture", "file")


class Undeliverable(Exception):
    """The message's session webhook cannot be used and no other way to the chat is open."""


@dataclass
class Replier:
    """The reply path, stage by stage, for one message at a time."""

    config: ReplyConfig
    delivery: Delivery
    model: Optional[ChatModel] = None  # made from ``config`` when the model stage first needs it
    cards: CardFactory = field(default_factory=lambda: card_factory(None, None))
    cards_used: Optional[CardStream] = field(default=None, init=False)
    loop: Optional[ModelLoop] = field(default=None, init=False)
    today: Optional[Future] = field(default=None, init=False)

    @property
    def storage(self) -> Storage:
        return self.delivery.storage

    def fail_open_card(self, reason: str) -> bool:
        """After an unexpected failure: a card still showing "thinking" is closed with ``reason``, so it does not
        spin for ever. True when the card now says so (and the chat needs no second message)."""
        cards = self.cards_used
        if cards is None or not cards.cards or cards.closed:
            return False
        try:
            cards.fail("", reason)
        except CardError as exc:
            logger.warning("could not close the card after a failure: %s", exc)
            return False
        return True

    def _webhook(self, message: IncomingMessage) -> Optional[Webhook]:
        """The checked session webhook; None when it has expired but the robot OpenAPI can answer."""
        try:
            return self.delivery.sender.check(message.sessionWebhook, message.sessionWebhookExpiredTime)
        except WebhookError as exc:
            if exc.gone and self.delivery.openapi_usable():
                logger.warning("%s; answering through the robot OpenAPI", exc)
                return None
            raise Undeliverable(str(exc)) from None

    def process(self, message: IncomingMessage) -> str:
        """Answer one message; return what happened (for logs, tests and the local stack). Whatever happens,
        one summary line (``summary.py``) says so."""
        summary = Summary(message.msgId, message.conversationId)
        outcome = "internal-error"
        try:
            outcome = self._process(message)
            return outcome
        finally:
            summary.outcome = outcome
            summary.storage = self.storage.mode
            if self.model is not None:
                summary.model, summary.usage = self.model.used_model, self.model.usage
            summary.shown(self.delivery.first_sent)
            if self.cards_used is not None:
                summary.card_calls = self.cards_used.calls
                summary.shown(self.cards_used.first_shown)
            if self.loop is not None:
                summary.tool_calls = self.loop.calls
            record(self.config, self.storage, message, summary)

    def _process(self, message: IncomingMessage) -> str:
        key = conversation_key(message.conversationId, message.sender_key,
                               self.config.history_per_sender and message.is_group)
        try:
            webhook = self._webhook(message)
        except Undeliverable as exc:
            logger.error("cannot answer: %s", exc)
            return "undeliverable"
        self.storage.warn_if_unavailable()
        if self.config.quotas.active:
            # Today's usage listing overlaps the claim and the history read; admit waits for it.
            self.today = in_background(self.storage.usage_today)
        signed = self.storage.signed_as(message)
        if signed == REPLAYED:
            logger.warning("refused a message whose signed request already carried another message (a replay)")
            return "replayed"
        detached = signed == DETACHED
        if detached:
            logger.warning("a second message under one signed request: answered without its conversation's state")
        claim = self.storage.claim(key, message.msgId, self.config.claim_ttl_ms)
        if claim is None:
            logger.info("already answered or being answered, skipped")
            return "duplicate"
        conversation = Conversation(key) if detached else self.storage.load(key, self.config.history_length)
        try:
            answer = self._answer(message, key, conversation, detached)
        except Exception:
            # Nothing reached the user (the edge tells them something went wrong): a redelivery may answer.
            self.storage.release(claim)
            raise
        parts, delivered = self.delivery.send(message, webhook, answer.posting, plain=answer.plain) \
            if answer.posting else (0, 0)
        if parts and delivered == 0:
            self.storage.undo(answer.record)
            self.storage.release(claim)
            return "delivery-failed"
        if delivered < parts:
            self.delivery.tell(message, webhook, texts.PARTIAL)
            self.storage.finish(claim, key)
            return "delivery-failed"
        if answer.outcome == "answered" and not detached:
            kept = f"{answer.text}\n\n{answer.note}" if answer.note else answer.text
            self.storage.add_turn(key, message, answer.asked or message.question, kept, conversation,
                                  self.config.history_length)
        self.storage.finish(claim, key)
        logger.info("%s (%d chars; %d messages)", answer.outcome, len(answer.text), parts)
        return answer.outcome

    def _media_problem(self) -> Optional[MediaProblem]:
        """Why no picture or file can be fetched now, or None."""
        if self.delivery.api is None:
            return MediaProblem(texts.NEEDS_APP, "a picture or file arrived and DINGTALK_APP_KEY is not set",
                                outcome="needs-app")
        if not self.delivery.openapi_usable():
            return MediaProblem(texts.MEDIA_QUOTA, "DingTalk's monthly API quota is spent")
        return None

    def _question(self, message: IncomingMessage) -> Question:
        """Raises ``MediaProblem`` or ``DownloadError`` with the sentence the chat gets. Text that came with
        pictures or files that cannot be fetched is still answered, with a sentence saying what was not seen."""
        fetch, unseen = None, None
        if message.media:
            problem = self._media_problem()
            if problem is None:
                fetch = Downloader(self.delivery.api, message, self.config.max_file_bytes,
                                   self.config.max_message_media_bytes).fetch
            elif not message.question:
                raise problem
            else:
                logger.warning("%s: answering the text only", problem)
                unseen = texts.UNSEEN_NEEDS_APP if problem.outcome == "needs-app" else texts.UNSEEN_QUOTA
        try:
            return QuestionBuilder(fetch, self.config.file_text_chars, unseen).build(message)
        except DownloadError as exc:
            if not (exc.quota_spent and message.question):
                raise
            self.delivery.note_quota_spent(exc.code)
            return QuestionBuilder(None, self.config.file_text_chars, texts.UNSEEN_QUOTA).build(message)

    def _answer(self, message: IncomingMessage, key: str, conversation: Conversation, detached: bool) -> Answer:
        refusal = not_allowed(self.config, message)
        if refusal:
            return Answer(refusal, "refused")
        if message.msgtype not in ANSWERED_TYPES:
            kind = texts.KIND_NAMES.get(message.msgtype, message.msgtype)
            return Answer(texts.VIDEO if message.msgtype == "video" else texts.UNSUPPORTED.format(kind=kind),
                          "unsupported")
        if not message.question and not message.media:
            return Answer(texts.AUDIO_UNHEARD if message.msgtype == "audio" else texts.EMPTY_QUESTION, "empty")
        command = None if message.media else parse_command(message.question)
        if command is not None and detached:
            return Answer(texts.DETACHED_COMMAND, "refused")
        if command is not None:
            done = Commands(self.config, self.storage).run(command, key, message, conversation)
            return Answer(done.text, done.outcome, record=done.record, plain=done.plain)
        if self.config.quotas.active:
            today = self.today.result() if self.today is not None else self.storage.usage_today()
            refusal = over_quota(self.config, message, today, self._resets())
            if refusal:
                return Answer(refusal, "quota")
        try:
            question = self._question(message)
        except (MediaProblem, DownloadError) as exc:
            logger.warning("could not use what was sent: %s", exc)
            if isinstance(exc, DownloadError) and exc.quota_spent:
                self.delivery.note_quota_spent(exc.code)
            return Answer(exc.user_message, getattr(exc, "outcome", "media-error"))
        cards = self._first_card(message)
        prompt, notes = self._with_knowledge(message, question, conversation)
        return self._model_answer(cards, prompt, notes)._replace(asked=question.for_history)

    def _first_card(self, message: IncomingMessage) -> Optional[CardStream]:
        """The card the answer will stream into, already showing; None when the answer goes as messages."""
        cards = self.cards(message) if self.delivery.openapi_usable() else None
        self.cards_used = cards
        if cards is None:
            return None
        try:
            cards.start()
        except CardError as exc:
            self._card_error(exc)
            logger.warning("card streaming unavailable, answering through the session webhook: %s", exc)
            return None
        return cards

    def _with_knowledge(self, message: IncomingMessage, question: Question,
                        conversation: Conversation) -> Tuple[Prompt, str]:
        """Stage three: what the team's documents say about the question, in the prompt as data; and the
        lines shown under the answer (a file that was cut, what could not be seen, the sources)."""
        from shared.reply.knowledge import retrieve as knowledge
        from shared.reply.llm.prompt import build_prompt

        found = knowledge.find(self.config, message.question)
        prompt = build_prompt(question.content, conversation.messages(self.config.history_length),
                              conversation.persona or self.config.system_prompt,
                              found.for_prompt() if found else None, self._now())
        return prompt, "\n".join(question.notes + ([found.sources()] if found else []))

    def _model_answer(self, cards: Optional[CardStream], prompt: Prompt, notes: str) -> Answer:
        """Stage four, into the card or as the whole answer: the model loop's events, consumed once."""
        from shared.reply.dingtalk.safe_markdown import AnswerGuard
        from shared.reply.llm.loop import ModelLoop
        from shared.reply.llm.model import ChatModel
        from shared.reply.provenance import of_texts
        from shared.reply.streaming import answer_from_events, displayed, model_events, stream_into_cards
        from shared.reply.tools.draw import DrawImage
        from shared.reply.tools.registry import tools_for

        model = self.model = self.model or ChatModel(self.config)
        tools = tools_for(self.config, self.storage.image_upload())
        # What the answer and the tools may let out is judged against what the bot read (provenance.py).
        provenance = of_texts(prompt.texts())
        drawers = [tool for tool in tools if isinstance(tool, DrawImage)]
        guard = AnswerGuard(provenance, lambda: [url for tool in drawers for url in tool.images],
                            self.config.answer_image_hosts)
        self.loop = ModelLoop(model, tools, self.config.max_tool_rounds, self.config.timeout_seconds,
                              provenance) if tools else None
        loop = self.loop

        def events() -> Iterator[Event]:
            return loop.run(prompt) if loop else model_events(model, prompt)

        if cards is not None:
            answer = stream_into_cards(cards, events(), self.config.show_reasoning, self._card_error, notes, guard)
        elif loop is not None:
            answer = answer_from_events(events(), self.config.show_reasoning, notes, guard)
        else:
            try:
                split = model.answer(prompt)
            except LLMError as exc:
                return Answer(exc.user_message, "llm-error")
            answer = Answer(guard(split.answer), "answered",
                            displayed(split.answer, split.reasoning, self.config.show_reasoning, notes, guard))
        if loop is not None and loop.sources and answer.outcome == "answered":
            answer = answer._replace(note="（参考：" + "、".join(loop.sources[:5]) + "）")
        drawn = [url for tool in drawers for url in tool.images]
        if drawn and answer.outcome == "answered":
            pictures = "\n\n".join(f"![图片]({url})" for url in drawn)
            # After the cards, the pictures follow as a message of their own.
            answer = answer._replace(to_post=f"{answer.posting}\n\n{pictures}" if answer.posting else pictures,
                                     note=(answer.note + " [图片]").strip())
        return answer

    def _now(self) -> str:
        """The date and time where the team is, so "今天"/"明天" need no tool."""
        now = dt.datetime.now(self.storage.calendar.zone)
        return f"当前时间：{now:%Y-%m-%d %H:%M} 星期{'一二三四五六日'[now.weekday()]}（{self.config.timezone}）"

    def _resets(self) -> str:
        return f"{self.storage.calendar.next_midnight():%m 月 %d 日 %H:%M}（{self.config.timezone}）"

    def _card_error(self, exc: CardError) -> None:
        if exc.quota_spent:
            self.delivery.note_quota_spent(exc.code)
