"""The DingTalk callback, parsed once into a typed message that also travels as the async payload.

The payload keeps DingTalk's field names so a log line or an FC console test event reads the
same as the callback. It stays a few KB: FC rejects async payloads over 128 KB.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

from shared.common.errors import MalformedRequest

TEXT_TYPES = ("text", "richText", "audio")
GROUP = "2"
MAX_QUESTION_CHARS = 8000


@dataclass(frozen=True)
class IncomingMessage:
    msgId: str
    msgtype: str
    question: str
    conversationId: str
    conversationType: str
    senderNick: str
    sessionWebhook: str
    sessionWebhookExpiredTime: Optional[int] = None
    senderId: str = ""
    senderStaffId: str = ""
    isAdmin: bool = False
    createAt: Optional[int] = None
    robotCode: str = ""

    @property
    def is_group(self) -> bool:
        return self.conversationType == GROUP

    @property
    def sender_key(self) -> str:
        """The most stable id DingTalk gives for the sender; the nick is a last resort."""
        return self.senderStaffId or self.senderId or self.senderNick

    def to_payload(self) -> bytes:
        # Every field is a str/int/bool/None: vars() gives them without asdict's recursive deep copy.
        return json.dumps(vars(self), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_payload(cls, payload: bytes | str) -> "IncomingMessage":
        """Read the receiver's payload, and the tutorial receiver's ``{question, id, ...}`` too."""
        data = json_object(payload)
        if "msgId" not in data and "id" in data:
            return _from_tutorial_payload(data)
        try:
            fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
            return cls(**fields)
        except TypeError as exc:
            raise MalformedRequest(f"reply payload lacks a field: {exc}") from None


def json_object(body: bytes | str) -> Dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest("body is not a JSON object")
    return data


def _from_tutorial_payload(data: Dict[str, Any]) -> IncomingMessage:
    nick = str(data.get("id") or "")
    question = str(data.get("question") or "")
    return IncomingMessage(
        msgId="legacy-" + hashlib.sha256(f"{nick}\n{question}".encode()).hexdigest()[:16],
        msgtype="text", question=question.strip(), conversationId="nick:" + nick,
        conversationType="1", senderNick=nick, sessionWebhook=str(data.get("sessionWebhook") or ""),
    )
