"""DingTalk's side: signed callbacks exactly as DingTalk sends them, the session webhook, and the
open platform (access token, AI cards, robot messages, message files).

It refuses what DingTalk refuses, so the suite sees the limits that only show on the real platform
(../shared/reference/PLATFORM.md): a webhook message over 20,000 bytes (errcode 460101), a card
parameter that is not a string, a streamed markdown variable sent as a delta, a robot ``msgParam``
over 15,000 bytes or not a string, an unknown access token. A card whose content ever exceeds
3,000 characters is marked ``blank``, as DingTalk renders it. ``createAndDeliver`` reports per
recipient in ``deliverResults`` (a card the robot cannot deliver answers 200 with ``success: false``),
and card data updates replace the card's data unless ``cardUpdateOptions.updateCardDataByKey``
asks to merge, as the open platform does. Tests queue faults: webhook errcodes and statuses,
OpenAPI errors by path (QPS throttling), undeliverable cards, or the monthly quota spent.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Set, Tuple
from urllib.parse import quote, unquote, urlsplit

import requests

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
                  webhook_lifetime_ms: int = WEBHOOK_LIFETIME_MS, content: Optional[Dict[str, Any]] = None,
                  replied: Optional[Dict[str, Any]] = None, robot_code: str = "ding-local-app") -> Dict[str, Any]:
    """A callback body shaped like DingTalk's (group @ messages keep their leading space). ``content``
    replaces the media content (``{"downloadCode": ..., "fileName": ...}``, ``{"richText": [...]}``);
    ``replied`` makes a text message a reply to that earlier message (``repliedMsg``). An
    enterprise-internal robot's ``robotCode`` is its app's AppKey."""
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
        "robotCode": robot_code,
        "isInAtList": True,
        "sessionWebhook": f"{webhook_base}/robot/sendBySession?session={uuid.uuid4().hex}",
        "sessionWebhookExpiredTime": now + webhook_lifetime_ms,
    }
    if group:
        body["conversationTitle"] = "演示群"
    if msgtype == "text":
        body["text"] = {"content": (" " + text) if group else text}
        if replied:
            body["text"].update({"isReplyMsg": True, "repliedMsg": {"msgId": "earlier", "senderId": "x", **replied}})
    elif content is not None:
        body["content"] = content
    elif msgtype == "richText":
        body["content"] = {"richText": [{"text": text}]}
    elif msgtype == "audio":
        body["content"] = {"recognition": text, "duration": 3000, "downloadCode": "dc-audio"}
    else:
        body["content"] = {"downloadCode": "dc-media", "pictureDownloadCode": "pdc"}
    return body


def encode(body: Dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


WEBHOOK_MAX_BYTES = 20_000
ROBOT_PARAM_MAX_BYTES = 15_000
CARD_BLANK_CHARS = 3_000
QPS_LIMITED = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
QUOTA_SPENT = "Forbidden.AccessDenied.ApiCountLimitForOrg"


class WebhookSink(LoopbackServer):
    """DingTalk: ``messages`` are what arrived through session webhooks, ``cards`` the AI cards,
    ``robot_messages`` what the robot OpenAPI posted, ``api_calls`` every OpenAPI request."""

    def __init__(self, port: int = 0, app_key: str = "ding-local-app", app_secret: str = "local-app-secret") -> None:
        super().__init__(_SinkHandler, port)
        self.app_key, self.app_secret = app_key, app_secret
        # Every app of the organisation (a deployment with several robots has one each) and its access token.
        self.apps: Dict[str, Tuple[str, str]] = {app_key: (app_secret, f"local-access-token-{uuid.uuid4().hex[:8]}")}
        self.token_requests = 0
        self.cards: Dict[str, Dict[str, Any]] = {}
        self.messages: List[Dict[str, Any]] = []
        self.message_arrivals: List[float] = []  # when each session-webhook message arrived (time.time())
        self.robot_messages: List[Dict[str, Any]] = []
        self.files: Dict[str, bytes] = {}
        # Download codes whose file is sent a byte every this many seconds, under its full Content-Length.
        self.slow_files: Dict[str, float] = {}
        # Download codes sent without a Content-Length (chunked), and codes answered with a redirect there.
        self.chunked_files: Set[str] = set()
        self.redirected_files: Dict[str, str] = {}
        # When set: the downloadUrl messageFiles/download answers with ("{code}" is replaced).
        self.download_url: Optional[str] = None
        self.file_requests = 0
        self.downloads_cut: List[str] = []
        self.attempts = 0
        self.faults: Deque[Dict[str, Any]] = deque()
        self.api_faults: List[Dict[str, Any]] = []
        self.quota_spent = False
        # When set: createAndDeliver creates the card but delivers it to nobody, with this errorMsg.
        self.undeliverable: Optional[str] = None
        self.api_calls: List[Dict[str, Any]] = []
        self.card_callbacks: Dict[str, Dict[str, str]] = {}  # route key -> {url, apiSecret}
        self.changed = threading.Condition()

    @property
    def token(self) -> str:
        """The first app's access token; a test replaces it to revoke the one the bot holds."""
        return self.apps[self.app_key][1]

    @token.setter
    def token(self, value: str) -> None:
        self.apps[self.app_key] = (self.app_secret, value)

    def click(self, out_track_id: str, user_id: str, action: str, *, space_id: Optional[str] = None,
              timestamp_ms: Optional[int] = None, sign: Optional[str] = None) -> requests.Response:
        """A person presses a button on a card: DingTalk POSTs the card callback to the URL registered for the
        card's route key, the body shaped as the official stream SDK's ``CardCallbackMessage.to_dict`` and
        signed with the registered ``apiSecret`` as robot messages are signed (an assumption: see
        ``shared/common/card_actions.py``). ``timestamp_ms``/``sign`` forge or age a callback in tests."""
        with self.changed:
            card = self.cards[out_track_id]
            route = self.card_callbacks.get(card.get("callbackRouteKey") or "")
        if card.get("callbackType") != "HTTP" or route is None:
            raise AssertionError(f"card {out_track_id} has no registered HTTP callback")
        conversation = card["openSpaceId"].rsplit(".", 1)[-1]
        body = {"extension": "{}", "corpId": "ding-corp-demo", "type": "actionCallback", "userId": user_id,
                "content": json.dumps({"cardPrivateData": {"actionIds": [action], "params": {}}}),
                "outTrackId": out_track_id, "spaceType": card["openSpaceId"].split("//", 1)[-1].split(".", 1)[0],
                "spaceId": conversation if space_id is None else space_id}
        headers = signed_headers(route["apiSecret"], timestamp_ms)
        if sign is not None:
            headers["sign"] = sign
        return requests.post(route["url"], json=body, headers=headers, timeout=10)

    def add_app(self, app_key: str, app_secret: str) -> None:
        """Another app of the organisation: its robot gets tokens, cards and files like the first."""
        self.apps[app_key] = (app_secret, f"local-access-token-{uuid.uuid4().hex[:8]}")

    def fail_next(self, *faults: Dict[str, Any]) -> None:
        """Queue session-webhook faults: ``{"status": 502}`` or ``{"errcode": 130101}``."""
        with self.changed:
            self.faults.extend(faults)

    def fail_api(self, path: str, *, status: int = 500, code: str = "ServiceUnavailable", times: int = 1) -> None:
        """The next ``times`` OpenAPI calls whose path starts with ``path`` fail with ``status``/``code``."""
        with self.changed:
            self.api_faults.append({"path": path, "status": status, "code": code, "times": times})

    def card_calls(self) -> int:
        """OpenAPI calls made on cards (the access token is free)."""
        with self.changed:
            return sum(1 for call in self.api_calls if call["path"].startswith("/v1.0/card/"))

    def cards_for_message(self, body: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Cards created after this callback was sent, in its conversation (or its one-to-one chat)."""
        space = body["conversationId"] if body.get("conversationType") == "2" else body.get("senderStaffId", "")
        return [c for c in self.cards_in(space) if c["created"] >= body["createAt"] / 1000 - 1]

    def cards_in(self, conversation_id: str) -> List[Dict[str, Any]]:
        with self.changed:
            return sorted((c for c in self.cards.values() if c["openSpaceId"].endswith("." + conversation_id)),
                          key=lambda card: card["created"])

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

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.send_json(status, {"code": code, "message": message, "requestid": uuid.uuid4().hex})

    def _record(self) -> Dict[str, Any]:
        """Read the JSON body; OpenAPI calls are kept in ``api_calls`` as DingTalk would see them."""
        body = json.loads(self.read_body() or b"{}")
        if self.path.startswith("/v1.0/"):
            with self.server.changed:
                self.server.api_calls.append({"method": self.command, "path": urlsplit(self.path).path, "body": body,
                                              "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "at": time.time()})
        return body

    def _admitted(self, path: str) -> bool:
        """Token, quota and queued faults, as the API gateway applies them; False when refused here."""
        if self.headers.get("x-acs-dingtalk-access-token") not in {t for _, t in self.server.apps.values()}:
            self._refuse(401, "InvalidAuthentication", "不合法的access_token")
            return False
        with self.server.changed:
            if self.server.quota_spent:
                self._refuse(403, QUOTA_SPENT, "企业调用次数已达到上限")
                return False
            for fault in self.server.api_faults:
                if path.startswith(fault["path"]) and fault["times"] > 0:
                    fault["times"] -= 1
                    self._refuse(fault["status"], fault["code"], "injected fault")
                    return False
        return True

    def _access_token(self, body: Dict[str, Any]) -> None:
        with self.server.changed:
            self.server.token_requests += 1
        secret, token = self.server.apps.get(str(body.get("appKey")), ("", ""))
        if not secret or body.get("appSecret") != secret:
            self._refuse(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
            return
        self.send_json(200, {"accessToken": token, "expireIn": 7200})

    def _params_are_strings(self, params: Any) -> bool:
        if isinstance(params, dict) and all(isinstance(v, str) for v in params.values()):
            return True
        self._refuse(400, "param.invalid", "cardParamMap values must be strings")
        return False

    def _register_callback(self, body: Dict[str, Any]) -> None:
        """``/v1.0/card/callbacks/register`` (``RegisterCallbackRequest`` of alibabacloud_dingtalk.card_1_0): a
        route key already registered is replaced only with ``forceUpdate``."""
        key, url = body.get("callbackRouteKey"), body.get("callbackUrl")
        if not isinstance(key, str) or not key or not isinstance(url, str) or not url:
            return self._refuse(400, "invalidParameter", "callbackRouteKey and callbackUrl are required")
        secret = body.get("apiSecret") or uuid.uuid4().hex
        with self.server.changed:
            if key in self.server.card_callbacks and not body.get("forceUpdate"):
                return self._refuse(400, "callbackRouteKey.exists", "callbackRouteKey already registered")
            self.server.card_callbacks[key] = {"url": url, "apiSecret": secret}
        self.send_json(200, {"success": True, "result": {"apiSecret": secret, "callbackUrl": url}})

    def _create_card(self, body: Dict[str, Any]) -> None:
        params = (body.get("cardData") or {}).get("cardParamMap") or {}
        if not self._params_are_strings(params):
            return
        space = body.get("openSpaceId", "")
        refused = self.server.undeliverable
        card = {"outTrackId": body["outTrackId"], "openSpaceId": space if not refused else "",
                "template": body.get("cardTemplateId"), "params": dict(params), "content": "", "updates": [],
                "finalized": False, "error": False, "blank": False, "created": time.time(),
                "key": "msgContent", "callbackType": body.get("callbackType"),
                "callbackRouteKey": body.get("callbackRouteKey")}
        with self.server.changed:
            self.server.cards[body["outTrackId"]] = card
            self.server.changed.notify_all()
        space_type = space.split("//", 1)[-1].split(".", 1)[0]
        delivered = {"spaceType": space_type, "spaceId": space.rsplit(".", 1)[-1], "success": not refused,
                     "carrierId": "" if refused else uuid.uuid4().hex}
        if refused:
            delivered["errorMsg"] = refused
        self.send_json(200, {"success": True, "result": {"outTrackId": body["outTrackId"],
                                                         "deliverResults": [delivered]}})

    def _update_card(self, body: Dict[str, Any], streaming: bool) -> None:
        """A streaming update of one variable, or new card data (``flowStatus``, ``msgContent`` ...)."""
        params = (body.get("cardData") or {}).get("cardParamMap") or {}
        if not streaming and not self._params_are_strings(params):
            return
        if streaming and body.get("isFull") is not True:
            return self._refuse(400, "param.invalid", "a markdown variable is streamed with isFull=true")
        with self.server.changed:
            card = self.server.cards.get(body.get("outTrackId"))
            if card is None:
                return self._refuse(400, "CardNotFound", "no such card")
            merge = bool((body.get("cardUpdateOptions") or {}).get("updateCardDataByKey"))
            if streaming:
                params = {body["key"]: body["content"]}
                card["key"], card["content"] = body["key"], body["content"]
                card["finalized"], card["error"] = bool(body.get("isFinalize")), bool(body.get("isError"))
                card["params"].update(params)
            elif merge:
                card["params"].update(params)
            else:
                card["params"] = dict(params)  # replaced whole: what the update leaves out is gone
            card["content"] = card["params"].get(card["key"], "")
            if params.get("flowStatus") in ("3", "5"):
                card["finalized"], card["error"] = True, params["flowStatus"] == "5"
            card["blank"] = card["blank"] or len(card["content"]) > CARD_BLANK_CHARS
            card["updates"].append({"at": time.monotonic(), "wall": time.time(), "length": len(card["content"]),
                                    "content": card["content"], "finalized": card["finalized"]})
            self.server.changed.notify_all()
        self.send_json(200, {"success": True, "result": True})

    def _robot_send(self, path: str, body: Dict[str, Any]) -> None:
        param = body.get("msgParam")
        if body.get("msgKey") not in ("sampleText", "sampleMarkdown") or not isinstance(param, str):
            return self._refuse(400, "invalidParameter", "msgKey or msgParam is not valid")
        if len(param.encode("utf-8")) > ROBOT_PARAM_MAX_BYTES:
            return self._refuse(400, "invalidParameter.msgParam.length", "msgParam is too long")
        with self.server.changed:
            self.server.robot_messages.append({"to": body.get("openConversationId") or body.get("userIds"),
                                               "group": path.endswith("groupMessages/send"),
                                               "msgKey": body["msgKey"], "msgParam": json.loads(param)})
            self.server.changed.notify_all()
        self.send_json(200, {"processQueryKey": uuid.uuid4().hex})

    def _download(self, body: Dict[str, Any]) -> None:
        code = body.get("downloadCode")
        if body.get("robotCode") not in self.server.apps or code not in self.server.files:
            return self._refuse(400, "invalidParameter", "downloadCode or robotCode is not valid")
        url = self.server.download_url or f"{self.server.url}/files/{{code}}?expires=3600"
        self.send_json(200, {"downloadUrl": url.replace("{code}", quote(code))})

    def do_PUT(self) -> None:
        body = self._record()
        path = urlsplit(self.path).path
        if path not in ("/v1.0/card/streaming", "/v1.0/card/instances"):
            return self._refuse(404, "NotFound", self.path)
        if self._admitted(path):
            self._update_card(body, streaming=path == "/v1.0/card/streaming")
        return None

    def _local_answers(self) -> None:
        """``GET /local/answers?session=S&space=X``, loopback only: what the bot posted to session ``S`` and
        the cards in ``X``, so ``make send`` can show the answer of the local stack it sent to."""
        query = self.query()
        with self.server.changed:
            messages = [m["body"] for m in self.server.messages if m["session"] == query.get("session")]
        cards = [{key: card[key] for key in ("content", "finalized", "error", "created")}
                 for card in self.server.cards_in(query.get("space", "")) if query.get("space")]
        self.send_json(200, {"messages": messages, "cards": cards})

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/local/answers":
            return self._local_answers()
        path = unquote(urlsplit(self.path).path)
        code = path.rsplit("/", 1)[-1]
        with self.server.changed:
            self.server.file_requests += 1
        data = self.server.files.get(code) if path.startswith("/files/") else None
        if data is None:
            return self._refuse(404, "NotFound", self.path)
        if code in self.server.redirected_files:
            self.send_response(302)
            self.send_header("Location", self.server.redirected_files[code])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if code in self.server.chunked_files:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 65536):
                piece = data[start:start + 65536]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return None
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        interval = self.server.slow_files.get(code)
        if interval is None:
            self.wfile.write(data)
            return None
        try:
            for index in range(len(data)):
                self.wfile.write(data[index:index + 1])
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            with self.server.changed:
                self.server.downloads_cut.append(code)
        return None

    def do_POST(self) -> None:
        body = self._record()
        path = urlsplit(self.path).path
        if path == "/v1.0/oauth2/accessToken":
            return self._access_token(body)
        routes = {"/v1.0/card/instances/createAndDeliver": self._create_card,
                  "/v1.0/card/callbacks/register": self._register_callback,
                  "/v1.0/robot/groupMessages/send": lambda b: self._robot_send(path, b),
                  "/v1.0/robot/oToMessages/batchSend": lambda b: self._robot_send(path, b),
                  "/v1.0/robot/messageFiles/download": self._download}
        if path in routes:
            if self._admitted(path):
                routes[path](body)
            return None
        return self._session_webhook(body)

    def _session_webhook(self, body: Dict[str, Any]) -> None:
        with self.server.changed:
            self.server.attempts += 1
            fault = self.server.faults.popleft() if self.server.faults else {}
        if fault.get("status"):
            self.send_json(fault["status"], {"errcode": -1, "errmsg": "injected HTTP fault"})
            return
        if fault.get("errcode"):
            self.send_json(200, {"errcode": fault["errcode"], "errmsg": "injected errcode"})
            return
        if len(json.dumps(body, ensure_ascii=False).encode("utf-8")) > WEBHOOK_MAX_BYTES:
            self.send_json(200, {"errcode": 460101, "errmsg": "message too long"})
            return
        with self.server.changed:
            self.server.messages.append({"session": self.query().get("session", ""), "body": body})
            self.server.message_arrivals.append(time.time())
            self.server.changed.notify_all()
        self.send_json(200, {"errcode": 0, "errmsg": "ok"})


def main() -> None:
    """``python -m devstack.fake_dingtalk``: a webhook sink in its own process (benchmarks)."""
    WebhookSink().serve_as_process()


if __name__ == "__main__":
    main()
