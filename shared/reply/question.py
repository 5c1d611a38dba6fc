"""What the person asked, as the model should see it and as history should keep it.

The model sees everything in the order it was written: a quoted message first, then text,
pictures as OpenAI ``image_url`` parts (base64 data URLs, which every OpenAI-compatible vision
endpoint accepts) and files as named blocks of text. History keeps only words: a picture
becomes ``[图片]``, a file ``[文件 name]``, a quote ``[引用：…]``, never the bytes or the base64,
so a conversation file stays a few KB however many pictures were sent.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Dict, List, Optional, Tuple

from shared.common.errors import DingbotError
from shared.common.message import IncomingMessage, Part
from shared.reply import texts

QUOTE_IN_HISTORY_CHARS = 60
IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))

Fetch = Callable[[str, str], bytes]


class MediaProblem(DingbotError):
    """A picture or file cannot become part of the question; ``user_message`` says why in the chat."""

    def __init__(self, user_message: str, detail: str = "", *, outcome: str = "media-error") -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message
        self.outcome = outcome


class DownloadError(DingbotError):
    """A picture or file could not be fetched from DingTalk (``dingtalk/files.py``); ``user_message`` is the chat's
    sentence. Defined here, with the question it fails, so a message without media never loads the downloader."""

    def __init__(self, user_message: str, detail: str = "", *, quota_spent: bool = False, code: str = "") -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message
        self.quota_spent = quota_spent
        self.code = code


def image_type(data: bytes) -> Optional[str]:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in IMAGE_TYPES if data.startswith(magic)), None)


def placeholder(part: Part) -> str:
    if part.type == "text":
        return part.text
    if part.type == "file":
        return f"[文件 {part.fileName or '未命名'}]"
    return {"picture": "[图片]", "video": "[视频]", "audio": "[语音]"}.get(part.type, f"[{part.type}]")


def _body_parts(message: IncomingMessage) -> Tuple[Part, ...]:
    return message.parts or ((Part("text", message.question),) if message.question else ())


def history_text(message: IncomingMessage) -> str:
    """The question as history keeps it: words, with short placeholders for what is not words."""
    body = "".join(placeholder(p) for p in _body_parts(message)).strip()
    if not message.quoted:
        return body
    quoted = "".join(placeholder(p) for p in message.quoted).strip()
    if len(quoted) > QUOTE_IN_HISTORY_CHARS:
        quoted = quoted[:QUOTE_IN_HISTORY_CHARS] + "…"
    return f"[引用：{quoted}] {body}".strip()


class Question:
    """``content`` for the model (a string, or content parts when there are pictures), ``for_history``
    for the conversation's record, ``notes`` for the user (e.g. a file that was cut)."""

    __slots__ = ("content", "for_history", "notes")

    def __init__(self, content: Any, for_history: str, notes: Optional[List[str]] = None) -> None:
        self.content = content
        self.for_history = for_history
        self.notes: List[str] = notes if notes is not None else []


class QuestionBuilder:
    """``unseen``: the sentence that says why pictures and files cannot be fetched at all (no app, quota
    spent); they then stand in the question as placeholders and the answer carries that sentence."""

    def __init__(self, fetch: Optional[Fetch], max_file_text: int, unseen: Optional[str] = None) -> None:
        self.fetch = fetch
        self.max_file_text = max_file_text
        self.unseen = unseen

    def _medium(self, part: Part, notes: List[str]) -> Dict[str, Any]:
        """One picture or file as a content part; raises ``MediaProblem``."""
        if self.unseen is not None:
            if self.unseen not in notes:
                notes.append(self.unseen)
            return {"type": "text", "text": placeholder(part)}
        if part.type == "video":
            raise MediaProblem(texts.VIDEO)
        if part.type == "audio":
            raise MediaProblem(texts.QUOTED_AUDIO)
        if self.fetch is None or not part.downloadCode:
            raise MediaProblem(texts.DOWNLOAD_FAILED, f"no download code for a {part.type}")
        data = self.fetch(part.downloadCode, "图片" if part.type == "picture" else "文件")
        kind = image_type(data)
        if kind:
            return {"type": "image_url", "image_url": {"url": f"data:{kind};base64,{base64.b64encode(data).decode()}"}}
        if part.type == "picture":
            raise MediaProblem(texts.NOT_AN_IMAGE)
        name = part.fileName or "未命名文件"
        from shared.reply.documents import Unreadable, read_document  # the readers load with the first file

        try:
            document = read_document(name, data, self.max_file_text)
        except Unreadable as exc:
            raise MediaProblem(exc.user_message, str(exc)) from None
        if document.cut:
            notes.append(texts.FILE_CUT.format(name=name, chars=self.max_file_text))
        return {"type": "text", "text": f"【文件：{name}】\n{document.text}\n【文件结束】"}

    def _parts(self, parts: Tuple[Part, ...], notes: List[str]) -> List[Dict[str, Any]]:
        return [{"type": "text", "text": p.text} if p.type == "text" else self._medium(p, notes) for p in parts]

    def build(self, message: IncomingMessage) -> Question:
        """Raises ``MediaProblem`` (with ``DownloadError`` passed through from ``fetch``)."""
        notes: List[str] = []
        content: List[Dict[str, Any]] = []
        if message.quoted:
            content += [{"type": "text", "text": texts.QUOTED_INTRO}, *self._parts(message.quoted, notes),
                        {"type": "text", "text": texts.QUOTED_OUTRO}]
        body = self._parts(_body_parts(message), notes)
        if not any(part["type"] == "text" and part["text"].strip() for part in body):
            body.append({"type": "text", "text": texts.ASK_ABOUT_MEDIA})
        content += body
        if all(part["type"] == "text" for part in content):
            content = "\n".join(part["text"] for part in content)
        return Question(content, history_text(message), notes)
