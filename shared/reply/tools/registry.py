"""Which tools this function offers the model: ``TOOLS`` is ``auto`` (every tool whose settings are
present: reading links always, web search with ``SEARCH_PROVIDER``), ``off``, or a comma list."""

from __future__ import annotations

from typing import List

from shared.reply.config import ReplyConfig
from shared.reply.tools.base import Tool
from shared.reply.tools.links import ReadLink
from shared.reply.tools.search import WebSearch


def available(config: ReplyConfig) -> List[Tool]:
    tools: List[Tool] = [ReadLink(config.max_file_bytes, config.file_text_chars, config.tool_allow_hosts)]
    if config.search_provider:
        tools.append(WebSearch(config.search_provider, config.search_api_key, config.search_endpoint))
    return tools


def tools_for(config: ReplyConfig) -> List[Tool]:
    if config.tools == ("off",):
        return []
    tools = available(config)
    if config.tools == ("auto",):
        return tools
    return [tool for tool in tools if tool.name in config.tools]
