"""Time to first visible text for a long answer: session webhook (whole answer at once) against AI-card
streaming (the card shows text while the model writes), through the local stack."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import List

from bench.stats import Section, median
from devstack.stack import LocalStack, StackSettings

QUESTION = "写一篇长文"
MODEL_CHUNK_SECONDS = 0.002


def visible(stack: LocalStack, stream: bool, conversation: str, messages_before: int) -> bool:
    if stream:
        cards = stack.sink.cards_in(conversation)
        return bool(cards and cards[-1]["content"])
    return len(stack.sink.messages) > messages_before


def first_text_ms(stream: bool, count: int, quotas: bool = False) -> List[float]:
    """``quotas``: daily limits on, so each answer first lists today's usage records (they never bind here)."""
    limits = {"QUOTA_USER_DAILY_MESSAGES": "1000000", "QUOTA_CONVERSATION_DAILY_TOKENS": "1000000000"}
    with tempfile.TemporaryDirectory(prefix="bench-ttft-") as state:
        settings = StackSettings(state_dir=Path(state), stream=stream, stream_delay=MODEL_CHUNK_SECONDS,
                                 reply_env={"TIMEOUT": "60", **(limits if quotas else {})})
        return _first_text_ms(settings, stream, count)


def _first_text_ms(settings: StackSettings, stream: bool, count: int) -> List[float]:
    samples = []
    with LocalStack(settings) as stack:
        stack.send("热身")
        for i in range(count):
            conversation, before = f"cid-ttft-{i}", len(stack.sink.messages)
            started = time.perf_counter()
            sender = threading.Thread(target=stack.send, args=(QUESTION,), kwargs={"conversation_id": conversation})
            sender.start()
            while not visible(stack, stream, conversation, before):
                assert sender.is_alive(), "the answer finished without any visible text"
                time.sleep(0.002)
            samples.append((time.perf_counter() - started) * 1000)
            sender.join()
    return samples


def run(section: Section, quick: bool) -> None:
    count = 3 if quick else 8
    webhook, card = first_text_ms(False, count), first_text_ms(True, count)
    section.add("long answer: first visible text, card streaming vs session webhook", median(card), median(webhook),
                "ms")
    section.notes.append(f"The offline model writes the long demo answer (about 12,000 characters) in 8-character "
                         f"chunks {MODEL_CHUNK_SECONDS * 1000:.0f} ms apart; the baseline column here is this "
                         "bundle's own webhook mode, where nothing shows until the whole answer exists.")
    limited = first_text_ms(True, count, quotas=True)
    section.add("card streaming: first visible text with daily quotas on vs off", median(limited), median(card), "ms",
                target="≤ 1.1×", met=median(limited) <= 1.1 * median(card))
    section.notes.append("With quotas on, each answer lists today's usage folder once before the model call (the "
                         "usage record itself is written after the answer was delivered).")
