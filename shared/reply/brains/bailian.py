"""``BRAIN=bailian``: a Bailian (百炼) application, agent or workflow, through DashScope's application API.

Request and stream as the API reference documents them (help.aliyun.com/zh/model-studio/
application-api-reference; the official SDK ``dashscope/app/application.py`` builds the same body):
``POST {DASHSCOPE_ENDPOINT}/api/v1/apps/{BAILIAN_APP_ID}/completion`` with ``X-DashScope-SSE: enable``,
``input.prompt`` and ``parameters.incremental_output`` so each ``data:`` carries only the new text in
``output.text``; ``output.finish_reason`` is the string ``"null"`` until the last event says ``"stop"``.
An error in the stream is an ``event:error`` whose data is ``{"code", "message", "request_id"}``, as
is the body of a refused request.

The application keeps its own memory under ``output.session_id``, which we keep with the turn it
answered (``oss/history.py``), per conversation or per sender as ``HISTORY_SCOPE`` says. Bailian forgets
a session an hour after its last request; a conversation that comes back later sends our stored turns
as ``input.messages`` instead, so it goes on where it was. The application's ``doc_references`` are
its sources line.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Callable, Dict, Iterator, Optional

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.brains.base import Ask, Report
from shared.reply.brains.platform import PlatformError, StreamedCall, json_object, platform_error, question_text
from shared.reply.config.brain import BrainSettings
from shared.reply.events import NOTE, SOURCES, TEXT, Event
from shared.reply.oss.history import Session

logger = log.get("bailian")
# Bailian ends a session an hour after its last request; a few minutes' margin for the clock and the answer.
SESSION_SECONDS = 3600 - 300


class BailianBrain:
    kind = "bailian"
    reads_knowledge = False  # the application has its own knowledge base

    def __init__(self, settings: BrainSettings, upload: Optional[Callable[[bytes], str]] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.upload = upload
        self.clock = clock
        self.report = Report(model=self.kind)

    def body(self, ask: Ask) -> Dict[str, Any]:
        """The request: the question, and either the live session or our turns to start a new one with."""
        words, pictures = question_text(ask.question.content)
        session = ask.conversation.session
        fresh = session is not None and session.brain == self.kind and \
            self.clock() * 1000 - session.at_ms < SESSION_SECONDS * 1000
        given: Dict[str, Any] = {"prompt": words}
        if fresh:
            given["session_id"] = session.id
        elif ask.conversation.turns:
            # An hour without requests: the session is gone, our turns carry the context into a new one.
            given["messages"] = [message for turn in ask.conversation.turns for message in (
                {"role": "user", "content": turn["question"]}, {"role": "assistant", "content": turn["answer"]})] + \
                [{"role": "user", "content": words}]
        if pictures and self.upload is not None:
            given["image_list"] = [self.upload(base64.b64decode(picture.split(",", 1)[1])) for picture in pictures]
        if self.settings.biz_params:
            names = {"sender_nick": ask.address.nick, "conversation_title": ask.address.title}
            # Workflow apps take start-node parameters at the top; agent apps their prompt variables here.
            given["biz_params"] = {**names, "user_prompt_params": names}
        return {"input": given, "parameters": {"incremental_output": True}, "debug": {}}

    def run(self, ask: Ask, *, streamed: bool) -> Iterator[Event]:
        report = self.report = Report(model=self.kind)
        if question_text(ask.question.content)[1] and self.upload is None:
            logger.warning("a picture cannot reach the Bailian application without OSS_BUCKET")
            yield Event(NOTE, texts.PLATFORM_NO_PICTURES.format(platform=texts.PLATFORM_NAMES[self.kind]))
        call = StreamedCall(f"{self.settings.endpoint}/api/v1/apps/{self.settings.app_id}/completion",
                            self.settings.api_key, self.body(ask), self.settings.timeout_seconds,
                            {"X-DashScope-SSE": "enable"})
        finished, received = False, False
        try:
            for event in call.events():
                document = json_object(event.data)
                if event.event == "error":
                    raise PlatformError(_status(event.comments), str(document.get("code") or ""),
                                        str(document.get("message") or ""))
                output = document.get("output") or {}
                if output.get("session_id"):
                    report.session = Session(self.kind, str(output["session_id"]), int(self.clock() * 1000))
                self._count(report, document.get("usage") or {})
                text = output.get("text") or ""
                if isinstance(text, str) and text:
                    received = True
                    yield Event(TEXT, text)
                for reference in output.get("doc_references") or []:
                    name = reference.get("doc_name") or reference.get("title")
                    if name:
                        yield Event(SOURCES, str(name))
                    if reference.get("text"):
                        ask.provenance.add(str(reference["text"]))
                finished = finished or output.get("finish_reason") == "stop"
        except PlatformError as exc:
            logger.error("the Bailian application failed: %s", exc)
            raise platform_error(self.kind, exc) from None
        if not finished:
            raise LLMError(texts.INTERRUPTED, "the stream ended without finish_reason stop")
        if not received:
            raise LLMError(texts.EMPTY_ANSWER, "empty answer")

    @staticmethod
    def _count(report: Report, usage: Dict[str, Any]) -> None:
        from shared.reply.llm.model import Usage

        models = [m for m in usage.get("models") or [] if isinstance(m, dict)]
        prompt = sum(int(m.get("input_tokens") or 0) for m in models)
        completion = sum(int(m.get("output_tokens") or 0) for m in models)
        if prompt + completion > 0:
            report.usage = Usage(prompt, completion)
            report.model = str(models[0].get("model_id") or report.model)


def _status(comments: tuple) -> int:
    """DashScope's ``:HTTP_STATUS/400`` comment before an error event."""
    for comment in comments:
        if comment.upper().startswith("HTTP_STATUS/") and comment[12:].isdigit():
            return int(comment[12:])
    return 400
