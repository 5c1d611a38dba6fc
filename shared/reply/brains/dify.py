"""``BRAIN=dify``: a Dify chat, agent or chatflow app through its service API.

As Dify documents it (the app's 访问 API page; ``web/app/components/develop/template/
template_advanced_chat.*.mdx`` and ``template_chat.*.mdx`` in langgenius/dify):
``POST {DIFY_ENDPOINT}/chat-messages`` with ``response_mode: streaming``; each SSE ``data:`` is a JSON
object whose ``event`` says what it is: ``message`` / ``agent_message`` (a piece of the answer),
``agent_thought`` (a tool the agent used), ``message_file`` (a picture a tool made), ``message_replace``
(moderation replaced the answer), ``message_end`` (``metadata.usage`` and ``retriever_resources``),
``error`` (``status``, ``code``, ``message``), the chatflow's ``workflow_*``/``node_*`` events and
``ping``. A refused request answers with ``{"code", "message", "status"}``.

A Dify conversation belongs to the ``user`` that started it (``ConversationService.get_conversation``
filters by it), so ``user`` is a stable hash of our history key: the sender's own where history is per
sender or the chat is one-to-one, the group's where the group shares one conversation. Its
``conversation_id`` is kept with the turn it answered; one Dify no longer knows (404) starts a new one.
Dify refuses an empty ``query``; a picture sent alone comes with the question's own words for it.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Iterator, List
from urllib.parse import urljoin, urlsplit

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.brains.base import Ask, Report
from shared.reply.brains.platform import (
    PlatformError,
    StreamedCall,
    error_of,
    json_object,
    platform_error,
    question_text,
    session,
)
from shared.reply.config.brain import BrainSettings
from shared.reply.events import PICTURE, REPLACE, SOURCES, STATUS, TEXT, Event
from shared.reply.oss.history import Session, digest
from shared.reply.question import image_type

logger = log.get("dify")
ANSWER_EVENTS = ("message", "agent_message")


def dify_user(key: str) -> str:
    return f"dingtalk-{digest(key, 32)}"


class DifyBrain:
    kind = "dify"
    reads_knowledge = False  # the app has its own knowledge

    def __init__(self, settings: BrainSettings) -> None:
        self.settings = settings
        self.report = Report(model=self.kind)

    def body(self, ask: Ask, conversation_id: str, files: List[Dict[str, str]]) -> Dict[str, Any]:
        words = question_text(ask.question.content)[0].strip() or texts.ASK_ABOUT_MEDIA
        return {"inputs": {"sender_nick": ask.address.nick, "conversation_title": ask.address.title},
                "query": words, "response_mode": "streaming", "conversation_id": conversation_id,
                "user": dify_user(ask.conversation.key), "files": files, "auto_generate_name": False}

    def _upload(self, picture: str, user: str) -> Dict[str, str]:
        """A picture, through ``POST /files/upload``, as the ``local_file`` the request names."""
        data = base64.b64decode(picture.split(",", 1)[1])
        kind = image_type(data) or "image/png"
        try:
            response = session().post(f"{self.settings.endpoint}/files/upload",
                                       headers={"Authorization": f"Bearer {self.settings.api_key}"},
                                       files={"file": (f"picture.{kind.split('/')[1]}", data, kind)},
                                       data={"user": user}, timeout=(10, self.settings.timeout_seconds))
        except Exception as exc:
            raise PlatformError(0, "unreachable", type(exc).__name__) from None
        if response.status_code not in (200, 201):
            raise error_of(response.status_code, response.content)
        return {"type": "image", "transfer_method": "local_file", "upload_file_id": str(response.json().get("id"))}

    def run(self, ask: Ask, *, streamed: bool) -> Iterator[Event]:
        self.report = Report(model=self.kind)
        session = ask.conversation.session
        conversation_id = session.id if session is not None and session.brain == self.kind else ""
        started = False
        try:
            pictures = question_text(ask.question.content)[1]
            files = [self._upload(p, dify_user(ask.conversation.key)) for p in pictures]
            try:
                for event in self._answer(ask, conversation_id, files):
                    started = True
                    yield event
            except PlatformError as exc:
                if not (conversation_id and exc.status == 404 and not started):
                    raise
                logger.warning("Dify no longer knows the conversation: a new one starts")
                yield from self._answer(ask, "", files)
        except PlatformError as exc:
            logger.error("the Dify app failed: %s", exc)
            raise platform_error(self.kind, exc) from None

    def _answer(self, ask: Ask, conversation_id: str, files: List[Dict[str, str]]) -> Iterator[Event]:
        report = self.report
        call = StreamedCall(f"{self.settings.endpoint}/chat-messages", self.settings.api_key,
                            self.body(ask, conversation_id, files), self.settings.timeout_seconds)
        ended, received = False, False
        for server_event in call.events():
            document = json_object(server_event.data)
            kind = document.get("event")
            if document.get("conversation_id"):
                report.session = Session(self.kind, str(document["conversation_id"]))
            if kind in ANSWER_EVENTS and document.get("answer"):
                received = True
                yield Event(TEXT, str(document["answer"]))
            elif kind == "message_replace":
                received = True
                yield Event(REPLACE, str(document.get("answer") or ""))
            elif kind == "agent_thought":
                if document.get("observation"):
                    ask.provenance.add(str(document["observation"]))
                tool = str(document.get("tool") or "")
                yield Event(STATUS, f"🔧 正在使用工具：{tool}" if tool and not document.get("observation") else "")
            elif kind == "node_started":
                title = str((document.get("data") or {}).get("title") or "")
                yield Event(STATUS, f"⚙️ {title}" if title else "")
            elif kind == "message_file" and document.get("type") == "image" and document.get("url"):
                yield Event(PICTURE, self._absolute(str(document["url"])))
            elif kind == "message_end":
                ended = True
                metadata = document.get("metadata") or {}
                self._count(metadata.get("usage") or {})
                for resource in metadata.get("retriever_resources") or []:
                    if resource.get("content"):
                        ask.provenance.add(str(resource["content"]))
                    if resource.get("document_name"):
                        yield Event(SOURCES, str(resource["document_name"]))
            elif kind == "error":
                raise PlatformError(int(document.get("status") or 400), str(document.get("code") or ""),
                                    str(document.get("message") or ""))
            elif kind == "workflow_finished" and (document.get("data") or {}).get("status") == "failed":
                raise PlatformError(500, "workflow_failed", str((document.get("data") or {}).get("error") or ""))
        if not ended:
            raise LLMError(texts.INTERRUPTED, "the stream ended without message_end")
        if not received:
            raise LLMError(texts.EMPTY_ANSWER, "empty answer")

    def _absolute(self, url: str) -> str:
        """A self-hosted Dify without ``FILES_URL`` sends ``/files/…``: it is on the API's host."""
        if urlsplit(url).scheme:
            return url
        root = urlsplit(self.settings.endpoint)
        return urljoin(f"{root.scheme}://{root.netloc}/", url)

    def _count(self, usage: Dict[str, Any]) -> None:
        from shared.reply.llm.model import Usage

        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int) and prompt + completion > 0:
            self.report.usage = Usage(prompt, completion)
