"""What the loopback Bailian and Dify servers share: faults, a record of requests, SSE writing and the
offline answer, which says how many earlier turns the platform remembers so a session is visible."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional

from devstack.loopback import JsonHandler, LoopbackServer

CHUNK_CHARS = 8


def offline_answer(label: str, question: str, remembered: List[str]) -> str:
    """Deterministic, and it shows memory: the earlier questions this platform conversation holds."""
    if remembered:
        earlier = "；".join(q[:20] for q in remembered[-3:])
        return f"{label}这是第 {len(remembered) + 1} 轮。你之前问过：{earlier}。这次你问：{question}"
    return f"{label}这是第 1 轮。你问：{question}"


def pieces(text: str) -> List[str]:
    return [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]


class FakePlatform(LoopbackServer):
    def __init__(self, handler: type, port: int, api_key: str) -> None:
        super().__init__(handler, port)
        self.api_key = api_key
        self.requests: List[Dict[str, Any]] = []
        self.headers_seen: List[Dict[str, str]] = []
        self.faults: Deque[Dict[str, Any]] = deque()
        self.lock = threading.Lock()
        self.stream_delay = 0.0  # seconds between streamed pieces
        self.first_event_at: List[float] = []  # when each answer's first event was written (time.monotonic)
        # What every answer says instead of the offline one: an application that followed an instruction it
        # found in its own knowledge base or a plug-in's output, with ``{question}`` filled in.
        self.scripted: Optional[str] = None

    def answer(self, label: str, question: str, remembered: List[str]) -> str:
        if self.scripted is not None:
            return self.scripted.replace("{question}", question)
        return offline_answer(label, question, remembered)

    def fail_next(self, *faults: Dict[str, Any]) -> None:
        """``{"status": 429, "code": "…"}`` (the request refused), ``{"stream_error": {…}}`` (an error event
        after the first piece), ``{"cut": True}`` (the stream ends before its last event), ``{"delay": 2.0}``,
        ``{"ping": 0.2}`` (keep-alives every 0.2 s for a minute and no answer), ``{"silent": 3.0}`` (the headers,
        then nothing at all for 3 s)."""
        with self.lock:
            self.faults.extend(faults)

    def next_fault(self) -> Dict[str, Any]:
        with self.lock:
            return self.faults.popleft() if self.faults else {}


class PlatformHandler(JsonHandler):
    server: FakePlatform

    def authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.api_key}"

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def write(self, frame: str, first: bool = False) -> None:
        if first:
            self.server.first_event_at.append(time.monotonic())
        elif self.server.stream_delay:
            time.sleep(self.server.stream_delay)
        self.wfile.write(frame.encode("utf-8"))
        self.wfile.flush()

    def held(self, fault: Dict[str, Any], keepalive: str) -> bool:
        """A fault that keeps the answer from coming (``ping``, ``silent``), played out; False for any other."""
        if fault.get("ping"):
            self.ping_for(fault["ping"], keepalive)
            return True
        if fault.get("silent"):
            time.sleep(fault["silent"])
            return True
        return False

    def ping_for(self, interval: float, frame: str, seconds: float = 60.0) -> None:
        """A hostile wait: a keep-alive every ``interval`` and never an answer, until the client hangs up."""
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                self.wfile.write(frame.encode("utf-8"))
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            return

    def record(self) -> Dict[str, Any]:
        body = self.read_body()
        request = json.loads(body or b"{}") if self.headers.get("Content-Type", "").startswith("application/json") \
            else {"raw": body}
        with self.server.lock:
            self.server.requests.append(request)
            self.server.headers_seen.append(dict(self.headers))
        return request
