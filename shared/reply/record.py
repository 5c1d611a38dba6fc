"""Last stage: what happened to the message, written down once.

Every handled message leaves one usage record (``oss/usage.py``: one small create, after the
answer was delivered, so it never delays the first visible text) and one JSON line in the log
(``summary.py``). Deliveries skipped as duplicates or replays are not handled messages and leave
only the log line.
"""

from __future__ import annotations

from typing import Any, Dict

from shared.reply.address import ChatAddress
from shared.reply.config.storage import Quotas
from shared.reply.oss.storage import Storage
from shared.reply.oss.usage import OUTCOMES, Entry, short
from shared.reply.outcomes import NOT_HANDLED, kind_of
from shared.reply.prices import cost_micro
from shared.reply.summary import Summary


def record(quotas: Quotas, storage: Storage, address: ChatAddress, msg_id: str, summary: Summary) -> None:
    summary.emit()
    kind = kind_of(summary.outcome)
    if kind == NOT_HANDLED:
        return
    usage = summary.usage
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    cost = cost_micro(summary.model, prompt, completion, quotas.prices)
    at_ms = int(storage.clock() * 1000)
    entry = Entry(at_ms, short(address.sender), short(address.conversation_id), kind,
                  prompt, completion, bool(usage and usage.estimated), cost)
    document = summary.document(summary.clock())
    body: Dict[str, Any] = {
        "at": at_ms, "conversation": address.conversation_id, "title": address.title,
        "sender": address.sender, "nick": address.nick, "model": summary.model or None,
        "prompt_tokens": prompt, "completion_tokens": completion, "estimated": entry.estimated,
        "cost_micro": cost, "tool_calls": summary.tool_calls, "card_calls": summary.card_calls,
        "first_text_ms": document["first_text_ms"], "total_ms": document["total_ms"],
        "outcome": OUTCOMES[entry.outcome], "settings": summary.settings, "robot": address.robot,
    }
    storage.record_usage(entry, msg_id, body, quotas.keep_days)
