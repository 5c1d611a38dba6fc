"""Tools of remote MCP servers (``MCP_SERVERS``), over streamable HTTP, through the official ``mcp`` SDK.

``MCP_SERVERS`` is JSON: ``{"name": {"url": "https://…/mcp", "headers": {…}}}``. Each server's tool list is
asked for once per instance (a server that does not answer is asked again after ``RETRY_SECONDS``, and
until then costs only its own tools). A tool is offered to the model as ``<server>__<tool>``, within
OpenAI's function-name pattern; each call opens a session, calls, and closes it, within the time the
answer has left. The SDK is imported only when ``MCP_SERVERS`` is set. The servers are the operator's,
so their URLs are trusted as configured; what they return is data for the model.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from shared.common import log
from shared.reply.tools.base import ToolError, ToolResult

LIST_SECONDS = 8.0
RETRY_SECONDS = 60.0
UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")

logger = log.get("mcp")


@dataclass(frozen=True)
class Server:
    """One remote MCP server from ``MCP_SERVERS``."""

    name: str
    url: str
    headers: Tuple[Tuple[str, str], ...] = ()


def function_name(server: str, tool: str) -> str:
    """``server__tool`` in OpenAI's pattern (``^[a-zA-Z0-9_-]{1,64}$``); a long name keeps a hash suffix."""
    name = UNSAFE.sub("_", f"{server}__{tool}")
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


def _run(coroutine: Any, seconds: float) -> Any:
    import anyio

    async def bounded() -> Any:
        with anyio.fail_after(seconds):
            return await coroutine

    return anyio.run(bounded)


async def _session_call(server: Server, method: str, *args: Any) -> Any:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers=dict(server.headers), timeout=LIST_SECONDS) as http, \
            streamable_http_client(server.url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        return await getattr(session, method)(*args)


class McpTool:
    def __init__(self, server: Server, tool: Any) -> None:
        self.server = server
        self.tool_name = tool.name
        self.name = function_name(server.name, tool.name)
        self.description = (tool.description or tool.name)[:1000]
        self.parameters: Dict[str, Any] = dict(tool.input_schema or {"type": "object", "properties": {}})

    def status(self, arguments: Dict[str, Any]) -> str:
        return f"🧰 正在调用：{self.server.name} / {self.tool_name}"

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        try:
            result = _run(_session_call(self.server, "call_tool", self.tool_name, arguments), seconds)
        except Exception as exc:  # the server down, slow, or refusing: the model is told, the answer goes on
            raise ToolError(f"MCP server {self.server.name} failed: {type(exc).__name__}") from None
        text = "\n".join(getattr(part, "text", "") for part in result.content if getattr(part, "text", ""))
        if getattr(result, "is_error", False):
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
                answer = _run(_session_call(server, "list_tools"), LIST_SECONDS)
                listed = [McpTool(server, tool) for tool in answer.tools]
                logger.info("MCP server %s offers %d tools", server.name, len(listed))
            except Exception as exc:
                logger.warning("MCP server %s is not available (%s): its tools are left out", server.name,
                               type(exc).__name__)
                listed = None
            with _LOCK:
                _LISTED[server] = (listed, clock())
        tools += listed or []
    return tools
