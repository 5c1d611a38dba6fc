"""Where a message came from and where its answer goes: the chat, its kind, the asker and the robot.

The stages after admission need only this of the incoming message, so a brain, a scheduled run or a
second robot can be handed an address without a DingTalk callback behind it.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.common.message import IncomingMessage


class ChatAddress(NamedTuple):
    conversation_id: str
    is_group: bool
    title: str  # the group's name ("" in a one-to-one chat)
    sender: str  # the asker's stable id (``IncomingMessage.sender_key``)
    nick: str
    robot_code: str

    @classmethod
    def of(cls, message: IncomingMessage) -> "ChatAddress":
        return cls(message.conversationId, message.is_group, message.conversationTitle or "", message.sender_key,
                   message.senderNick or "", message.robotCode or "")
