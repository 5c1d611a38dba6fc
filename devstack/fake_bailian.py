"""A loopback Bailian (百炼) application: DashScope's ``POST /api/v1/apps/{app_id}/completion``.

Built from the API reference (help.aliyun.com/zh/model-studio/application-api-reference) and what the
official SDK sends and parses (``dashscope/app/application.py``, ``dashscope/common/utils.py``
``_handle_stream``): with ``X-DashScope-SSE: enable`` the answer is SSE frames ``id:N`` / ``event:result``
/ ``:HTTP_STATUS/200`` / ``data:{…}`` (no space after the colons, as the reference's samples show);
``output.text`` is the new text only with ``parameters.incremental_output`` and everything so far
without it; ``output.finish_reason`` is ``"null"`` until the last frame's ``"stop"``; the frames carry
``output.session_id`` and ``usage.models[{model_id, input_tokens, output_tokens}]``. Without the SSE
header the answer is one JSON body. Refusals are ``{"code", "message", "request_id"}``: a wrong key
401 ``InvalidApiKey``, neither ``prompt`` nor ``messages`` 400 ``InvalidParameter``, an unknown app 404.

Sessions are remembered per id for ``session_seconds`` after their last request (an hour, as Bailian
does); an unknown or forgotten ``session_id`` starts afresh, and ``input.messages``, when given, is the
history instead.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from devstack.fake_platform import FakePlatform, PlatformHandler, pieces

LABEL = "【离线百炼应用】"
APP_ID = "offline-app"
MODEL_ID = "qwen-plus"


class FakeBailian(FakePlatform):
    def __init__(self, port: int = 0, api_key: str = "sk-offline-bailian", app_id: str = APP_ID) -> None:
        super().__init__(_Handler, port, api_key)
        self.app_id = app_id
        self.session_seconds = 3600.0
        self.sessions: Dict[str, Tuple[float, List[str]]] = {}  # id: (last request, questions asked)
        self.references: List[Dict[str, Any]] = []  # doc_references every answer cites
        self.clock = time.monotonic

    @property
    def endpoint(self) -> str:
        """What ``DASHSCOPE_ENDPOINT`` is set to (the SDK's ``base_http_api_url`` is this + ``/api/v1``)."""
        return self.url

    def remembered(self, session_id: str) -> Optional[List[str]]:
        with self.lock:
            kept = self.sessions.get(session_id)
            if kept is None or self.clock() - kept[0] > self.session_seconds:
                return None
            return list(kept[1])


def _error(request_id: str, code: str, message: str) -> Dict[str, str]:
    return {"code": code, "message": message, "request_id": request_id}


class _Handler(PlatformHandler):
    server: FakeBailian

    def do_POST(self) -> None:
        request = self.record()
        request_id = str(uuid.uuid4())
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 5 or parts[:3] != ["api", "v1", "apps"] or parts[4] != "completion":
            self.send_json(404, _error(request_id, "NotFound", f"no route {self.path}"))
            return
        if not self.authorized():
            self.send_json(401, _error(request_id, "InvalidApiKey", "Invalid API-key provided."))
            return
        if parts[3] != self.server.app_id:
            self.send_json(404, _error(request_id, "InvalidApp.NotFound", "App not found or not published."))
            return
        given = request.get("input") or {}
        messages = given.get("messages") or []
        if not given.get("prompt") and not messages:
            self.send_json(400, _error(request_id, "InvalidParameter", "prompt or messages is required!"))
            return
        fault = self.server.next_fault()
        if fault.get("delay"):
            time.sleep(fault["delay"])
        if fault.get("status"):
            self.send_json(fault["status"], _error(request_id, fault.get("code", "InternalError"),
                                                   fault.get("message", "injected fault")))
            return
        question = given.get("prompt") or str(messages[-1].get("content", ""))
        if messages:
            remembered = [str(m.get("content", "")) for m in messages[:-1] if m.get("role") == "user"]
            session_id = str(uuid.uuid4())
        else:
            kept = self.server.remembered(str(given.get("session_id") or ""))
            session_id = str(given["session_id"]) if kept is not None else str(uuid.uuid4())
            remembered = kept or []
        with self.server.lock:
            self.server.sessions[session_id] = (self.server.clock(), remembered + [question])
        answer = self.server.answer(LABEL, question, remembered)
        usage = {"models": [{"model_id": MODEL_ID, "input_tokens": len(question) + 10, "output_tokens": len(answer)}]}
        incremental = bool((request.get("parameters") or {}).get("incremental_output"))
        if self.headers.get("X-DashScope-SSE", "").lower() != "enable":
            self.send_json(200, {"output": {"text": answer, "finish_reason": "stop", "session_id": session_id,
                                            "doc_references": self.server.references},
                                 "usage": usage, "request_id": request_id})
            return
        self.start_stream()
        if self.held(fault, ":HTTP_STATUS/200\n\n"):
            return
        written = ""
        chunks = pieces(answer)
        for index, piece in enumerate(chunks):
            if fault.get("stream_error") and index == 1:
                error = fault["stream_error"]
                self.write(f"id:{index + 1}\nevent:error\n:HTTP_STATUS/{error.get('status', 400)}\n"
                           f"data:{json.dumps(_error(request_id, error['code'], error.get('message', '')))}\n\n")
                return
            if fault.get("cut") and index == len(chunks) - 1:
                return
            written += piece
            last = index == len(chunks) - 1
            output: Dict[str, Any] = {"session_id": session_id, "finish_reason": "stop" if last else "null",
                                      "text": piece if incremental else written}
            if last:
                output["doc_references"] = self.server.references
            frame = {"output": output, "usage": usage, "request_id": request_id}
            self.write(f"id:{index + 1}\nevent:result\n:HTTP_STATUS/200\n"
                       f"data:{json.dumps(frame, ensure_ascii=False)}\n\n", first=index == 0)
