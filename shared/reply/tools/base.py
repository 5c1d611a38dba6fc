"""What a tool is to the model loop: a name, what it does, its JSON-schema parameters, and a bounded run.

A tool's output is data for the model, never instructions: it travels in ``tool`` messages only,
and every failure becomes a short text the model can work with ("the page could not be read"),
so a tool that fails costs that tool's result, never the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Protocol, Tuple

from shared.common.errors import DingbotError

# OpenAI's function names: letters, digits, _ and -, at most 64.
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# How the loop tells the model that a call did not work; the reason follows.
TOOL_FAILED, NO_SUCH_TOOL = "The tool failed", "No tool named"


class ToolError(DingbotError):
    """The tool could not do its job; the message is what the model is told (and the log)."""


@dataclass(frozen=True)
class ToolResult:
    """What a tool found, as text for the model, and the sources it came from."""

    text: str
    sources: Tuple[str, ...] = ()  # links or names the answer used, for the one-line note in history


class Tool(Protocol):
    """Optional class attributes: ``url_argument``, the argument that names a URL to open (which must come
    from what the bot read); ``public_results``, True when results are public text (a web page), not a
    secret of the conversation as the operator's own tools' output is."""

    name: str
    description: str
    parameters: Dict[str, Any]

    def status(self, arguments: Dict[str, Any]) -> str:
        """One short line the card shows while the tool runs ("🔍 正在搜索：…")."""

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        """Do the work within ``seconds``; raises ``ToolError``."""


def one_string(name: str, description: str) -> Dict[str, Any]:
    """The JSON schema of a tool that takes one required string argument (a query, a prompt, a link)."""
    return {"type": "object", "properties": {name: {"type": "string", "description": description}},
            "required": [name]}


def text_argument(arguments: Dict[str, Any], name: str) -> str:
    """The model's string argument ``name``, stripped; a tool asked with it empty cannot do anything useful."""
    value = str(arguments.get(name) or "").strip()
    if not value:
        raise ToolError(f"empty {name}")
    return value


def status_line(label: str, arguments: Dict[str, Any], name: str, width: int) -> str:
    """The card's line while a tool runs: what it does and the start of what it was asked."""
    return f"{label}：{str(arguments.get(name) or '')[:width]}"


def spec(tool: Tool) -> Dict[str, Any]:
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": tool.parameters}}
