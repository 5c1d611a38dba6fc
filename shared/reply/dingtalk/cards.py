"""Answers that grow in place: a DingTalk AI card, created for the conversation and streamed into.

The card is created and delivered in one call (``createAndDeliver``), then each update sends
the full text so far (``isFull``), so a dropped update costs nothing. Updates are batched: at
most one per ``CARD_UPDATE_INTERVAL_MS``, which keeps DingTalk's rate limits whatever the
model's token rate.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Dict, Optional

from shared.common.errors import DingbotError
from shared.common.message import IncomingMessage
from shared.reply.config import CardSettings, DingTalkApp
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError


class CardError(DingbotError):
    """A card step failed; the caller falls back to the session webhook."""


def open_space(message: IncomingMessage, robot_code: str) -> Dict[str, Any]:
    """Where the card goes: the group, or the one-to-one chat with the bot."""
    if message.is_group:
        deliver: Dict[str, Any] = {"robotCode": robot_code}
        if message.senderStaffId:
            deliver["atUserIds"] = {message.senderStaffId: message.senderNick}
        return {"openSpaceId": f"dtv1.card//IM_GROUP.{message.conversationId}",
                "imGroupOpenSpaceModel": {"supportForward": True}, "imGroupOpenDeliverModel": deliver}
    return {"openSpaceId": f"dtv1.card//IM_ROBOT.{message.senderStaffId or message.senderId}",
            "imRobotOpenSpaceModel": {"supportForward": True},
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": robot_code}}


class AICard:
    """One card: ``start`` delivers it empty, ``push`` shows the text so far, ``finish``/``fail`` close it."""

    def __init__(self, settings: CardSettings, api: OpenApi, message: IncomingMessage, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.api = api
        self.message = message
        self.clock = clock
        self.out_track_id = f"dingbot-{uuid.uuid4().hex}"
        self.shown = ""
        self.last_update = float("-inf")
        self.updates = 0

    def _call(self, what: str, method: str, path: str, body: Dict[str, Any]) -> None:
        try:
            self.api.call(what, method, path, body)
        except OpenApiError as exc:
            raise CardError(str(exc)) from None

    def start(self) -> None:
        self._call("card create and deliver", "POST", "/v1.0/card/instances/createAndDeliver", {
            "cardTemplateId": self.settings.template_id, "outTrackId": self.out_track_id, "callbackType": "STREAM",
            "cardData": {"cardParamMap": {self.settings.content_key: ""}}, "userIdType": 1,
            **open_space(self.message, self.message.robotCode or self.api.app.robot_code)})

    def _update(self, text: str, *, final: bool = False, error: bool = False) -> None:
        self._call("card streaming update", "PUT", "/v1.0/card/streaming", {
            "outTrackId": self.out_track_id, "guid": uuid.uuid4().hex, "key": self.settings.content_key,
            "content": text, "isFull": True, "isFinalize": final, "isError": error})
        self.shown, self.last_update, self.updates = text, self.clock(), self.updates + 1

    def push(self, text: str) -> None:
        """Show ``text`` (the whole answer so far) unless the last update was too recent."""
        if text != self.shown and self.clock() - self.last_update >= self.settings.update_interval_seconds:
            self._update(text)

    def finish(self, text: str) -> None:
        self._update(text, final=True)

    def fail(self, text: str) -> None:
        self._update(text, final=True, error=True)


CardFactory = Callable[[IncomingMessage], Optional[AICard]]


def card_factory(settings: Optional[CardSettings], app: Optional[DingTalkApp]) -> CardFactory:
    if settings is None or app is None:
        return lambda message: None
    return lambda message: AICard(settings, OpenApi(app), message)
