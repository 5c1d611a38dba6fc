"""``BRAIN=chat`` (the default): an OpenAI-compatible chat model, with our history, the knowledge
folder's excerpts, the persona and the tools.

The model with tools is the tool loop (``llm/loop.py``); without tools, a streamed answer when
a card shows it and one whole answer otherwise, as the tutorial asked for it. A picture the
drawing tool made becomes a PICTURE event as soon as its round ends, so the answer's guard
knows it before the model writes the markdown that shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, List, Optional

from shared.reply.brains.base import Ask, Report
from shared.reply.config.model import ModelSettings
from shared.reply.config.tools import ToolSettings
from shared.reply.events import PICTURE, REASONING, STATUS, TEXT, Event

if TYPE_CHECKING:  # the model and the tools load with the first answer (replier.py)
    from shared.reply.llm.model import ChatModel
    from shared.reply.llm.prompt import Prompt
    from shared.reply.tools.draw import Upload


def streamed_events(model: "ChatModel", prompt: "Prompt") -> Iterator[Event]:
    """A plain streamed answer, without tools, as events."""
    for delta in model.stream(prompt):
        if delta.reasoning:
            yield Event(REASONING, delta.reasoning)
        if delta.content:
            yield Event(TEXT, delta.content)


class ChatBrain:
    kind = "chat"
    reads_knowledge = True

    def __init__(self, model: ModelSettings, tools: ToolSettings, upload: Optional[Upload] = None) -> None:
        self.settings = model
        self.tool_settings = tools
        self.upload = upload
        self.model = None  # made on first use: the SDK loads after the first card (replier.py)
        self.report = Report()

    def run(self, ask: Ask, *, streamed: bool) -> Iterator[Event]:
        from shared.reply.llm.loop import ModelLoop
        from shared.reply.llm.model import ChatModel
        from shared.reply.tools.draw import DrawImage
        from shared.reply.tools.registry import tools_for

        report = self.report = Report()
        prompt = ask.prompt()
        model = self.model = self.model or ChatModel(self.settings)
        tools = tools_for(self.tool_settings, self.upload)
        drawers = [tool for tool in tools if isinstance(tool, DrawImage)]
        loop = ModelLoop(model, tools, self.tool_settings.max_rounds, self.tool_settings.timeout_seconds,
                         ask.provenance) if tools else None
        shown: List[str] = []

        def drawn() -> Iterator[Event]:
            for url in (url for tool in drawers for url in tool.images if url not in shown):
                shown.append(url)
                yield Event(PICTURE, url)

        try:
            if loop is not None:
                for event in loop.run(prompt):
                    yield event
                    if event.kind == STATUS and not event.text:
                        yield from drawn()
                if loop.sources:
                    report.note = "（参考：" + "、".join(loop.sources[:5]) + "）"
            elif streamed:
                yield from streamed_events(model, prompt)
            else:
                split = model.answer(prompt)
                if split.reasoning:
                    yield Event(REASONING, split.reasoning)
                yield Event(TEXT, split.answer)
        finally:
            report.model, report.usage = model.used_model, model.usage
            report.tool_calls = loop.calls if loop is not None else 0
