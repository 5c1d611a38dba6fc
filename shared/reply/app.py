"""The reply function's FC entry: one event in, never an exception out.

FC retries a failed async invocation (unless told not to), and a retry after an answer reached
the chat would answer twice, so every failure is handled here and reported to the user.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any, Dict, Mapping, Optional

from shared.common import log
from shared.common.bots import parse_bots, robot_environment
from shared.common.errors import ConfigError, MalformedRequest, WebhookError
from shared.common.message import IncomingMessage
from shared.common.settings import EnvReader
from shared.reply import texts
from shared.reply.config import allowed_webhook_hosts, load_reply_config
from shared.reply.delivery import Delivery
from shared.reply.dingtalk.cards import card_factory
from shared.reply.dingtalk.openapi import OpenApi
from shared.reply.dingtalk.webhook import WebhookSender
from shared.reply.oss.storage import Storage
from shared.reply.preload import load_model_sdk
from shared.reply.replier import Replier

logger = log.get("reply")


def _tell(sender: WebhookSender, message: IncomingMessage, text: str) -> None:
    """One short sentence to the asker when the answer cannot be produced; only allowed hosts are used."""
    try:
        sender.send(sender.check(message.sessionWebhook, message.sessionWebhookExpiredTime),
                    {"msgtype": "text", "text": {"content": text}})
    except WebhookError as exc:
        logger.error("could not tell the user: %s", exc)


def _timer(event: bytes | str) -> Optional[dt.datetime]:
    """When FC's timer trigger fired, for its event (``{"triggerTime", "triggerName", "payload"}``); else None."""
    if b'"triggerName"' not in (event.encode() if isinstance(event, str) else event)[:4096]:
        return None
    from shared.reply.ticker import timer_time

    try:
        return timer_time(json.loads(event))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def handle_event(event: bytes | str, context: Any, env: Optional[Mapping[str, str]] = None) -> str:
    """FC event entry: never raises, so FC has nothing to retry into a second answer."""
    env = os.environ if env is None else env
    request_id = getattr(context, "request_id", None)
    fired = _timer(event)
    if fired is not None:
        from shared.reply.ticker import handle_tick

        with log.bound(fn="reply", request_id=request_id):
            return json.dumps(handle_tick(fired, env, context))
    if b'"cardAction"' in (event.encode() if isinstance(event, str) else event)[:64]:
        from shared.reply.card_clicks import handle_click

        with log.bound(fn="reply", request_id=request_id):
            return json.dumps(handle_click(event, env, context))
    try:
        message = IncomingMessage.from_payload(event)
    except MalformedRequest as exc:
        log.setup(20)
        logger.error("ignored a malformed payload: %s request_id=%s", exc, request_id)
        return json.dumps({"status": "malformed"})
    return json.dumps(answer_message(message, env, context))


def answer_message(message: IncomingMessage, env: Mapping[str, str], context: Any) -> Dict[str, Any]:
    """One message answered (or refused, or found a duplicate): ``{"status": outcome}``. Never raises."""
    request_id = getattr(context, "request_id", None)
    with log.bound(fn="reply", request_id=request_id, msg_id=message.msgId):
        try:
            config = load_reply_config(robot_environment(env, parse_bots(env.get("BOTS") or ""), message.robot))
        except ConfigError as exc:
            log.setup(20)
            logger.error("configuration error: %s", exc)
            # Even without a valid config the asker deserves to know.
            _tell(WebhookSender(allowed_webhook_hosts(EnvReader(env))), message,
                  texts.MISCONFIGURED.format(variable=exc.variable))
            return {"status": "misconfigured", "variable": exc.variable}
        log.setup(config.log_level)
        log.add_secret(config.model.api_key)
        log.add_secret(config.brain.api_key, config.knowledge.dashvector_api_key)
        if config.app:
            log.add_secret(config.app.app_secret)
        if config.brain.kind == "chat":
            load_model_sdk(config.model)  # on a cold instance, beside the waits before the model (preload.py)
        sender = WebhookSender(config.delivery.webhook_hosts)
        replier: Optional[Replier] = None
        try:
            storage = Storage.open(config.storage, config.timezone, getattr(context, "credentials", None),
                                   getattr(context, "region", None))
            delivery = Delivery(config.delivery, sender, storage, OpenApi(config.app) if config.app else None)
            replier = Replier(config, delivery, cards=card_factory(config.card, config.app))
            status = replier.process(message)
        except Exception:
            logger.exception("unexpected failure")
            if replier is None or not replier.fail_open_card(texts.INTERNAL):
                _tell(sender, message, texts.INTERNAL)
            status = "internal-error"
    return {"status": status}
