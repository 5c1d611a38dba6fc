"""The brain seam: from the platform's first event to the first text in the card, for a Bailian application
and a Dify app against the chat model, each a loopback server of its kind in the same local stack.

The interval is measured on both ends by the loopback servers themselves (the platform writes its first
event; DingTalk receives the first card update with text), so it holds what the reply function does
between them: reading the stream, the brain's parsing, the answer's guard and the card call.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import List

from bench.stats import Section, median
from devstack.stack import LocalStack, StackSettings


def first_card_text_ms(brain: str, count: int) -> List[float]:
    samples = []
    with tempfile.TemporaryDirectory(prefix=f"bench-brain-{brain}-") as state:
        settings = StackSettings(state_dir=Path(state), stream=True, brain=brain, workers=1,
                                 reply_env={"CARD_UPDATE_INTERVAL_MS": "50", "TOOLS": "off"})
        with LocalStack(settings) as stack:
            stack.send("热身", conversation_id="cid-warm")
            for i in range(count):
                conversation = f"cid-brain-{i}"
                exchange = stack.send("你好", conversation_id=conversation)
                assert exchange.outcome == "answered", exchange.outcome
                server = stack.platform or stack.llm
                started = (server.first_event_at if stack.platform else server.first_chunk_at)[-1]
                [card] = stack.sink.cards_in(conversation)
                shown = next(u["at"] for u in card["updates"] if u["length"])
                samples.append((shown - started) * 1000)
    return samples


def run(section: Section, quick: bool) -> None:
    count = 5 if quick else 20
    chat = median(first_card_text_ms("chat", count))
    for brain, name in (("bailian", "Bailian application"), ("dify", "Dify app")):
        ours = median(first_card_text_ms(brain, count))
        section.add(f"{name}: its first event → first card text, vs the chat model's", ours, chat, "ms",
                    target="≤ 1.2×", met=ours <= 1.2 * chat)
    section.notes.append("Each brain's loopback server notes when it wrote its first event, the loopback DingTalk when "
                         "the first card update with text arrived; warm instance, one worker, tools off.")
