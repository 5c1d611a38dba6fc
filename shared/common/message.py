"""The message handed from the receiver to the reply function: typed once, carried as JSON.

The payload keeps DingTalk's field names so a log line or an FC console test event reads the
same as the callback. Text is in ``question``; a message that holds more than text (pictures,
a file, rich text with pictures between sentences) also lists its ``parts`` in the order the
user wrote them, and a reply to an earlier message carries that message as ``quoted``. Media
travel as DingTalk download codes, never as bytes: FC refuses async payloads over 128 KB.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, NamedTuple, Optional, Tuple

from shared.common.errors import MalformedRequest
from shared.common.fields import Fields, json_object

GROUP = "2"
MAX_QUESTION_CHARS = 8000
PART_TYPES = ("text", "picture", "file", "audio", "video")
MAX_PARTS = 40


# Typed, immutable records as NamedTuples: on the cold path the dataclass machinery (it imports inspect and
# generates methods per class) costs measurable milliseconds before the first card (docs/performance.md).
class Part(NamedTuple):
    """One piece of a message: text, or a medium DingTalk lets the app download by its code."""

    type: str
    text: str = ""
    downloadCode: str = ""
    fileName: str = ""

    def to_json(self) -> Dict[str, str]:
        return {k: v for k, v in self._asdict().items() if v}

    @classmethod
    def read(cls, fields: Fields) -> "Part":
        kind = fields.string("type", limit=16, required=True)
        if kind not in PART_TYPES:
            raise MalformedRequest(f"{fields.where}.type {kind!r} is not one of {', '.join(PART_TYPES)}")
        return cls(kind, fields.string("text", limit=MAX_QUESTION_CHARS), fields.string("downloadCode"),
                   fields.string("fileName", limit=512))


def shared_fields(fields: Fields) -> Dict[str, Any]:
    """The fields the callback and the payload carry under the same name, type and limit."""
    return {
        "senderNick": fields.string("senderNick", limit=256),
        "sessionWebhookExpiredTime": fields.millis("sessionWebhookExpiredTime"),
        "senderId": fields.string("senderId", limit=256),
        "senderStaffId": fields.string("senderStaffId", limit=256),
        "isAdmin": fields.boolean("isAdmin"),
        "createAt": fields.millis("createAt"),
        "robotCode": fields.string("robotCode", limit=256),
        "conversationTitle": fields.string("conversationTitle", limit=256),
    }


def question_of(parts: Tuple[Part, ...]) -> str:
    """The words of a message that has parts: its text parts, joined."""
    return "".join(p.text for p in parts if p.type == "text").strip()[:MAX_QUESTION_CHARS]


def read_parts(fields: Fields, name: str) -> Tuple[Part, ...]:
    return tuple(Part.read(item) for item in fields.objects(name, limit=MAX_PARTS))


class IncomingMessage(NamedTuple):
    """One DingTalk robot message, parsed once, in DingTalk's own field names; the receiver adds when it
    arrived and which signed request carried it."""

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
    conversationTitle: str = ""
    parts: Tuple[Part, ...] = ()
    quoted: Tuple[Part, ...] = ()
    # Which signed request carried the message (a hash of DingTalk's timestamp and sign) and when the
    # receiver got it: one signature belongs to one message, so a captured pair cannot carry a second body.
    signature: str = ""
    receivedAt: Optional[int] = None
    # Which of the deployment's robots the callback was for (``shared/common/bots.py``); "" is its own robot.
    robot: str = ""

    @property
    def is_group(self) -> bool:
        return self.conversationType == GROUP

    @property
    def sender_key(self) -> str:
        """The most stable id DingTalk gives for the sender; the nick is a last resort."""
        return self.senderStaffId or self.senderId or self.senderNick

    @property
    def media(self) -> Tuple[Part, ...]:
        """Everything in the message and its quote that is not text."""
        return tuple(p for p in self.parts + self.quoted if p.type != "text")

    def to_json(self) -> Dict[str, Any]:
        """A message with ``parts`` carries its text there only (``question`` is their text joined), so
        the payload stays about the size of the callback, well under FC's 128 KB."""
        document = self._asdict()
        document["parts"] = [p.to_json() for p in self.parts]
        document["quoted"] = [p.to_json() for p in self.quoted]
        if self.parts:
            del document["question"]
        return document

    def to_payload(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_payload(cls, payload: bytes | str) -> "IncomingMessage":
        """Read the receiver's payload (every field checked for its type), and the tutorial
        receiver's ``{question, id, ...}`` too."""
        data = json_object(payload, "payload")
        if "msgId" not in data and "id" in data:
            return _from_tutorial_payload(Fields(data))
        fields = Fields(data)
        parts = read_parts(fields, "parts")
        question = question_of(parts) if parts else fields.string("question", limit=MAX_QUESTION_CHARS)
        return cls(
            msgId=fields.string("msgId", limit=256, required=True),
            msgtype=fields.string("msgtype", limit=32, required=True),
            question=question,
            conversationId=fields.string("conversationId", limit=256, required=True),
            conversationType=fields.string("conversationType", limit=8),
            sessionWebhook=fields.string("sessionWebhook", limit=2048, required=True),
            parts=parts,
            quoted=read_parts(fields, "quoted"),
            signature=fields.string("signature", limit=64),
            receivedAt=fields.millis("receivedAt"),
            robot=fields.string("robot", limit=30),
            **shared_fields(fields),
        )


def _from_tutorial_payload(fields: Fields) -> IncomingMessage:
    """The tutorial receiver sends no msgId. Its id is made of what changes from one message to the next,
    the session webhook's expiry time (each message gets its own) and webhook, besides who asked what, so
    asking the same thing again ("继续") is a new message while a redelivery is still the same one."""
    nick = fields.string("id", limit=256)
    question = fields.string("question", limit=MAX_QUESTION_CHARS)
    expires = fields.string("sessionExpiredTime", limit=64)
    webhook = fields.string("sessionWebhook", limit=2048)
    return IncomingMessage(
        msgId="legacy-" + hashlib.sha256(f"{nick}\n{question}\n{expires}\n{webhook}".encode()).hexdigest()[:24],
        msgtype="text", question=question.strip(), conversationId="nick:" + nick,
        conversationType="1", senderNick=nick, sessionWebhook=fields.string("sessionWebhook", limit=2048),
    )
