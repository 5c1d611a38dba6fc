"""Which tools this function offers the model: ``TOOLS`` is ``auto`` (every tool whose settings are
present: reading links always, web search with ``SEARCH_PROVIDER``, the tools of ``MCP_SERVERS``),
``off``, or a comma list of ``read_url``, ``web_search`` and ``mcp``."""

from __future__ import annotations

from typing import List, Optional

from shared.reply.config.tools import ToolSettings
from shared.reply.tools.base import Tool
from shared.reply.tools.draw import DrawImage, Upload
from shared.reply.tools.links import ReadLink
from shared.reply.tools.search import WebSearch


def available(settings: ToolSettings, upload: Optional[Upload] = None) -> List[Tool]:
    tools: List[Tool] = [ReadLink(settings.max_file_bytes, settings.file_text_chars, settings.allow_hosts)]
    if settings.search_provider:
        tools.append(WebSearch(settings.search_provider, settings.search_api_key, settings.search_endpoint))
    if settings.image_model:
        tools.append(DrawImage(settings.image_base_url, settings.image_api_key, settings.image_model, upload))
    if settings.mcp_servers and (settings.enabled == ("auto",) or "mcp" in settings.enabled):
        from shared.reply.tools.mcp import tools_of

        tools += tools_of(settings.mcp_servers)
    return tools


def tools_for(settings: ToolSettings, upload: Optional[Upload] = None) -> List[Tool]:
    """``upload``: where a picture that comes back as data is put to be shown (the bucket, when there is one)."""
    if settings.enabled == ("off",):
        return []
    tools = available(settings, upload)
    if settings.enabled == ("auto",):
        return tools
    enabled = settings.enabled
    return [tool for tool in tools if tool.name in enabled or ("mcp" in enabled and "__" in tool.name)]
