"""DingTalk's side: signed callbacks exactly as DingTalk sends them, and the sessionWebhook sink."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from typing import Any, Deque, Dict, List, Optional

from devstack.loopback import JsonHandler, LoopbackServer
from shared.signature import compute_sign

WEBHOOK_LIFETIME_MS = 90 * 60 * 1000
_counter = itertools.count(1)


def signed_headers(app_secret: str, now_ms: Optional[int] = None) -> Dict[str, str]:
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    return {"Content-Type": "application/json; charset=utf-8", "timestamp": timestamp,
            "sign": compute_sign(app_secret, timestamp)}


def callback_body(text: str, *, webhook_base: str, conversation_id: str = "cid-group-demo", group: bool = True,
                  sender_nick: str = "张三", sender_staff_id: str = "staff-zhangsan", msgtype: str = "text",
                  msg_id: Optional[str] = None, now_ms: Optional[int] = None, is_admin: bool = False,
                  webhook_lifetime_ms: int = WEBHOOK_LIFETIME_MS) -> Dict[str, Any]:
    """A callback body shaped like DingTalk's (group @ messages keep their leading space)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    body: Dict[str, Any] = {
        "msgtype": msgtype,
        "msgId": msg_id or f"msg{uuid.uuid4().hex}+/={next(_counter)}",
        "createAt": now,
        "conversationType": "2" if group else "1",
        "conversationId": conversation_id,
        "senderId": "$:LWCP_v1:$" + sender_staff_id,
        "senderStaffId": sender_staff_id,
        "senderNick": sender_nick,
        "senderCorpId": "ding-corp-demo",
        "isAdmin": is_admin,
        "chatbotUserId": "$:LWCP_v1:$bot",
        "robotCode": "ding-robot-demo",
        "isInAtList": True,
        "sessionWebhook": f"{webhook_base}/robot/sendBySession?session={uuid.uuid4().hex}",
        "sessionWebhookExpiredTime": now + webhook_lifetime_ms,
    }
    if group:
        body["conversationTitle"] = "演示群"
    if msgtype == "text":
        body["text"] = {"content": (" " + text) if group else text}
    elif msgtype == "richText":
        body["content"] = {"richText": [{"text": text}]}
    elif msgtype == "audio":
        body["content"] = {"recognition": text, "duration": 3000, "downloadCode": "dc-audio"}
    else:
        body["content"] = {"downloadCode": "dc-media", "pictureDownloadCode": "pdc"}
    return body


def encode(body: Dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class WebhookSink(LoopbackServer):
    """Receives the bot's answers; tests queue errors with ``fail_next``."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(_SinkHandler, port)
        self.messages: List[Dict[str, Any]] = []
        self.attempts = 0
        self.faults: Deque[Dict[str, Any]] = deque()
        self.changed = threading.Condition()

    def fail_next(self, *faults: Dict[str, Any]) -> None:
        """Queue faults: ``{"status": 502}`` or ``{"errcode": 130101}``."""
        with self.changed:
            self.faults.extend(faults)

    def for_session(self, webhook_url: str) -> List[Dict[str, Any]]:
        session = webhook_url.rsplit("session=", 1)[-1]
        with self.changed:
            return [m["body"] for m in self.messages if m["session"] == session]

    def wait_for(self, count: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            return [m["body"] for m in self.messages]


class _SinkHandler(JsonHandler):
    server: WebhookSink

    def do_POST(self) -> None:
        body = json.loads(self.read_body() or b"{}")
        with self.server.changed:
            self.server.attempts += 1
            fault = self.server.faults.popleft() if self.server.faults else {}
        if fault.get("status"):
            self.send_json(fault["status"], {"errcode": -1, "errmsg": "injected HTTP fault"})
            return
        if fault.get("errcode"):
            self.send_json(200, {"errcode": fault["errcode"], "errmsg": "injected errcode"})
            return
        with self.server.changed:
            self.server.messages.append({"session": self.query().get("session", ""), "body": body})
            self.server.changed.notify_all()
        self.send_json(200, {"errcode": 0, "errmsg": "ok"})


def main() -> None:
    """``python -m devstack.fake_dingtalk``: a webhook sink in its own process (benchmarks)."""
    sink = WebhookSink()
    print(json.dumps({"url": sink.url}), flush=True)
    try:
        sink.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
