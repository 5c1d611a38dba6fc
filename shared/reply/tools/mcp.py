"""Tools of remote MCP servers (``MCP_SERVERS``), over streamable HTTP, with a small client of our own.

``MCP_SERVERS`` is JSON: ``{"name": {"url": "https://…/mcp", "headers": {…}}}``. Each server's tool list is
asked for once per instance (a server that does not answer is asked again after ``RETRY_SECONDS``, and
until then costs only its own tools). A tool is offered to the model as ``<server>__<tool>``, within
OpenAI's function-name pattern; each call opens a session, calls, and closes it, within the time the
answer has left. The servers are the operator's, so their URLs are trusted as configured; what they return
is data for the model.

The official ``mcp`` SDK client brings starlette, uvicorn, pydantic-settings, cryptography and their kin,
about 8 MB of the reply package and most of a second of import, for the three requests used here. So the
client is ours, written from the specification ("Transports: Streamable HTTP", "Lifecycle", "Tools",
revision 2025-06-18) and tested against the SDK's own server: each request is a JSON-RPC POST with
``Accept: application/json, text/event-stream``; ``initialize`` may answer an ``Mcp-Session-Id`` that every
later request carries, with ``MCP-Protocol-Version``; ``notifications/initialized`` answers 202; a response
is either a JSON body or an SSE stream whose ``message`` events carry JSON-RPC messages (the server may send
its own notifications first); ``tools/list`` pages by ``nextCursor``; the session ends with a ``DELETE``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import requests

from shared.common import log
from shared.reply.sse import events
from shared.reply.tools.base import ToolError, ToolResult

LIST_SECONDS = 8.0
RETRY_SECONDS = 60.0
MAX_PAGES = 20
PROTOCOL_VERSION = "2025-06-18"
UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")

logger = log.get("mcp")


@dataclass(frozen=True)
class Server:
    """One remote MCP server from ``MCP_SERVERS``."""

    name: str
    url: str
    headers: Tuple[Tuple[str, str], ...] = ()


class McpError(Exception):
    """The server could not be reached, or answered what the protocol does not allow."""


def function_name(server: str, tool: str) -> str:
    """``server__tool`` in OpenAI's pattern (``^[a-zA-Z0-9_-]{1,64}$``); a long name keeps a hash suffix."""
    name = UNSAFE.sub("_", f"{server}__{tool}")
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


class Session:
    """One MCP session with one server, closed when the ``with`` block ends; every request within ``seconds``."""

    def __init__(self, server: Server, seconds: float) -> None:
        self.server = server
        self.deadline = time.monotonic() + seconds
        self.http = requests.Session()
        self.http.headers.update(dict(server.headers))
        self.ids = itertools.count(1)
        self.session_id: Optional[str] = None
        self.version: Optional[str] = None

    def __enter__(self) -> "Session":
        try:
            answer = self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                                 "clientInfo": {"name": "dingbot-fc", "version": "1"}})
            self.version = str(answer.get("protocolVersion") or PROTOCOL_VERSION)
            self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        except BaseException:
            self.http.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.session_id:
                self.http.delete(self.server.url, headers=self._headers(), timeout=2)
        except requests.RequestException:
            pass  # the server forgets an idle session by itself
        finally:
            self.http.close()

    def _headers(self) -> Dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.version:
            headers["MCP-Protocol-Version"] = self.version
        return headers

    def _post(self, message: Dict[str, Any]) -> requests.Response:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise McpError("out of time")
        try:
            response = self.http.post(self.server.url, data=json.dumps(message), headers=self._headers(),
                                      timeout=left, allow_redirects=False)
        except requests.RequestException as exc:
            raise McpError(f"{type(exc).__name__}") from None
        if response.status_code >= 400:
            raise McpError(f"HTTP {response.status_code}")
        self.session_id = response.headers.get("Mcp-Session-Id") or self.session_id
        return response

    def request(self, method: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """The ``result`` of one request; ``McpError`` for a JSON-RPC error or anything unreadable."""
        number = next(self.ids)
        response = self._post({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "text/event-stream":
            messages = [_json(event.data) for event in events(response.iter_content(None))
                        if event.event == "message" and event.data]
        elif kind == "application/json":
            document = _json(response.text)
            messages = document if isinstance(document, list) else [document]
        else:
            raise McpError(f"answered {kind or 'no content type'} to {method}")
        for message in messages:
            if isinstance(message, dict) and message.get("id") == number:
                if isinstance(message.get("error"), dict):
                    raise McpError(f"{method}: {str(message['error'].get('message'))[:200]}")
                if isinstance(message.get("result"), dict):
                    return message["result"]
        raise McpError(f"no answer to {method}")

    def tools(self) -> List[Dict[str, Any]]:
        listed: List[Dict[str, Any]] = []
        cursor: Optional[str] = None
        for _ in range(MAX_PAGES):
            page = self.request("tools/list", {"cursor": cursor} if cursor else {})
            listed += [tool for tool in page.get("tools") or [] if isinstance(tool, dict) and tool.get("name")]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return listed


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise McpError("answered what is not JSON") from None


class McpTool:
    def __init__(self, server: Server, tool: Dict[str, Any]) -> None:
        self.server = server
        self.tool_name = str(tool["name"])
        self.name = function_name(server.name, self.tool_name)
        self.description = str(tool.get("description") or self.tool_name)[:1000]
        schema = tool.get("inputSchema")
        self.parameters: Dict[str, Any] = dict(schema) if isinstance(schema, dict) else \
            {"type": "object", "properties": {}}

    def status(self, arguments: Dict[str, Any]) -> str:
        return f"🧰 正在调用：{self.server.name} / {self.tool_name}"

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        try:
            with Session(self.server, seconds) as session:
                result = session.request("tools/call", {"name": self.tool_name, "arguments": arguments})
        except McpError as exc:  # the server down, slow, or refusing: the model is told, the answer goes on
            raise ToolError(f"MCP server {self.server.name} failed: {exc}") from None
        content = result.get("content") if isinstance(result.get("content"), list) else []
        text = "\n".join(str(part.get("text")) for part in content if isinstance(part, dict) and part.get("text"))
        if result.get("isError"):
            raise ToolError(f"{self.tool_name} answered an error: {text[:500]}")
        return ToolResult(text or "(no text)")


# Per instance: server -> (its tools, or None after a failure; when that was learnt).
_LISTED: Dict[Server, Tuple[Optional[List[McpTool]], float]] = {}
_LOCK = threading.Lock()


def tools_of(servers: Tuple[Server, ...], clock: Any = time.monotonic) -> List[McpTool]:
    tools: List[McpTool] = []
    for server in servers:
        with _LOCK:
            listed, at = _LISTED.get(server, (None, float("-inf")))
        if listed is None and clock() - at >= RETRY_SECONDS:
            try:
                with Session(server, LIST_SECONDS) as session:
                    listed = [McpTool(server, tool) for tool in session.tools()]
                logger.info("MCP server %s offers %d tools", server.name, len(listed))
            except McpError as exc:
                logger.warning("MCP server %s is not available (%s): its tools are left out", server.name, exc)
                listed = None
            with _LOCK:
                _LISTED[server] = (listed, clock())
        tools += listed or []
    return tools
