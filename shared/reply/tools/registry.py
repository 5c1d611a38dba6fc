"""Which tools this function offers the model: ``TOOLS`` is ``auto`` (every tool whose settings are
present: reading links always, web search with ``SEARCH_PROVIDER``, the tools of ``MCP_SERVERS``),
``off``, or a comma list of ``read_url``, ``web_search`` and ``mcp``."""

from __future__ import annotations

from typing import List, Optional

from shared.reply.config import ReplyConfig
from shared.reply.tools.base import Tool
from shared.reply.tools.draw import DrawImage, Upload
from shared.reply.tools.links import ReadLink
from shared.reply.tools.search import WebSearch


def available(config: ReplyConfig, upload: Optional[Upload] = None) -> List[Tool]:
    tools: List[Tool] = [ReadLink(config.max_file_bytes, config.file_text_chars, config.tool_allow_hosts)]
    if config.search_provider:
        tools.append(WebSearch(config.search_provider, config.search_api_key, config.search_endpoint))
    if config.image_model:
        tools.append(DrawImage(config.image_base_url, config.api_key, config.image_model, upload))
    if config.mcp_servers and (config.tools == ("auto",) or "mcp" in config.tools):
        from shared.reply.tools.mcp import tools_of

        tools += tools_of(config.mcp_servers)
    return tools


def tools_for(config: ReplyConfig, upload: Optional[Upload] = None) -> List[Tool]:
    """``upload``: where a picture that comes back as data is put to be shown (the bucket, when there is one)."""
    if config.tools == ("off",):
        return []
    tools = available(config, upload)
    if config.tools == ("auto",):
        return tools
    return [tool for tool in tools if tool.name in config.tools or ("mcp" in config.tools and "__" in tool.name)]
