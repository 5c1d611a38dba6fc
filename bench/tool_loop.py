"""The tool loop's own cost: a question answered through one round of tool calls, less the time the
tools themselves took, against the same answer without tools. The model is the loopback one behind
the real openai SDK; the tools sleep a fixed time, so what remains is the loop and the model requests."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List

from bench.stats import Section, median
from devstack.fake_llm import FakeLLM
from shared.reply.brains.chat import streamed_events
from shared.reply.config import load_reply_config
from shared.reply.llm.loop import ModelLoop
from shared.reply.llm.model import ChatModel
from shared.reply.llm.prompt import build_prompt
from shared.reply.tools.base import ToolResult, one_string

TOOL_SECONDS = 0.05


class SleepingTool:
    """A tool that takes exactly ``TOOL_SECONDS``: the part of a round the loop cannot make shorter."""

    description = "Look something up (takes a fixed time)."
    parameters: Dict[str, Any] = one_string("query", "what to look up")

    def __init__(self, name: str) -> None:
        self.name = name

    def status(self, arguments: Dict[str, Any]) -> str:
        return "🔍 正在查询"

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        time.sleep(TOOL_SECONDS)
        return ToolResult(f"{self.name}: {arguments.get('query', '')} 的结果")


def calling(names: List[str]) -> Callable[[List[Dict[str, Any]], List[Dict[str, Any]]], List[Dict[str, Any]]]:
    """The model calls every tool in ``names`` in its first round, then answers from their results."""

    def choose(messages: List[Dict[str, Any]], tools: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        if any(m.get("role") == "tool" for m in messages):
            return []
        return [{"id": f"call_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps({"query": "今天的天气"})}}
                for i, name in enumerate(names)]

    return choose


def answer_seconds(model: ChatModel, tools: List[SleepingTool]) -> float:
    prompt = build_prompt("今天的天气怎么样", [], None)
    started = time.perf_counter()
    events = ModelLoop(model, tools, 4, 60).run(prompt) if tools else streamed_events(model, prompt)
    text = "".join(event.text for event in events if event.kind == "text")
    assert text, "no answer"
    return time.perf_counter() - started


def run(section: Section, quick: bool) -> None:
    runs = 10 if quick else 40
    llm = FakeLLM().start()
    try:
        model = ChatModel(load_reply_config({"CHATGPT_API_KEY": "k", "ENDPOINT": llm.url}).model)
        # The floor of a round: the model is asked twice (the second time it reads the tools' results).
        floor = [answer_seconds(model, []) + answer_seconds(model, []) for _ in range(runs + 2)][2:]
        looped = {}
        for count in (1, 3):
            tools = [SleepingTool(f"lookup_{i}") for i in range(count)]
            llm.always_call = calling([tool.name for tool in tools])
            looped[count] = [answer_seconds(model, tools) - TOOL_SECONDS for _ in range(runs + 2)][2:]
            llm.always_call = None
    finally:
        llm.stop()
    for count, samples in looped.items():
        calls = "1 tool call" if count == 1 else f"{count} tool calls at once"
        section.add(f"tool loop, one round ({calls} of {TOOL_SECONDS * 1000:.0f} ms): answer time beyond the tools' "
                    "own, vs two plain model answers (a round's floor)", median(samples) * 1000, median(floor) * 1000,
                    "ms")
    section.notes.append(f"Tool loop rows: the real openai SDK against the loopback model, tools that sleep "
                         f"{TOOL_SECONDS * 1000:.0f} ms, median of {runs}. A round of tool calls asks the model twice "
                         "(the second time it reads the results), so two plain answers are the floor; what is above "
                         "it is the loop's own work (collecting the streamed calls, running them on threads, the "
                         "longer second request). Calls of one round run at once: three add one tool's time, "
                         "not three.")
