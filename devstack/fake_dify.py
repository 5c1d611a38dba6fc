"""A loopback Dify app: ``POST /v1/chat-messages`` (streaming) and ``POST /v1/files/upload``.

Built from Dify's API pages (``web/app/components/develop/template/template_advanced_chat.en.mdx`` and
``template_chat.en.mdx`` in langgenius/dify) and the official ``dify-client``: each frame is
``data: {json}`` and a blank line, the JSON's ``event`` naming it; ``event: ping`` keeps the connection
alive. ``mode`` is ``chat`` (``message`` pieces), ``agent`` (``agent_message`` and ``agent_thought``) or
``chatflow`` (``workflow_started``, ``node_started``/``node_finished``, ``workflow_finished`` around the
``message`` pieces); every answer ends with ``message_end`` carrying ``metadata.usage`` and
``retriever_resources``. Refusals are ``{"code", "message", "status"}``, as Dify's ``BaseHTTPException``
writes them: a wrong key 401 ``unauthorized``, an empty ``query`` or no ``user`` 400 ``invalid_param``,
a conversation that does not exist or belongs to another ``user`` 404 ``not_found``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Dict, List, Tuple

from devstack.fake_platform import FakePlatform, PlatformHandler, pieces

LABEL = "【离线 Dify 应用】"


class FakeDify(FakePlatform):
    def __init__(self, port: int = 0, api_key: str = "app-offline-dify", mode: str = "chat") -> None:
        super().__init__(_Handler, port, api_key)
        self.mode = mode
        self.conversations: Dict[str, Tuple[str, List[str]]] = {}  # id: (user, questions asked)
        self.uploads: Dict[str, Tuple[str, bytes]] = {}  # id: (user, bytes)
        self.resources: List[Dict[str, Any]] = []  # retriever_resources every answer cites
        self.files: List[str] = []  # message_file image URLs every answer sends

    @property
    def endpoint(self) -> str:
        """What ``DIFY_ENDPOINT`` is set to: the API base as Dify's console shows it."""
        return self.url + "/v1"


def _error(status: int, code: str, message: str) -> Dict[str, Any]:
    return {"code": code, "message": message, "status": status}


class _Handler(PlatformHandler):
    server: FakeDify

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if not self.authorized():
            self.read_body()
            self.send_json(401, _error(401, "unauthorized", "Access token is invalid"))
            return
        if path == "/v1/files/upload":
            return self._upload()
        if path != "/v1/chat-messages":
            self.read_body()
            self.send_json(404, _error(404, "not_found", "The requested URL was not found on the server."))
            return
        request = self.record()
        query, user = request.get("query"), request.get("user")
        if not isinstance(query, str) or not query.strip():
            self.send_json(400, _error(400, "invalid_param", "query is required"))
            return
        if not isinstance(user, str) or not user:
            self.send_json(400, _error(400, "invalid_param", "user is required"))
            return
        for file in request.get("files") or []:
            upload = self.server.uploads.get(str(file.get("upload_file_id")))
            if file.get("transfer_method") == "local_file" and (upload is None or upload[0] != user):
                self.send_json(400, _error(400, "invalid_param", "Invalid upload file id."))
                return
        conversation_id = request.get("conversation_id") or ""
        with self.server.lock:
            kept = self.server.conversations.get(conversation_id)
        if conversation_id and (kept is None or kept[0] != user):
            self.send_json(404, _error(404, "not_found", "Conversation Not Exists."))
            return
        fault = self.server.next_fault()
        if fault.get("delay"):
            time.sleep(fault["delay"])
        if fault.get("status"):
            self.send_json(fault["status"], _error(fault["status"], fault.get("code", "internal_server_error"),
                                                   fault.get("message", "injected fault")))
            return
        remembered = kept[1] if kept else []
        conversation_id = conversation_id or str(uuid.uuid4())
        with self.server.lock:
            self.server.conversations[conversation_id] = (user, remembered + [query])
        seen = f"（看到 {len(request.get('files') or [])} 张图片）" if request.get("files") else ""
        self._stream(self.server.answer(LABEL, query, remembered) + seen, conversation_id, fault)

    def _upload(self) -> None:
        body = self.read_body()
        kind = self.headers.get("Content-Type", "")
        boundary = re.search(r"boundary=([^;]+)", kind)
        if not kind.startswith("multipart/form-data") or not boundary:
            self.send_json(400, _error(400, "no_file_uploaded", "Please upload your file."))
            return
        fields: Dict[str, bytes] = {}
        for part in body.split(b"--" + boundary.group(1).strip('"').encode())[1:-1]:
            head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            if name:
                fields[name.group(1).decode()] = value
        if "file" not in fields:
            self.send_json(400, _error(400, "no_file_uploaded", "Please upload your file."))
            return
        file_id = str(uuid.uuid4())
        with self.server.lock:
            self.server.uploads[file_id] = (fields.get("user", b"").decode(), fields["file"])
        self.send_json(201, {"id": file_id, "name": "picture", "size": len(fields["file"]), "extension": "png",
                             "mime_type": "image/png", "created_by": fields.get("user", b"").decode(),
                             "created_at": int(time.time())})

    def _stream(self, answer: str, conversation_id: str, fault: Dict[str, Any]) -> None:
        message_id, task_id, run_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        mode = self.server.mode
        base = {"task_id": task_id, "message_id": message_id, "conversation_id": conversation_id,
                "created_at": int(time.time())}

        def frame(document: Dict[str, Any], first: bool = False) -> None:
            self.write(f"data: {json.dumps(document, ensure_ascii=False)}\n\n", first=first)

        self.start_stream()
        self.write("event: ping\n\n")
        if self.held(fault, "event: ping\n\n"):
            return
        first = True
        if mode == "chatflow":
            frame({"event": "workflow_started", "task_id": task_id, "workflow_run_id": run_id,
                   "data": {"id": run_id, "workflow_id": "wf", "sequence_number": 1}}, first=True)
            frame({"event": "node_started", "task_id": task_id, "workflow_run_id": run_id,
                   "data": {"id": "n1", "node_id": "llm", "node_type": "llm", "title": "回答问题", "index": 1}})
            first = False
        if mode == "agent":
            frame({**base, "event": "agent_thought", "id": "t1", "position": 1, "thought": "",
                   "observation": "", "tool": "dataset_search", "tool_input": "{}", "message_files": []}, first=True)
            frame({**base, "event": "agent_thought", "id": "t1", "position": 1, "thought": "查一下资料",
                   "observation": "资料里写着：答案在第三页。", "tool": "dataset_search", "tool_input": "{}",
                   "message_files": []})
            first = False
        event = "agent_message" if mode == "agent" else "message"
        chunks = pieces(answer)
        for index, piece in enumerate(chunks):
            if fault.get("stream_error") and index == 1:
                error = fault["stream_error"]
                frame({**base, "event": "error", "status": error.get("status", 400), "code": error["code"],
                       "message": error.get("message", "")})
                return
            frame({**base, "event": event, "id": message_id, "answer": piece}, first=first and index == 0)
        for url in self.server.files:
            frame({"event": "message_file", "id": str(uuid.uuid4()), "type": "image", "belongs_to": "assistant",
                   "url": url, "conversation_id": conversation_id})
        if fault.get("cut"):
            return
        if mode == "chatflow":
            frame({"event": "node_finished", "task_id": task_id, "workflow_run_id": run_id,
                   "data": {"id": "n1", "node_id": "llm", "status": "succeeded"}})
            frame({"event": "workflow_finished", "task_id": task_id, "workflow_run_id": run_id,
                   "data": {"id": run_id, "status": "succeeded", "outputs": {"answer": answer}}})
        usage = {"prompt_tokens": 20 + len(answer) // 2, "completion_tokens": len(answer),
                 "total_tokens": 20 + len(answer) // 2 + len(answer), "currency": "USD"}
        frame({**base, "event": "message_end", "id": message_id,
               "metadata": {"usage": usage, "retriever_resources": self.server.resources}})
