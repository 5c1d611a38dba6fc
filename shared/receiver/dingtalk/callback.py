"""DingTalk's robot callback body, parsed once into the typed message the reply function receives."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Optional

from shared.common.errors import MalformedRequest
from shared.common.message import MAX_QUESTION_CHARS, IncomingMessage, json_object


def _string(data: Dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedRequest(f"{name} is not a string")
    return str(value)


def _millis(data: Dict[str, Any], name: str) -> Optional[int]:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedRequest(f"{name} is not a millisecond timestamp") from None


def extract_question(data: Dict[str, Any], msgtype: str) -> str:
    """The text a person asked, or "" for messages the bot cannot read (pictures, files ...)."""
    content = data.get("content")
    if msgtype == "text":
        text = data.get("text")
        question = text.get("content", "") if isinstance(text, dict) else ""
    elif msgtype == "richText" and isinstance(content, dict):
        parts = content.get("richText")
        question = "".join(p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str))
    elif msgtype == "audio" and isinstance(content, dict):
        question = content.get("recognition", "")
    else:
        question = ""
    if not isinstance(question, str):
        raise MalformedRequest(f"{msgtype} content is not text")
    return question.strip()[:MAX_QUESTION_CHARS]


def parse_callback(body: bytes) -> IncomingMessage:
    """Build the typed message from DingTalk's callback JSON, or raise ``MalformedRequest``."""
    data = json_object(body)
    msgtype = _string(data, "msgtype")
    webhook = _string(data, "sessionWebhook")
    if not msgtype:
        raise MalformedRequest("msgtype is missing")
    if not webhook:
        raise MalformedRequest("sessionWebhook is missing")
    sender = _string(data, "senderStaffId") or _string(data, "senderId") or _string(data, "senderNick")
    return IncomingMessage(
        msgId=_string(data, "msgId") or "body-" + hashlib.sha256(body).hexdigest()[:32],
        msgtype=msgtype,
        question=extract_question(data, msgtype),
        conversationId=_string(data, "conversationId") or "sender:" + sender,
        conversationType=_string(data, "conversationType") or "1",
        senderNick=_string(data, "senderNick"),
        sessionWebhook=webhook,
        sessionWebhookExpiredTime=_millis(data, "sessionWebhookExpiredTime"),
        senderId=_string(data, "senderId"),
        senderStaffId=_string(data, "senderStaffId"),
        isAdmin=data.get("isAdmin") is True,
        createAt=_millis(data, "createAt"),
        robotCode=_string(data, "robotCode"),
    )
