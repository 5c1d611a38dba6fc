"""A click on an answer's card, handed over by the receiver (``shared/common/card_actions.py``): 停止, 重新回答, 👍/👎.

Only people the deployment answers may press: ``ALLOWED_USERS`` (when set) must name the clicker, and a click
whose callback names another conversation than the card's changes nothing. 停止 leaves a mark the instance
streaming into the card obeys between two updates. 重新回答 answers the card's question again, into a new card
through the robot OpenAPI, once per card (a double click, a redelivered callback: one regeneration). 👍/👎 is
recorded once per person and answer, a second click replacing the first. A signed callback seen before (a
replay within DingTalk's hour) changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping

from shared.common import log
from shared.common.bots import parse_bots, robot_environment
from shared.common.card_actions import AGAIN, STOP, CardAction, same_conversation
from shared.common.errors import ConfigError, MalformedRequest
from shared.common.message import IncomingMessage
from shared.common.random_ids import random_id
from shared.reply.address import ChatAddress
from shared.reply.admit import not_allowed
from shared.reply.config import load_reply_config
from shared.reply.oss.storage import Storage

logger = log.get("reply")


def handle_click(event: bytes | str, env: Mapping[str, str], context: Any) -> Dict[str, Any]:
    """Never raises: FC would retry the click."""
    try:
        click = CardAction.from_event(json.loads(event))
    except (ValueError, MalformedRequest) as exc:
        log.setup(20)
        logger.error("ignored a malformed card action: %s", exc)
        return {"status": "malformed"}
    try:
        config = load_reply_config(robot_environment(env, parse_bots(env.get("BOTS") or ""), click.robot))
    except ConfigError as exc:
        log.setup(20)
        logger.error("configuration error, card action ignored: %s", exc)
        return {"status": "misconfigured", "variable": exc.variable}
    log.setup(config.log_level)
    storage = Storage.open(config.storage, config.timezone, getattr(context, "credentials", None),
                           getattr(context, "region", None))
    marks = storage.cards
    with log.bound(card=click.out_track_id[-12:], action=click.action):
        if marks is None or config.card is None or not config.card.buttons:
            logger.warning("a card action arrived but CARD_BUTTONS is off or the storage is unavailable")
            return {"status": "ignored"}
        clicker = ChatAddress("", True, "", click.user_id, "", "", click.user_id, click.user_id, click.robot)
        if config.access.users and not_allowed(config.access._replace(conversations=()), clicker):
            return {"status": "refused"}
        try:
            if click.signature and not marks.first_use(click.signature):
                logger.warning("refused a card callback whose signed request was seen before (a replay)")
                return {"status": "replayed"}
            return _act(click, marks, env, context)
        except OSError as exc:
            logger.error("card action not carried out, storage failed: %s", exc)
            return {"status": "storage-error"}


def _act(click: CardAction, marks: Any, env: Mapping[str, str], context: Any) -> Dict[str, Any]:
    if click.action == STOP:
        taken = marks.stop(click.out_track_id, click.space_id)
        logger.info("stop requested" if taken else "stop already requested")
        return {"status": "stopping" if taken else "duplicate"}
    answer = marks.recall(click.out_track_id)
    if answer is None:
        logger.warning("a card action on a card this deployment does not know (or not finished)")
        return {"status": "unknown-card"}
    if not same_conversation(click.space_id, str(answer.get("conversation", ""))):
        logger.warning("a card action whose callback names another conversation than the card's: ignored")
        return {"status": "refused"}
    if click.action == AGAIN:
        return _again(click, marks, answer, env, context)
    marks.feedback(click.out_track_id, click.user_id, click.action, answer)  # GOOD or BAD
    logger.info("feedback recorded: %s", click.action)
    return {"status": "noted", "feedback": click.action}


def _again(click: CardAction, marks: Any, answer: Dict[str, Any], env: Mapping[str, str],
           context: Any) -> Dict[str, Any]:
    from shared.reply.app import answer_message

    if not marks.take_again(click.out_track_id):
        logger.info("this card was regenerated already")
        return {"status": "duplicate"}
    asked = IncomingMessage.from_payload(answer["payload"])
    # The same question as a message of its own: its own claim, card and turn.
    message = asked._replace(msgId=f"{asked.msgId}#again-{random_id()[:8]}", signature="")
    outcome = answer_message(message, env, context)
    if outcome.get("status") not in ("answered",):
        marks.give_again_back(click.out_track_id)
    return {**outcome, "regenerated": True}
