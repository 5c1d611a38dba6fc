"""The reply function's core: one DingTalk message in, exactly one answer out.

Order matters for "exactly once": a msgId already recorded as handled is skipped before any
model call, and a turn is recorded only after DingTalk accepted the answer, so a failed
delivery never leaves a turn the user did not see.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional

from shared.common import log
from shared.common.errors import ConfigError, LLMError, MalformedRequest, WebhookError
from shared.common.message import TEXT_TYPES, IncomingMessage
from shared.common.settings import EnvReader
from shared.reply import texts
from shared.reply.commands import Command, parse_command
from shared.reply.config import ReplyConfig, allowed_webhook_hosts, load_reply_config
from shared.reply.dingtalk.cards import AICard, CardError, CardFactory, card_factory
from shared.reply.dingtalk.outgoing import build_messages as build_dingtalk_messages
from shared.reply.dingtalk.webhook import WebhookSender
from shared.reply.llm.model import ChatModel, build_messages
from shared.reply.oss.history import Conversation, FileHistoryStore, HistoryStore, conversation_key

logger = log.get("reply")
RECORDED_BY_COMMAND = {"cleared", "persona-set", "persona-reset"}
PERSONA_MAX_CHARS = 2000


class Answer(NamedTuple):
    """What to say, what happened, and whether a streamed card already showed it."""

    text: str
    outcome: str
    in_card: bool = False


@dataclass
class Replier:
    config: ReplyConfig
    store: HistoryStore
    model: ChatModel
    sender: WebhookSender
    cards: CardFactory = card_factory(None)

    def process(self, message: IncomingMessage) -> str:
        """Answer one message; return what happened (for logs, tests and the local stack)."""
        key = conversation_key(message.conversationId, message.sender_key,
                               self.config.history_per_sender and message.is_group)
        try:
            self.sender.check(message.sessionWebhook, message.sessionWebhookExpiredTime)
        except WebhookError as exc:
            logger.error("cannot answer: %s", exc)
            return "undeliverable"
        conversation = self.store.claim(key, message.msgId, self.config.claim_ttl_ms)
        if conversation is None:
            logger.info("already answered or being answered, skipped")
            return "duplicate"
        answer, outcome, in_card = self._answer(message, key, conversation)
        parts, delivered = (1, 1) if in_card else self.deliver(message, answer)
        if delivered == 0:
            self.store.release(key, message.msgId)
            return "delivery-failed"
        if delivered < parts:
            self.store.record_handled(key, message.msgId)
            return "delivery-failed"
        if outcome == "answered":
            self.store.record_turn(key, message.msgId, message.question, answer, self.config.history_length)
        elif outcome not in RECORDED_BY_COMMAND:
            self.store.record_handled(key, message.msgId)
        logger.info("%s (%d chars in %d messages)", outcome, len(answer), parts)
        return outcome

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
            return Answer(*self._command(command, key, message, conversation))
        prompt = build_messages(message.question, conversation.messages(self.config.history_length),
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

    def _command(self, command: Command, key: str, message: IncomingMessage,
                 conversation: Conversation) -> tuple[str, str]:
        if command.name == "clear":
            self.store.clear(key, message.msgId)
            return texts.CLEARED, "cleared"
        if command.name == "help":
            return texts.HELP, "help"
        if command.name == "model":
            return texts.MODEL.format(model=self.config.model), "model"
        if command.name == "system":
            return self._persona(command.argument, key, message, conversation)
        return texts.UNKNOWN_COMMAND.format(command=command.name), "unknown-command"

    def _persona(self, argument: str, key: str, message: IncomingMessage,
                 conversation: Conversation) -> tuple[str, str]:
        """``\\system`` shows, ``\\system <text>`` sets, ``\\system reset`` clears the persona.
        In a group the persona speaks for everyone, so only an admin (``isAdmin``) may change it."""
        if not argument:
            if conversation.persona:
                return texts.PERSONA_SHOW.format(persona=conversation.persona), "persona-shown"
            if self.config.system_prompt:
                return texts.PERSONA_DEFAULT.format(persona=self.config.system_prompt), "persona-shown"
            return texts.PERSONA_NONE, "persona-shown"
        if message.is_group and not message.isAdmin:
            return texts.ADMIN_ONLY, "not-admin"
        if argument.lower() == "reset":
            self.store.set_persona(key, message.msgId, None)
            return texts.PERSONA_RESET, "persona-reset"
        if len(argument) > PERSONA_MAX_CHARS:
            return texts.PERSONA_TOO_LONG.format(limit=PERSONA_MAX_CHARS), "persona-too-long"
        self.store.set_persona(key, message.msgId, argument)
        return texts.PERSONA_SET.format(persona=argument), "persona-set"

    def deliver(self, message: IncomingMessage, answer: str) -> tuple[int, int]:
        """Post every part in order, each retried on its own, so an accepted part is never sent again;
        stop at the first part DingTalk finally refuses. Return (parts, parts delivered)."""
        mention = message.senderStaffId if message.is_group and message.senderStaffId else None
        bodies = build_dingtalk_messages(answer, mention=mention, max_bytes=self.config.max_message_bytes)
        for index, body in enumerate(bodies):
            try:
                self.sender.post_with_retry(message.sessionWebhook, body, message.sessionWebhookExpiredTime)
            except WebhookError as exc:
                logger.error("DingTalk refused part %d of %d: %s", index + 1, len(bodies), exc)
                return len(bodies), index
        return len(bodies), len(bodies)


def _tell_misconfigured(message: IncomingMessage, exc: ConfigError, env: Mapping[str, str]) -> None:
    """Even without a valid config the asker deserves to know; only DingTalk hosts are used."""
    try:
        sender = WebhookSender(allowed_webhook_hosts(EnvReader(env)))
        sender.check(message.sessionWebhook, message.sessionWebhookExpiredTime)
        sender.post(message.sessionWebhook, {"msgtype": "text",
                                             "text": {"content": texts.MISCONFIGURED.format(variable=exc.variable)}})
    except (WebhookError, ConfigError) as post_error:
        logger.error("could not tell the user about the configuration error: %s", post_error)


def handle_event(event: bytes | str, context: Any, env: Optional[Mapping[str, str]] = None) -> str:
    """FC event entry: never raises, so FC has nothing to retry into a second answer."""
    env = os.environ if env is None else env
    request_id = getattr(context, "request_id", None)
    try:
        message = IncomingMessage.from_payload(event)
    except MalformedRequest as exc:
        log.setup(20)
        logger.error("ignored a malformed payload: %s request_id=%s", exc, request_id)
        return json.dumps({"status": "malformed"})
    with log.bound(fn="reply", request_id=request_id, msg_id=message.msgId):
        try:
            config = load_reply_config(env)
        except ConfigError as exc:
            log.setup(20)
            logger.error("configuration error: %s", exc)
            _tell_misconfigured(message, exc, env)
            return json.dumps({"status": "misconfigured", "variable": exc.variable})
        log.setup(config.log_level)
        log.add_secret(config.api_key)
        if config.card:
            log.add_secret(config.card.app_secret)
        replier = Replier(config, FileHistoryStore(config.oss_mount_point), ChatModel(config),
                          WebhookSender(config.allowed_webhook_hosts), card_factory(config.card))
        try:
            status = replier.process(message)
        except Exception:
            logger.exception("unexpected failure")
            replier.deliver(message, texts.INTERNAL)
            status = "internal-error"
    return json.dumps({"status": status})
