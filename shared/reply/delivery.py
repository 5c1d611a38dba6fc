"""Where an answer's messages go, in order, each at most once.

The session webhook first, each part retried on its own so an accepted part is never sent
again. Once the session is gone (expired before the answer was ready, or errcode 300001 part
way) or DingTalk blocks the robot's webhook for minutes (errcode 130101), the rest goes through
the robot OpenAPI if the app's credentials are configured; without them the log says plainly
that the answer could not be delivered (for the throttled webhook, once per instance, with what
to do). A spent monthly API quota is noted for every instance (``oss/quota.py``).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

from shared.common import log
from shared.common.errors import WebhookError
from shared.reply.address import ChatAddress
from shared.reply.config.dingtalk import DeliverySettings
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError
from shared.reply.dingtalk.outgoing import dingtalk_messages
from shared.reply.dingtalk.robot import RobotSender
from shared.reply.dingtalk.webhook import Webhook, WebhookSender
from shared.reply.oss.storage import Storage

logger = log.get("delivery")
THROTTLED_ADVICE = ("DingTalk blocks this robot's session webhook for minutes after about 20 messages a minute "
                    "(errcode 130101); set DINGTALK_APP_KEY and DINGTALK_APP_SECRET so answers go through the robot "
                    "OpenAPI meanwhile, or ask fewer questions at once")
_told: set = set()


def log_once(key: str, text: str) -> None:
    """One error line per instance for a condition that repeats on every message until someone acts."""
    if key not in _told:
        _told.add(key)
        logger.error("%s", text)


class Delivery:
    def __init__(self, settings: DeliverySettings, sender: WebhookSender, storage: Storage,
                 api: Optional[OpenApi] = None) -> None:
        self.settings = settings
        self.sender = sender
        self.storage = storage
        self.api = api
        self._quota_spent: Optional[bool] = None  # read from the mount once per invocation
        self.first_sent: Optional[float] = None  # when DingTalk first accepted a message (time.monotonic)

    def openapi_usable(self) -> bool:
        """The app is configured and no instance has found the monthly API quota spent."""
        if self.api is None:
            return False
        if self._quota_spent is None:
            self._quota_spent = self.storage.dingtalk_quota_paused_until() is not None
        return not self._quota_spent

    def note_quota_spent(self, code: str) -> None:
        """A spent monthly quota is worth telling every instance, once."""
        self._quota_spent = True
        until = self.storage.remember_dingtalk_quota_spent(code)
        logger.error("DingTalk's monthly API quota of this organisation is spent (%s): cards and the robot OpenAPI "
                     "are paused%s; answers go through the session webhook", code,
                     time.strftime(" until %Y-%m-%d %H:%M UTC", time.gmtime(until)) if until else "")

    def _robot_send(self, address: ChatAddress, body: Dict[str, Any], why: str) -> Optional[str]:
        """Post through the robot OpenAPI; None when it worked, else why not. ``why``: what happened to the
        session webhook."""
        robot = RobotSender.able(self.api, address) if self.openapi_usable() else None
        if robot is None:
            return (f"{why} and there is no other way to the chat (set DINGTALK_APP_KEY and "
                    "DINGTALK_APP_SECRET to answer through the robot OpenAPI)" if self.api is None else
                    f"{why} and the robot OpenAPI cannot be used now (quota, or no staff id)")
        try:
            robot.send(body)
        except OpenApiError as exc:
            if exc.quota_spent:
                self.note_quota_spent(exc.code)
            return f"the robot OpenAPI refused: {exc}"
        return None

    def send(self, address: ChatAddress, webhook: Optional[Webhook], answer: str, *,
             plain: bool = False) -> Tuple[int, int]:
        """Post every part in order; stop at the first part nothing would take. Return (parts, delivered).
        ``webhook`` None: the session had expired before the answer was ready. ``plain``: text messages only."""
        bodies = dingtalk_messages(answer, mention=address.mention, max_bytes=self.settings.max_message_bytes,
                                   plain=plain)
        why = "the session webhook is gone"
        for index, body in enumerate(bodies):
            if webhook is not None:
                try:
                    self.sender.send(webhook, body)
                    self._sent()
                    continue
                except WebhookError as exc:
                    if not exc.another_way:
                        logger.error("DingTalk refused part %d of %d: %s", index + 1, len(bodies), exc)
                        return len(bodies), index
                    logger.warning("%s at part %d of %d; the rest goes through the robot OpenAPI", exc, index + 1,
                                   len(bodies))
                    if exc.throttled:
                        why = "the session webhook is throttled for minutes"
                        if self.api is None:
                            log_once("webhook-throttled", THROTTLED_ADVICE)
                    webhook = None
            failure = self._robot_send(address, body, why)
            if failure:
                logger.error("part %d of %d could not be delivered: %s", index + 1, len(bodies), failure)
                return len(bodies), index
            self._sent()
        return len(bodies), len(bodies)

    def _sent(self) -> None:
        if self.first_sent is None:
            self.first_sent = time.monotonic()

    def tell(self, address: ChatAddress, webhook: Optional[Webhook], text: str) -> None:
        """One short sentence to the chat, by whatever way is left."""
        self.send(address, webhook, text)
