"""One DingTalk message in, exactly one answer out.

Order matters for "exactly once": the msgId is claimed before any model call, a turn is
recorded only after DingTalk accepted the answer, and when nothing reached the user the claim
(and any command's record) is given back, so a redelivery can answer and nothing the user was
never told takes effect.

The stages run in the order ``Replier.stages`` lists them: admit (allowed, not a command, within the
quota), the question, the first card, the knowledge, and the brain (``brains/``: the model and its
tools, or a Bailian or Dify application); the first stage that has an answer ends the list. Then the
answer is delivered and the message recorded. What one message needs while it is handled is in its
``Handling``, never on the ``Replier``.

The first card is delivered as soon as the question is known, before the knowledge search and the
brain: those are imported where they are first used, so on a cold instance the card already shows
while they load, and a slow embeddings call keeps nobody waiting in front of an empty chat. The model
SDK loads meanwhile on a thread of its own, while the first stages wait for the network
(``preload.py``, started by ``app.py``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from shared.common import log
from shared.common.errors import WebhookError
from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.admit import not_allowed, over_quota
from shared.reply.answer import Answer
from shared.reply.background import Pending, already, in_background
from shared.reply.commands import Commands, parse_command
from shared.reply.config import ReplyConfig
from shared.reply.conversation_settings import InForce, in_force
from shared.reply.delivery import Delivery
from shared.reply.dingtalk.cards import CardError, CardFactory, CardStream, card_factory
from shared.reply.dingtalk.webhook import Webhook
from shared.reply.oss.history import Conversation, conversation_key
from shared.reply.oss.signatures import DETACHED, REPLAYED
from shared.reply.oss.storage import Storage
from shared.reply.outcomes import Outcome
from shared.reply.question import DownloadError, MediaProblem, Question, QuestionBuilder
from shared.reply.record import record
from shared.reply.summary import Summary
from shared.reply.timezone import now_line

if TYPE_CHECKING:  # the brain stage loads after the first card (see above)
    from shared.reply.brains.base import Brain, Report

logger = log.get("reply")
ANSWERED_TYPES = ("text", "richText", "audio", "picture", "file")


class Undeliverable(Exception):
    """The message's session webhook cannot be used and no other way to the chat is open."""


class Handling:
    """One message while its stages run: what each stage found, for the stages after it."""

    __slots__ = ("message", "key", "address", "conversation", "config", "settings_key", "detached", "today",
                 "operator", "force", "brain", "question", "cards", "knowledge", "notes", "thought")

    def __init__(self, message: IncomingMessage, key: str, address: ChatAddress, conversation: Conversation,
                 config: ReplyConfig, settings_key: str) -> None:
        self.message = message
        self.key = key
        self.address = address
        self.conversation = conversation
        self.config = config  # the settings in force for this message (``conversation_settings.py``)
        self.settings_key = settings_key  # where the conversation's own settings are kept: the group's
        self.detached = False  # a second message under one signed request: none of the conversation's state
        self.today: Optional[Pending[Any]] = None  # today's usage records, read while the claim and the history are
        self.operator: Optional[Pending[Dict[str, Any]]] = None  # the operator's settings, read meanwhile too
        self.force: Optional[InForce] = None
        self.brain: Optional[Brain] = None
        self.question: Optional[Question] = None
        self.cards: Optional[CardStream] = None
        self.knowledge: Optional[str] = None
        self.notes = ""  # shown under the answer: a file that was cut, what could not be seen, the sources
        self.thought = False  # the brain was asked: its report belongs to this message


Stage = Callable[[Handling], Optional[Answer]]


class Replier:
    """The reply path, stage by stage, for one message at a time. ``brain``: by default each message's brain is
    made from the settings in force; ``cards``: none unless the app streams into cards."""

    def __init__(self, config: ReplyConfig, delivery: Delivery, brain: Optional[Brain] = None,
                 cards: Optional[CardFactory] = None) -> None:
        self.config = config
        self.delivery = delivery
        self.brain = brain
        self.cards: CardFactory = cards or card_factory(None, None)
        self.current: Optional[Handling] = None

    @property
    def storage(self) -> Storage:
        return self.delivery.storage

    @property
    def stages(self) -> List[Stage]:
        """admit → question → (first card) → knowledge → the brain: the first with an answer ends the list."""
        return [self._admit, self._command, self._quota, self._question, self._first_card, self._knowledge,
                self._think]

    def fail_open_card(self, reason: str) -> bool:
        """After an unexpected failure: a card still showing "thinking" is closed with ``reason``, so it does not
        spin for ever. True when the card now says so (and the chat needs no second message)."""
        cards = self.current.cards if self.current is not None else None
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
        key = conversation_key(message.conversationId, message.sender_key,
                               self.config.conversation.per_sender and message.is_group, message.robot)
        handling = self.current = Handling(message, key, ChatAddress.of(message), Conversation(key), self.config,
                                           conversation_key(message.conversationId, None, False, message.robot))
        outcome = Outcome.INTERNAL_ERROR
        try:
            outcome = self._process(handling)
            return outcome
        finally:
            summary.outcome = outcome
            summary.storage = self.storage.mode
            report = self._report(handling)
            if report is not None:
                summary.model, summary.usage, summary.tool_calls = report.model, report.usage, report.tool_calls
            summary.settings = handling.force.changed() if handling.force is not None else {}
            summary.shown(self.delivery.first_sent)
            if handling.cards is not None:
                summary.card_calls = handling.cards.calls
                summary.shown(handling.cards.first_shown)
            record(self.config.quotas, self.storage, handling.address, message.msgId, summary)

    def _process(self, handling: Handling) -> str:
        message, key, address = handling.message, handling.key, handling.address
        try:
            webhook = self._webhook(message)
        except Undeliverable as exc:
            logger.error("cannot answer: %s", exc)
            return Outcome.UNDELIVERABLE
        self.storage.warn_if_unavailable()
        if self.config.quotas.active:
            # Today's usage listing overlaps the claim and the history read; the quota stage waits for it.
            handling.today = in_background(self.storage.usage_today)
        # The operator's settings: as read within the last minute, or read meanwhile (no thread on a warm instance).
        known = self.storage.operator_settings_known(message.conversationId)
        handling.operator = already(known) if known is not None else \
            in_background(partial(self.storage.operator_settings, message.conversationId))
        signed = self.storage.signed_as(message)
        if signed == REPLAYED:
            logger.warning("refused a message whose signed request already carried another message (a replay)")
            return Outcome.REPLAYED
        handling.detached = signed == DETACHED
        if handling.detached:
            logger.warning("a second message under one signed request: answered without its conversation's state")
        claim = self.storage.claim(key, message.msgId, self.config.claim_ttl_ms)
        if claim is None:
            logger.info("already answered or being answered, skipped")
            return Outcome.DUPLICATE
        if not handling.detached:
            handling.conversation = self.storage.load(key, self.config.conversation.max_history_length)
            self._settle(handling)
        try:
            answer = self._answer(handling)
        except Exception:
            # Nothing reached the user (the edge tells them something went wrong): a redelivery may answer.
            self.storage.release(claim)
            raise
        parts, delivered = self.delivery.send(address, webhook, answer.posting, plain=answer.plain) \
            if answer.posting else (0, 0)
        if parts and delivered == 0:
            self.storage.undo(answer.records)
            self.storage.release(claim)
            return Outcome.DELIVERY_FAILED
        if delivered < parts:
            self.delivery.tell(address, webhook, texts.PARTIAL)
            self.storage.finish(claim, key)
            return Outcome.DELIVERY_FAILED
        if answer.outcome == Outcome.ANSWERED and not handling.detached:
            kept = f"{answer.text}\n\n{answer.note}" if answer.note else answer.text
            report = self._report(handling)
            session = report.session if report is not None else None
            # Kept up to the deployment's maximum, so a conversation that chooses more turns later finds them.
            self.storage.add_turn(key, message.msgId, message.createAt, answer.asked or message.question, kept,
                                  handling.conversation, self.config.conversation.max_history_length, session)
            self._remember_cards(handling)
        self.storage.finish(claim, key)
        logger.info("%s (%d chars; %d messages)", answer.outcome, len(answer.text), parts)
        return answer.outcome

    def _remember_cards(self, handling: Handling) -> None:
        """With buttons: what 重新回答 and 👍/👎 on the answer's cards will need (``oss/card_marks.py``)."""
        cards, marks = handling.cards, self.storage.cards
        if cards is None or not cards.settings.buttons or marks is None:
            return
        message, report = handling.message, self._report(handling)
        # The session webhook's token is not kept: a regeneration answers through the robot OpenAPI.
        asked = message._replace(sessionWebhook=message.sessionWebhook.split("?", 1)[0], sessionWebhookExpiredTime=1)
        answer = {"payload": asked.to_payload().decode("utf-8"), "conversation": message.conversationId,
                  "robot": message.robot, "model": report.model if report is not None else ""}
        try:
            for card in cards.cards:
                marks.remember(card.out_track_id, answer)
        except OSError as exc:
            logger.warning("the answer's buttons will not find it: %s", exc)

    def _settle(self, handling: Handling) -> None:
        """The settings this conversation is answered with (``conversation_settings.py``), and its turns cut to
        their length. The conversation's own settings came with its history; with per-sender history they are
        the group's, kept apart."""
        own = handling.conversation if handling.settings_key == handling.key else \
            self.storage.load(handling.settings_key, 0)
        operator = handling.operator.result() if handling.operator is not None else {}
        force = handling.force = in_force(self.config, operator, own.settings, handling.conversation.persona)
        handling.config = force.config
        length = force.config.conversation.history_length
        handling.conversation.turns = handling.conversation.turns[-length:] if length > 0 else []

    def _report(self, handling: Handling) -> Optional[Report]:
        """What the brain reported for this message; None when it was never asked."""
        return handling.brain.report if handling.thought and handling.brain is not None else None

    def _answer(self, handling: Handling) -> Answer:
        for stage in self.stages:
            answer = stage(handling)
            if answer is not None:
                return answer
        raise AssertionError("the brain stage always answers")

    def _admit(self, handling: Handling) -> Optional[Answer]:
        message = handling.message
        refusal = not_allowed(self.config.access, handling.address)
        if refusal:
            return Answer(refusal, Outcome.REFUSED)
        if message.msgtype not in ANSWERED_TYPES:
            kind = texts.KIND_NAMES.get(message.msgtype, message.msgtype)
            return Answer(texts.VIDEO if message.msgtype == "video" else texts.UNSUPPORTED.format(kind=kind),
                          Outcome.UNSUPPORTED)
        if not message.question and not message.media:
            return Answer(texts.AUDIO_UNHEARD if message.msgtype == "audio" else texts.EMPTY_QUESTION, Outcome.EMPTY)
        return None

    def _command(self, handling: Handling) -> Optional[Answer]:
        message = handling.message
        command = None if message.media else parse_command(message.question)
        if command is None:
            return None
        if handling.detached:
            return Answer(texts.DETACHED_COMMAND, Outcome.REFUSED)
        done = Commands(self.config, self.storage, handling.force).run(command, handling.key, message,
                                                                       handling.conversation, handling.settings_key)
        return Answer(done.text, done.outcome, records=done.records, plain=done.plain)

    def _quota(self, handling: Handling) -> Optional[Answer]:
        quotas = handling.config.quotas
        if not quotas.active:
            return None
        today = handling.today.result() if handling.today is not None else self.storage.usage_today()
        refusal = over_quota(quotas, handling.address, today, self._resets())
        return Answer(refusal, Outcome.QUOTA) if refusal else None

    def _media_problem(self) -> Optional[MediaProblem]:
        """Why no picture or file can be fetched now, or None."""
        if self.delivery.api is None:
            return MediaProblem(texts.NEEDS_APP, "a picture or file arrived and DINGTALK_APP_KEY is not set",
                                outcome=Outcome.NEEDS_APP)
        if not self.delivery.openapi_usable():
            return MediaProblem(texts.MEDIA_QUOTA, "DingTalk's monthly API quota is spent")
        return None

    def _question(self, handling: Handling) -> Optional[Answer]:
        try:
            handling.question = self._build_question(handling.message)
        except (MediaProblem, DownloadError) as exc:
            logger.warning("could not use what was sent: %s", exc)
            if isinstance(exc, DownloadError) and exc.quota_spent:
                self.delivery.note_quota_spent(exc.code)
            return Answer(exc.user_message, getattr(exc, "outcome", Outcome.MEDIA_ERROR))
        handling.notes = "\n".join(handling.question.notes)
        return None

    def _build_question(self, message: IncomingMessage) -> Question:
        """Raises ``MediaProblem`` or ``DownloadError`` with the sentence the chat gets. Text that came with
        pictures or files that cannot be fetched is still answered, with a sentence saying what was not seen."""
        fetch, unseen = None, None
        if message.media:
            problem = self._media_problem()
            if problem is None:
                from shared.reply.dingtalk.files import Downloader

                media = self.config.media
                fetch = Downloader(self.delivery.api, message, media.max_file_bytes,
                                   media.max_message_media_bytes).fetch
            elif not message.question:
                raise problem
            else:
                logger.warning("%s: answering the text only", problem)
                unseen = texts.UNSEEN_NEEDS_APP if problem.outcome == Outcome.NEEDS_APP else texts.UNSEEN_QUOTA
        try:
            return QuestionBuilder(fetch, self.config.media.file_text_chars, unseen).build(message)
        except DownloadError as exc:
            if not (exc.quota_spent and message.question):
                raise
            self.delivery.note_quota_spent(exc.code)
            return QuestionBuilder(None, self.config.media.file_text_chars, texts.UNSEEN_QUOTA).build(message)

    def _first_card(self, handling: Handling) -> None:
        """The card the answer will stream into, already showing; none when the answer goes as messages."""
        cards = self.cards(handling.address) if self.delivery.openapi_usable() else None
        if cards is None:
            return None
        handling.cards = cards
        if cards.settings.buttons and self.storage.cards is not None:
            cards.stop_requested = self.storage.cards.stop_requested
        try:
            cards.start()
        except CardError as exc:
            self._card_error(exc)
            logger.warning("card streaming unavailable, answering through the session webhook: %s", exc)
            handling.cards = None
        return None

    def _brain(self, handling: Handling) -> Brain:
        if handling.brain is None:
            from shared.reply.brains.registry import brain_for

            handling.brain = self.brain or brain_for(handling.config, self.storage)
        return handling.brain

    def _knowledge(self, handling: Handling) -> None:
        """What the team's documents say about the question, in the prompt as data, for a brain that reads
        them; their names go under the answer."""
        if not self._brain(handling).reads_knowledge:
            return None
        from shared.reply.knowledge import retrieve as knowledge

        found = knowledge.find(handling.config.knowledge, handling.message.question)
        if found:
            handling.knowledge = found.for_prompt()
            handling.notes = "\n".join(filter(None, (handling.notes, found.sources())))
        return None

    def _think(self, handling: Handling) -> Answer:
        """The brain's answer (``thinking.py``), into the card or as the whole answer."""
        from shared.reply.brains.base import Ask
        from shared.reply.provenance import Provenance
        from shared.reply.thinking import think

        question = handling.question
        assert question is not None
        persona = handling.force.persona if handling.force is not None else self.config.conversation.persona
        ask = Ask(question, handling.conversation, handling.address, self._now(), Provenance(), persona,
                  handling.knowledge, handling.message.createAt)
        return think(self._brain(handling), ask, handling.config.delivery, cards=handling.cards, notes=handling.notes,
                     on_card_error=self._card_error, started=lambda: setattr(handling, "thought", True))

    def _now(self) -> str:
        return now_line(self.storage.calendar.zone, self.config.timezone)

    def _resets(self) -> str:
        return f"{self.storage.calendar.next_midnight():%m 月 %d 日 %H:%M}（{self.config.timezone}）"

    def _card_error(self, exc: CardError) -> None:
        if exc.quota_spent:
            self.delivery.note_quota_spent(exc.code)
