"""Messages through the robot OpenAPI, for when the session webhook is gone.

A session webhook lives about 90 minutes, and DingTalk answers errcode 300001 once the session
is over; an answer that took longer (a slow model, a redelivery) would be lost. With the app's
credentials the robot can still post: to a group with ``groupMessages/send``, to a one-to-one
chat with ``oToMessages/batchSend``. Both take ``msgKey`` and ``msgParam``, a JSON *string* of at
most about 15,000 bytes, so text is cut well under that.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from shared.reply.address import ChatAddress
from shared.reply.dingtalk.openapi import OpenApi
from shared.reply.dingtalk.split import split_message

PART_BYTES = 10_000


def _as_robot_messages(body: Dict[str, Any]) -> list:
    """A session-webhook message body as (msgKey, msgParam) pairs, cut under the OpenAPI's size limit."""
    if body.get("msgtype") == "markdown":
        title = body["markdown"].get("title") or "回复"
        return [("sampleMarkdown", {"title": title, "text": part})
                for part in split_message(body["markdown"]["text"], PART_BYTES)]
    return [("sampleText", {"content": part}) for part in split_message(body["text"]["content"], PART_BYTES)]


class RobotSender:
    def __init__(self, api: OpenApi, address: ChatAddress) -> None:
        self.api = api
        self.address = address

    @classmethod
    def able(cls, api: Optional[OpenApi], address: ChatAddress) -> Optional["RobotSender"]:
        """None when this conversation cannot be reached this way (no app, or no staff id to write to)."""
        if api is None or (not address.is_group and not address.staff_id):
            return None
        return cls(api, address)

    def send(self, body: Dict[str, Any]) -> None:
        """Post one webhook-style message (``text`` or ``markdown``); raises ``OpenApiError``."""
        address = self.address
        robot_code = address.robot_code or self.api.app.robot_code
        for key, param in _as_robot_messages(body):
            text = json.dumps(param, ensure_ascii=False)
            if address.is_group:
                self.api.call("robot group message", "POST", "/v1.0/robot/groupMessages/send", {
                    "robotCode": robot_code, "openConversationId": address.conversation_id, "msgKey": key,
                    "msgParam": text})
            else:
                self.api.call("robot one-to-one message", "POST", "/v1.0/robot/oToMessages/batchSend", {
                    "robotCode": robot_code, "userIds": [address.staff_id], "msgKey": key,
                    "msgParam": text})
