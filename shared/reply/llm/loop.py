"""Stage four: the model, with tools. One stream of events that the card and the webhook path both consume.

Each round streams the model's answer; when it calls tools instead (OpenAI's ``tool_calls``, streamed
in pieces and put together here), the calls of that round run at once, each within what is left of
``TIMEOUT``, and their results go back as ``tool`` messages, data and never instructions. At most
``MAX_TOOL_ROUNDS`` rounds may call tools; then one last request without tools makes the answer. A
model or provider that refuses tools is asked without them (``model.py`` remembers). While a tool runs
the stream carries a status event ("🔍 正在搜索：…"), which the card shows and the answer never keeps.

What a tool returns may have been written by anyone, and a model follows instructions it finds there
often enough. So a tool that opens a URL (``url_argument``) opens only an address the bot has read (the
question, the conversation, an earlier result or search: ``provenance.py``), never one the model made up
with the conversation in it; each result is added to what the bot has read, as a secret of the
conversation unless the tool says its results are public.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Optional

from shared.common import log
from shared.reply.events import REASONING, STATUS, TEXT, Event
from shared.reply.llm.model import ChatModel
from shared.reply.llm.prompt import Prompt
from shared.reply.provenance import Provenance
from shared.reply.tools.base import NO_SUCH_TOOL, TOOL_FAILED, Tool, ToolError, ToolResult, spec

MIN_TOOL_SECONDS = 2.0

logger = log.get("tools")


@dataclass
class ModelLoop:
    """The model, asked with ``tools`` for at most ``max_rounds`` rounds within ``seconds``; counts the
    calls and keeps the sources the tools used."""

    model: ChatModel
    tools: List[Tool]
    max_rounds: int
    seconds: float
    provenance: Provenance = field(default_factory=Provenance)
    clock: Callable[[], float] = time.monotonic
    sources: List[str] = field(default_factory=list)
    calls: int = 0

    def run(self, prompt: Prompt) -> Iterator[Event]:
        """Raises ``LLMError`` as the model call does. The answer's ``TIMEOUT`` starts once the SDK is ready."""
        self.model.prepare()
        deadline = self.clock() + self.seconds
        self.model.overall_deadline = deadline
        specs = [spec(tool) for tool in self.tools]
        try:
            for round_number in range(self.max_rounds + 1):
                offered = specs if round_number < self.max_rounds else None
                pieces: Dict[int, Dict[str, str]] = {}
                for delta in self.model.stream(prompt, tools=offered):
                    if delta.reasoning:
                        yield Event(REASONING, delta.reasoning)
                    if delta.content:
                        yield Event(TEXT, delta.content)
                    for index, call_id, name, arguments in delta.tool_calls:
                        piece = pieces.setdefault(index, {"id": "", "name": "", "arguments": ""})
                        piece["id"] = piece["id"] or call_id
                        piece["name"] = piece["name"] or name
                        piece["arguments"] += arguments
                if not pieces:
                    return
                calls = [pieces[i] for i in sorted(pieces)]
                for call in calls:
                    yield Event(STATUS, self._status(call))
                results = self._run_all(calls, deadline)
                yield Event(STATUS, "")
                prompt = replace(prompt, exchange=prompt.exchange + _exchange(calls, results))
        finally:
            self.model.overall_deadline = None

    def _tool(self, name: str) -> Optional[Tool]:
        return next((tool for tool in self.tools if tool.name == name), None)

    def _status(self, call: Dict[str, str]) -> str:
        tool = self._tool(call["name"])
        try:
            return tool.status(_arguments(call)) if tool else ""
        except Exception:  # a status line is never worth the answer
            return ""

    def _run_all(self, calls: List[Dict[str, str]], deadline: float) -> List[str]:
        seconds = max(deadline - self.clock() - MIN_TOOL_SECONDS, 1.0)
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(lambda call: self._run_one(call, seconds), calls))

    def _run_one(self, call: Dict[str, str], seconds: float) -> str:
        self.calls += 1
        tool = self._tool(call["name"])
        if tool is None:
            return f"{NO_SUCH_TOOL} {call['name']!r}."
        arguments = _arguments(call)
        url_argument = getattr(tool, "url_argument", None)
        url = str(arguments.get(url_argument) or "") if url_argument else ""
        if url and not self.provenance.known_url(url):
            logger.warning("refused %s of an address nothing the bot read contains: %s", call["name"],
                           url.split("?", 1)[0][:100])
            return f"{TOOL_FAILED}: only addresses from the question or an earlier result can be opened."
        try:
            result: ToolResult = tool.run(arguments, seconds)
        except ToolError as exc:
            logger.warning("tool %s failed: %s", call["name"], exc)
            return f"{TOOL_FAILED}: {exc}"
        except Exception as exc:  # a tool's own bug must not cost the answer
            logger.exception("tool %s crashed", call["name"])
            return f"{TOOL_FAILED} ({type(exc).__name__})."
        self.sources.extend(s for s in result.sources if s not in self.sources)
        self.provenance.add(result.text, secret=not getattr(tool, "public_results", False))
        return result.text


def _arguments(call: Dict[str, str]) -> Dict[str, Any]:
    try:
        arguments = json.loads(call["arguments"] or "{}")
    except ValueError:
        return {}
    return arguments if isinstance(arguments, dict) else {}


def _exchange(calls: List[Dict[str, str]], results: List[str]) -> tuple:
    """The assistant's tool calls and one ``tool`` message per call, as the API wants them back."""
    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"] or f"call_{index}", "type": "function",
         "function": {"name": call["name"], "arguments": call["arguments"] or "{}"}}
        for index, call in enumerate(calls)]}
    replies = [{"role": "tool", "tool_call_id": call["id"] or f"call_{index}", "content": result}
               for index, (call, result) in enumerate(zip(calls, results))]
    return (assistant, *replies)
