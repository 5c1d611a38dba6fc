"""One DingTalk message in, exactly one answer out.

Order matters for "exactly once": the msgId is claimed before any model call, a turn is
recorded only after DingTalk accepted the answer, and when nothing reached the user the claim
(and any command's record) is given back, so a redelivery can answer and nothing the user was
never told takes effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional

from shared.common import log
from shared.common.errors import LLMError, WebhookError
from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.commands import Commands, parse_command
from shared.reply.config import ReplyConfig
from shared.reply.dingtalk.cards import AICard, CardError, CardFactory, card_factory
from shared.reply.dingtalk.outgoing import dingtalk_messages
from shared.reply.dingtalk.webhook import Webhook, WebhookSender
from shared.reply.llm.model import ChatModel
from shared.reply.llm.prompt import build_prompt
from shared.reply.oss.history import Conversation, conversation_key
from shared.reply.oss.storage import Storage

logger = log.get("reply")
TEXT_TYPES = ("text", "richText", "audio")


class Answer(NamedTuple):
    """What to say, what happened, whether a streamed card already showed it, and the record a
    command wrote (taken back if the answer reaches nobody)."""

    text: str
    outcome: str
    in_card: bool = False
    record: Optional[str] = None


@dataclass
class Replier:
    config: ReplyConfig
    storage: Storage
    model: ChatModel
    sender: WebhookSender
    cards: CardFactory = field(default_factory=lambda: card_factory(None, None))

    def process(self, message: IncomingMessage) -> str:
        """Answer one message; return what happened (for logs, tests and the local stack)."""
        key = conversation_key(message.conversationId, message.sender_key,
                               self.config.history_per_sender and message.is_group)
        try:
            webhook = self.sender.check(message.sessionWebhook, message.sessionWebhookExpiredTime)
        except WebhookError as exc:
            logger.error("cannot answer: %s", exc)
            return "undeliverable"
        self.storage.warn_if_unavailable()
        claim = self.storage.claim(key, message.msgId, self.config.claim_ttl_ms)
        if claim is None:
            logger.info("already answered or being answered, skipped")
            return "duplicate"
        conversation = self.storage.load(key, self.config.history_length)
        answer = self._answer(message, key, conversation)
        parts, delivered = (1, 1) if answer.in_card else self.deliver(message, webhook, answer.text)
        if delivered == 0:
            self.storage.undo(answer.record)
            self.storage.release(claim)
            return "delivery-failed"
        if delivered < parts:
            self._tell_rest_is_missing(webhook)
            self.storage.finish(claim, key)
            return "delivery-failed"
        if answer.outcome == "answered":
            self.storage.add_turn(key, message, message.question, answer.text, conversation,
                                  self.config.history_length)
        self.storage.finish(claim, key)
        logger.info("%s (%d chars in %d messages)", answer.outcome, len(answer.text), parts)
        return answer.outcome

    def _refusal(self, message: IncomingMessage) -> Optional[str]:
        """``ALLOWED_CONVERSATIONS`` / ``ALLOWED_USERS``: unset lets everyone in."""
        config = self.config
        if config.allowed_conversations and message.conversationId not in config.allowed_conversations:
            logger.warning("refused conversation %s: not in ALLOWED_CONVERSATIONS", message.conversationId)
            return texts.NOT_ALLOWED.format(scope="会话")
        senders = {message.senderStaffId, message.senderId} - {""}
        if config.allowed_users and not senders & set(config.allowed_users):
            logger.warning("refused sender %s: not in ALLOWED_USERS", message.sender_key)
            return texts.NOT_ALLOWED.format(scope="用户")
        return None

    def _answer(self, message: IncomingMessage, key: str, conversation: Conversation) -> Answer:
        refusal = self._refusal(message)
        if refusal:
            return Answer(refusal, "refused")
        if message.msgtype not in TEXT_TYPES:
            kind = texts.KIND_NAMES.get(message.msgtype, message.msgtype)
            return Answer(texts.UNSUPPORTED.format(kind=kind), "unsupported")
        if not message.question:
            return Answer(texts.AUDIO_UNHEARD if message.msgtype == "audio" else texts.EMPTY_QUESTION, "empty")
        command = parse_command(message.question)
        if command is not None:
            done = Commands(self.config, self.storage).run(command, key, message, conversation)
            return Answer(done.text, done.outcome, record=done.record)
        prompt = build_prompt(message.question, conversation.messages(self.config.history_length),
                              conversation.persona or self.config.system_prompt)
        card = self.cards(message)
        if card is not None:
            streamed = self._stream_into(card, prompt)
            if streamed is not None:
                return streamed
        try:
            return Answer(self.model.answer(prompt), "answered")
        except LLMError as exc:
            return Answer(exc.user_message, "llm-error")

    def _stream_into(self, card: AICard, prompt: List[Dict[str, str]]) -> Optional[Answer]:
        """Stream the answer into a card. None: the card could not be created, answer the usual way.
        A card that fails later stops being updated and the answer goes through the webhook."""
        try:
            card.start()
        except CardError as exc:
            logger.warning("card streaming unavailable, answering through the session webhook: %s", exc)
            return None
        text, showing = "", True
        try:
            for delta in self.model.stream(prompt):
                text += delta
                showing = showing and self._show(card.push, text)
        except LLMError as exc:
            shown = f"{text}\n\n{exc.user_message}" if text else exc.user_message
            return Answer(exc.user_message, "llm-error", showing and self._show(card.fail, shown))
        text = text.strip()
        if showing and self._show(card.finish, text):
            logger.info("streamed into card %s in %d updates", card.out_track_id, card.updates)
            return Answer(text, "answered", in_card=True)
        return Answer(text, "answered")

    @staticmethod
    def _show(step: Callable[[str], None], text: str) -> bool:
        try:
            step(text)
        except CardError as exc:
            logger.warning("card update failed, the answer follows through the session webhook: %s", exc)
            return False
        return True

    def deliver(self, message: IncomingMessage, webhook: Webhook, answer: str) -> tuple[int, int]:
        """Post every part in order, each retried on its own, so an accepted part is never sent again;
        stop at the first part DingTalk finally refuses. Return (parts, parts delivered)."""
        mention = message.senderStaffId if message.is_group and message.senderStaffId else None
        bodies = dingtalk_messages(answer, mention=mention, max_bytes=self.config.max_message_bytes)
        for index, body in enumerate(bodies):
            try:
                self.sender.send(webhook, body)
            except WebhookError as exc:
                logger.error("DingTalk refused part %d of %d: %s", index + 1, len(bodies), exc)
                return len(bodies), index
        return len(bodies), len(bodies)

    def _tell_rest_is_missing(self, webhook: Webhook) -> None:
        """Part of a long answer arrived and the rest cannot: say so, if DingTalk still lets us."""
        try:
            self.sender.send(webhook, {"msgtype": "text", "text": {"content": texts.PARTIAL}})
        except WebhookError as exc:
            logger.error("could not tell the user that the answer is incomplete: %s", exc)
