"""Where a message came from and where its answer goes: the chat, its kind, the asker and the robot.

The stages after admission, delivery, the cards and the records need only this of the incoming
message, so a brain, a scheduled run or a second robot can be handed an address without a DingTalk
callback behind it.
"""

from __future__ import annotations

from typing import FrozenSet, NamedTuple, Optional

from shared.common.message import IncomingMessage


class ChatAddress(NamedTuple):
    conversation_id: str
    is_group: bool
    title: str  # the group's name ("" in a one-to-one chat)
    sender: str  # the asker's stable id (``IncomingMessage.sender_key``)
    nick: str
    robot_code: str  # "" when the callback named none: the app's key is used (``DingTalkApp.robot_code``)
    staff_id: str = ""  # the asker's user id in the organisation ("" for external users)
    user_id: str = ""  # the asker's DingTalk id (``senderId``)
    robot: str = ""  # which of the deployment's robots was asked ("" its own; ``shared/common/bots.py``)

    @classmethod
    def of(cls, message: IncomingMessage) -> "ChatAddress":
        return cls(message.conversationId, message.is_group, message.conversationTitle or "", message.sender_key,
                   message.senderNick or "", message.robotCode or "", message.senderStaffId or "",
                   message.senderId or "", message.robot)

    @property
    def mention(self) -> Optional[str]:
        """Whom an answer in a group @-mentions: the asker, when DingTalk gave their staff id."""
        return self.staff_id if self.is_group and self.staff_id else None

    @property
    def asker_ids(self) -> FrozenSet[str]:
        """Every id the asker may be named by in ``ALLOWED_USERS`` or ``QUOTA_EXEMPT_USERS``."""
        return frozenset({self.staff_id, self.user_id} - {""})
