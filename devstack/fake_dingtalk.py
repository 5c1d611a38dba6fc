"""DingTalk's side: signed callbacks exactly as DingTalk sends them, and the sessionWebhook sink."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from typing import Any, Deque, Dict, List, Optional
from urllib.parse import urlsplit

from devstack.loopback import JsonHandler, LoopbackServer
from shared.receiver.dingtalk.signature import compute_sign

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
    """DingTalk's side: the sessionWebhook sink, and the OpenAPI a card-streaming bot uses (access
    token, card createAndDeliver, card streaming update). Tests queue faults with ``fail_next`` and
    ``fail_card``."""

    def __init__(self, port: int = 0, app_key: str = "ding-local-app", app_secret: str = "local-app-secret") -> None:
        super().__init__(_SinkHandler, port)
        self.app_key, self.app_secret = app_key, app_secret
        self.token = f"local-access-token-{uuid.uuid4().hex[:8]}"
        self.token_requests = 0
        self.cards: Dict[str, Dict[str, Any]] = {}
        self.card_faults: Deque[str] = deque()
        self.messages: List[Dict[str, Any]] = []
        self.attempts = 0
        self.faults: Deque[Dict[str, Any]] = deque()
        self.api_calls: List[Dict[str, Any]] = []
        self.changed = threading.Condition()

    def fail_next(self, *faults: Dict[str, Any]) -> None:
        """Queue faults: ``{"status": 502}`` or ``{"errcode": 130101}``."""
        with self.changed:
            self.faults.extend(faults)

    def fail_card(self, *steps: str) -> None:
        """Make the next card calls fail: ``"create"`` or ``"update"`` (each consumed once)."""
        with self.changed:
            self.card_faults.extend(steps)

    def cards_for_message(self, body: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Cards created after this callback was sent, in its conversation (or its one-to-one chat)."""
        space = body["conversationId"] if body.get("conversationType") == "2" else body.get("senderStaffId", "")
        return [c for c in self.cards_in(space) if c["created"] >= body["createAt"] / 1000 - 1]

    def cards_in(self, conversation_id: str) -> List[Dict[str, Any]]:
        with self.changed:
            return [c for c in self.cards.values() if c["openSpaceId"].endswith("." + conversation_id)]

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

    def _card_fault(self, step: str) -> bool:
        with self.server.changed:
            if self.server.card_faults and self.server.card_faults[0] == step:
                self.server.card_faults.popleft()
                self.send_json(500, {"code": "ServiceUnavailable", "message": "injected card fault"})
                return True
        return False

    def _authorised(self) -> bool:
        if self.headers.get("x-acs-dingtalk-access-token") == self.server.token:
            return True
        self.send_json(401, {"code": "InvalidAuthentication", "message": "不合法的access_token"})
        return False

    def _access_token(self, body: Dict[str, Any]) -> None:
        with self.server.changed:
            self.server.token_requests += 1
        if (body.get("appKey"), body.get("appSecret")) != (self.server.app_key, self.server.app_secret):
            self.send_json(400, {"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"})
            return
        self.send_json(200, {"accessToken": self.server.token, "expireIn": 7200})

    def _create_card(self, body: Dict[str, Any]) -> None:
        if not self._authorised() or self._card_fault("create"):
            return
        card = {"outTrackId": body["outTrackId"], "openSpaceId": body.get("openSpaceId", ""),
                "template": body.get("cardTemplateId"), "content": "", "updates": [], "finalized": False,
                "error": False, "created": time.time()}
        with self.server.changed:
            self.server.cards[body["outTrackId"]] = card
            self.server.changed.notify_all()
        self.send_json(200, {"success": True, "result": {"outTrackId": body["outTrackId"]}})

    def _record(self) -> Dict[str, Any]:
        """Read the JSON body; OpenAPI calls are kept in ``api_calls`` as DingTalk would see them."""
        body = json.loads(self.read_body() or b"{}")
        if self.path.startswith("/v1.0/"):
            with self.server.changed:
                self.server.api_calls.append({"method": self.command, "path": urlsplit(self.path).path, "body": body,
                                              "headers": {k.lower(): v for k, v in self.headers.items()}})
        return body

    def do_PUT(self) -> None:
        body = self._record()
        if urlsplit(self.path).path != "/v1.0/card/streaming":
            self.send_json(404, {"code": "NotFound", "message": self.path})
            return
        if not self._authorised() or self._card_fault("update"):
            return
        with self.server.changed:
            card = self.server.cards.get(body.get("outTrackId"))
            if card is None:
                self.send_json(400, {"code": "CardNotFound", "message": "no such card"})
                return
            card["content"] = body["content"] if body.get("isFull") else card["content"] + body["content"]
            card["updates"].append({"at": time.monotonic(), "length": len(card["content"])})
            card["finalized"] = bool(body.get("isFinalize"))
            card["error"] = bool(body.get("isError"))
            self.server.changed.notify_all()
        self.send_json(200, {"success": True, "result": True})

    def do_POST(self) -> None:
        body = self._record()
        path = urlsplit(self.path).path
        if path == "/v1.0/oauth2/accessToken":
            return self._access_token(body)
        if path == "/v1.0/card/instances/createAndDeliver":
            return self._create_card(body)
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
    WebhookSink().serve_as_process()


if __name__ == "__main__":
    main()
