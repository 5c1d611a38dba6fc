"""The receiver's core: verified, parsed, handed off, acknowledged. Nothing slow before the ack.

DingTalk gives the callback only a few seconds, so the model is never called here: the
message goes to the reply function as an FC async invocation and DingTalk gets 200 at once.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Mapping, Optional, Tuple

from shared.common import log
from shared.common.card_actions import callback_secret, parse_card_callback
from shared.common.errors import ConfigError, InvokeError, MalformedRequest, SignatureError
from shared.common.message import IncomingMessage
from shared.receiver.config import ReceiverConfig, load_receiver_config
from shared.receiver.dingtalk.callback import parse_callback
from shared.receiver.dingtalk.signature import signature_id, signing_robot
from shared.receiver.fc import invoke
from shared.receiver.fc.adapters import HttpRequest, HttpResponse, error_response, ok_response

logger = log.get("receiver")
# One receiver URL serves every robot; ``/bots/<name>`` accepts only that robot's callbacks. Clicks on the
# buttons of answers' cards come to ``/card-callback`` (``/bots/<name>/card-callback``): the URL
# ``make doctor --register-card-callback`` registers.
ROBOT_PATH = re.compile(r"/bots/([^/]*)/?")
CARD_CALLBACK = re.compile(r"(?:/bots/([^/]*))?/card-callback/?")


def _now_ms() -> int:
    return int(time.time() * 1000)


def hand_off(config: ReceiverConfig, message: IncomingMessage, context: Any) -> str:
    """Invoke the reply function asynchronously; return FC's request id (or "duplicate")."""
    # Two robots in one group each get the same message: each needs its own FC task.
    task_id = invoke.task_id_for(f"{message.robot}\n{message.msgId}" if message.robot else message.msgId)
    return invoke_reply(config, message.to_payload(), task_id, context)


def invoke_reply(config: ReceiverConfig, payload: bytes, task_id: str, context: Any) -> str:
    """One asynchronous invocation of the reply function, deduplicated by ``task_id``."""
    creds = invoke.Credentials.from_context(context)
    log.add_secret(creds.access_key_secret, creds.security_token)
    endpoint = invoke.resolve_endpoint(config.fc_endpoint, context)
    if config.service_name:
        return invoke.invoke_fc2(endpoint, creds, config.service_name, config.reply_function, payload, task_id)
    return invoke.invoke_fc3(endpoint, creds, config.reply_function, payload, task_id)


def handle(request: HttpRequest, env: Optional[Mapping[str, str]] = None,
           now_ms: Callable[[], int] = _now_ms) -> HttpResponse:
    """Map every outcome to one HTTP status; DingTalk only needs a fast 200."""
    try:
        config = load_receiver_config(os.environ if env is None else env)
    except ConfigError as exc:
        # The caller is not yet authenticated: the log names the variable, the response nothing.
        log.setup(20).error("configuration error: %s", exc)
        return error_response(403, "forbidden") if exc.variable == "DINGTALK_APP_SECRET" else \
            error_response(500, "receiver unavailable")
    log.setup(config.log_level)
    log.add_secret(*(secret for _, secret in config.robots))
    with log.bound(fn="receiver", request_id=getattr(request.context, "request_id", None)):
        return _handle(config, request, now_ms())


def _card_click(config: ReceiverConfig, request: HttpRequest, now: int, named: Optional[str]) -> HttpResponse:
    """A click on an answer's card: signed with the ``apiSecret`` registered for the robot's app (derived from its
    secret, ``card_actions.callback_secret``), as DingTalk signs robot messages; handed to the reply function."""
    robots = config.robots if named is None else tuple(r for r in config.robots if r[0] == named and r[0])
    try:
        robot = signing_robot(tuple((name, callback_secret(secret)) for name, secret in robots if secret),
                              request.headers.get("timestamp"), request.headers.get("sign"), now_ms=now,
                              window_seconds=config.signature_window_seconds)
    except SignatureError as exc:
        logger.warning("rejected card callback: %s", exc)
        return error_response(403, "forbidden")
    signature = signature_id(request.headers.get("timestamp") or "", request.headers.get("sign") or "")
    try:
        click = parse_card_callback(request.body)._replace(robot=robot, signature=signature)
    except MalformedRequest as exc:
        logger.warning("malformed card callback: %s", exc)
        return error_response(400, str(exc))
    try:
        reply_request_id = invoke_reply(config, click.to_payload(), invoke.task_id_for(f"card\n{signature}"),
                                        request.context)
    except (InvokeError, ConfigError) as exc:
        logger.error("could not hand the card action to %s: %s", config.reply_function, exc)
        return error_response(502, "could not reach the reply function")
    logger.info("handed off card action %s to %s reply_request_id=%s", click.action, config.reply_function,
                reply_request_id)
    return ok_response()


def _robots_for(config: ReceiverConfig, path: str) -> Tuple[Tuple[str, str], ...]:
    """The robots a callback on ``path`` may come from: the one ``/bots/<name>`` names (none when no robot has
    that name), or any."""
    named = ROBOT_PATH.fullmatch(path)
    if named is None:
        return config.robots
    return tuple(robot for robot in config.robots if robot[0] == named.group(1) and robot[0])


def _handle(config: ReceiverConfig, request: HttpRequest, now: int) -> HttpResponse:
    if request.method != "POST":
        return error_response(405, "DingTalk callbacks are POST requests")
    if (request.declared_length or len(request.body)) > config.max_body_bytes:
        logger.warning("refused a body of %s bytes", request.declared_length)
        return error_response(413, "body too large")
    clicked = CARD_CALLBACK.fullmatch(request.path)
    if clicked is not None:
        return _card_click(config, request, now, clicked.group(1))
    try:
        robot = signing_robot(_robots_for(config, request.path), request.headers.get("timestamp"),
                              request.headers.get("sign"), now_ms=now, window_seconds=config.signature_window_seconds)
    except SignatureError as exc:
        logger.warning("rejected callback: %s", exc)
        return error_response(403, "forbidden")
    try:
        message = parse_callback(request.body)._replace(receivedAt=now, robot=robot, signature=signature_id(
            request.headers.get("timestamp") or "", request.headers.get("sign") or ""))
    except MalformedRequest as exc:
        logger.warning("malformed callback: %s", exc)
        return error_response(400, str(exc))
    with log.bound(msg_id=message.msgId, conversation=message.conversationId):
        try:
            reply_request_id = hand_off(config, message, request.context)
        except (InvokeError, ConfigError) as exc:
            logger.error("could not hand the message to %s: %s", config.reply_function, exc)
            return error_response(502, "could not reach the reply function")
        logger.info("handed off msgtype=%s to %s reply_request_id=%s", message.msgtype,
                    config.reply_function, reply_request_id)
    return ok_response()
