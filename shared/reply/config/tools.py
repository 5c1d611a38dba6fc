"""The model's tools: reading links, web search (``SEARCH_PROVIDER``), MCP servers and drawing."""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple, Optional, Tuple

from shared.common.settings import EnvReader
from shared.reply.config.model import ModelSettings, llm_base_url

TOOL_NAMES = ("read_url", "web_search", "mcp", "draw_image")
SEARCH_PROVIDERS = ("bocha", "tavily", "searxng")


class ToolSettings(NamedTuple):
    """``enabled`` is ``TOOLS``: ``("auto",)``, ``("off",)`` or tool names. ``allow_hosts`` may be read although
    private; a page or file read is cut at ``max_file_bytes`` and ``file_text_chars``. Drawing uses the chat
    model's key at ``image_base_url``."""

    enabled: Tuple[str, ...]
    max_rounds: int
    timeout_seconds: float
    allow_hosts: Tuple[str, ...]
    max_file_bytes: int
    file_text_chars: int
    search_provider: Optional[str]
    search_api_key: str
    search_endpoint: Optional[str]
    mcp_servers: Tuple[Any, ...]
    image_model: Optional[str]
    image_base_url: str
    image_api_key: str

    def __repr__(self) -> str:  # never the keys
        return f"ToolSettings(enabled={self.enabled!r}, search_provider={self.search_provider!r})"

    @property
    def offered(self) -> Tuple[str, ...]:
        """The tools this deployment can turn on (their settings are present and ``TOOLS`` allows them), by the
        names ``TOOLS`` uses; a conversation may choose among these only."""
        present = ("read_url", *(("web_search",) if self.search_provider else ()),
                   *(("mcp",) if self.mcp_servers else ()), *(("draw_image",) if self.image_model else ()))
        if self.enabled == ("off",):
            return ()
        return present if self.enabled == ("auto",) else tuple(n for n in present if n in self.enabled)

    @classmethod
    def read(cls, read: EnvReader, model: ModelSettings, max_file_bytes: int, file_text_chars: int,
             ) -> "ToolSettings":
        return cls(_enabled(read), read.number("MAX_TOOL_ROUNDS", 4, int, 1, 10), model.timeout_seconds,
                   tuple(h.lower() for h in read.id_list("TOOL_ALLOW_HOSTS")), max_file_bytes, file_text_chars,
                   _search_provider(read), read.text("SEARCH_API_KEY") or "",
                   read.url("SEARCH_ENDPOINT", "") if read.text("SEARCH_ENDPOINT") else None,
                   _mcp_servers(read), read.text("IMAGE_MODEL"),
                   llm_base_url(read.url("IMAGE_ENDPOINT", "")) if read.text("IMAGE_ENDPOINT") else model.base_url,
                   model.api_key)


def _enabled(read: EnvReader) -> Tuple[str, ...]:
    """``auto`` (every tool whose settings are present), ``off``, or a comma list of tool names."""
    names = tuple(n.lower() for n in read.id_list("TOOLS")) or ("auto",)
    if names in (("auto",), ("off",)):
        return names
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown:
        read.fail("TOOLS", f"{', '.join(unknown)} unknown; use auto, off or a list of {', '.join(TOOL_NAMES)}",
                  f"{'、'.join(unknown)} 不认识；请写 auto、off 或 {'、'.join(TOOL_NAMES)} 中的几个（逗号分隔）")
    return names


def _mcp_servers(read: EnvReader) -> Tuple[Any, ...]:
    """``MCP_SERVERS``: ``{"name": {"url": "https://…/mcp", "headers": {…}}}``."""
    text = read.text("MCP_SERVERS")
    if not text:
        return ()
    from shared.reply.tools.mcp import Server

    example = '{"amap": {"url": "https://…/mcp", "headers": {"Authorization": "Bearer …"}}}'
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not an object")
        servers = []
        for name, entry in document.items():
            if not re.fullmatch(r"[a-zA-Z0-9_-]{1,30}", name) or not isinstance(entry, dict):
                raise ValueError(f"server {name!r}: names are letters, digits, _ and -")
            url, headers = entry.get("url"), entry.get("headers") or {}
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise ValueError(f"server {name!r} has no http(s) url")
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise ValueError(f"server {name!r}: headers must be strings")
            servers.append(Server(name, url, tuple(sorted(headers.items()))))
    except ValueError as exc:
        read.fail("MCP_SERVERS", f"{exc}; e.g. {example}", f"格式不对（{exc}）；例如 {example}")
        return ()
    return tuple(servers)


def _search_provider(read: EnvReader) -> Optional[str]:
    provider = read.text("SEARCH_PROVIDER")
    if provider is None:
        return None
    provider = read.choice("SEARCH_PROVIDER", "bocha", SEARCH_PROVIDERS)
    if provider != "searxng" and not read.text("SEARCH_API_KEY"):
        read.fail("SEARCH_API_KEY", f"SEARCH_PROVIDER={provider} needs its API key",
                  f"SEARCH_PROVIDER={provider} 需要它的 API Key")
    if provider == "searxng" and not read.text("SEARCH_ENDPOINT"):
        read.fail("SEARCH_ENDPOINT", "SEARCH_PROVIDER=searxng needs the instance's URL",
                  "SEARCH_PROVIDER=searxng 需要写上实例的地址")
    return provider
