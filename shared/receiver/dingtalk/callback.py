"""DingTalk's robot callback body, parsed once into the typed message the reply function receives.

Shapes (DingTalk's "机器人消息类型"): ``text.content``; ``content.richText[]`` with ``text``
items and ``{type: picture, downloadCode}`` items in the order written; ``content`` with a
``downloadCode`` for ``picture``, ``file`` (plus ``fileName``), ``video`` and ``audio`` (plus
its speech-to-text ``recognition``). A reply to an earlier message is a text message with
``isReplyMsg`` and the earlier one as ``repliedMsg``. Quotes are undocumented and arrive in
several shapes (PLATFORM.md, "Quoted messages are undocumented"): quoted text in
``content.content`` or ``content.text``, ``content`` as a JSON string (or as the plain text),
rich-text items without ``type`` whose pictures are known by their ``downloadCode`` alone (as the
official stream SDK reads them). Every field is checked for its type: a signed body from
DingTalk never has a wrong one, so a wrong one means a bug or a forgery, answered with 400.
"""

from __future__ import annotations

import hashlib
from typing import Optional, Tuple

from shared.common.errors import MalformedRequest
from shared.common.fields import Fields, json_object
from shared.common.message import MAX_PARTS, MAX_QUESTION_CHARS, IncomingMessage, Part, question_of, shared_fields

MEDIA = ("picture", "file", "video", "audio")
RICH_TEXT_ITEMS = 1000


def _media_part(kind: str, content: Fields) -> Part:
    code = content.string("downloadCode") or content.string("pictureDownloadCode")
    return Part(kind, content.string("recognition", limit=None)[:MAX_QUESTION_CHARS], code,
                content.string("fileName", limit=512))


def _item_kind(item: Fields) -> str:
    """A rich-text item's type; an item without one is a picture when it carries a download code."""
    kind = item.string("type", limit=16)
    if kind:
        return kind
    has_code = item.string("downloadCode") or item.string("pictureDownloadCode")
    return "picture" if has_code and item.data.get("text") is None else "text"


def _rich_text(content: Fields) -> Tuple[Part, ...]:
    """The items in order; past ``MAX_PARTS`` the rest is dropped (the payload must stay small)."""
    parts = []
    for item in content.objects("richText", limit=RICH_TEXT_ITEMS):
        kind = _item_kind(item)
        if kind == "text" or (kind not in MEDIA and item.data.get("text") is not None):
            parts.append(Part("text", item.string("text", limit=None)[:MAX_QUESTION_CHARS]))
        elif kind in MEDIA:
            parts.append(_media_part(kind, item))
    return tuple(parts[:MAX_PARTS])


def _content(data: Fields, msgtype: str) -> Tuple[str, Tuple[Part, ...]]:
    """The text a person wrote, and the parts when the message holds more than text."""
    if msgtype == "text":
        text = data.object("text")
        return (text.string("content", limit=None) if text else ""), ()
    content = data.object("content")
    if content is None:
        return "", ()
    if msgtype == "richText":
        parts = _rich_text(content)
        return question_of(parts), parts if any(p.type != "text" for p in parts) else ()
    if msgtype == "audio":
        return content.string("recognition", limit=None), ()
    if msgtype in MEDIA:
        return "", (_media_part(msgtype, content),)
    return "", ()


def _quoted(data: Fields) -> Tuple[Part, ...]:
    """The message this one replies to (``text.repliedMsg``), as parts."""
    text = data.object("text")
    if text is None or not text.boolean("isReplyMsg"):
        return ()
    replied = text.object("repliedMsg")
    if replied is None:
        return ()
    kind = replied.string("msgType", limit=32) or replied.string("msgtype", limit=32) or "text"
    content = _replied_content(replied)
    if content is None:
        return ()
    if kind == "richText" or content.data.get("richText") is not None:
        return _rich_text(content)
    if kind in MEDIA:
        return (_media_part(kind, content),)
    quoted = (content.string("content", limit=None) or content.string("text", limit=None)).strip()
    return (Part("text", quoted[:MAX_QUESTION_CHARS]),) if quoted else ()


def _replied_content(replied: Fields) -> Optional[Fields]:
    """``repliedMsg.content`` as an object: given as one, as a JSON string, or as the quoted text itself."""
    raw = replied.data.get("content")
    if not isinstance(raw, str):
        return replied.object("content")
    where = f"{replied.where}.content"
    if raw.lstrip().startswith("{"):
        return Fields(json_object(raw, where), where)
    return Fields({"content": raw}, where)


def parse_callback(body: bytes) -> IncomingMessage:
    """Build the typed message from DingTalk's callback JSON, or raise ``MalformedRequest``."""
    data = Fields(json_object(body))
    msgtype = data.string("msgtype", limit=32, required=True)
    webhook = data.string("sessionWebhook", limit=2048, required=True)
    question, parts = _content(data, msgtype)
    sender = data.string("senderStaffId", limit=256) or data.string("senderId", limit=256) or \
        data.string("senderNick", limit=256)
    conversation_type = data.string("conversationType", limit=8) or "1"
    if conversation_type not in ("1", "2"):
        raise MalformedRequest("conversationType is neither 1 (one-to-one) nor 2 (group)")
    return IncomingMessage(
        msgId=data.string("msgId", limit=256) or "body-" + hashlib.sha256(body).hexdigest()[:32],
        msgtype=msgtype,
        question=question.strip()[:MAX_QUESTION_CHARS],
        conversationId=data.string("conversationId", limit=256) or "sender:" + sender,
        conversationType=conversation_type,
        sessionWebhook=webhook,
        parts=parts,
        quoted=_quoted(data),
        **shared_fields(data),
    )
