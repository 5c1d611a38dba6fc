"""One structured line per handled message, for the operator's log search (SLS).

A JSON object with what happened and what it cost, and nothing anyone wrote: the message and
the conversation appear as short hashes, never as text or raw ids, and no secret is in it.
Query it in SLS by ``event: dingbot.message`` and ``outcome``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from shared.common import log
from shared.reply.oss.history import digest

if TYPE_CHECKING:  # the model stage loads after the first card (replier.py)
    from shared.reply.llm.model import Usage

EVENT = "dingbot.message"

logger = log.get("summary")


class Summary:
    """Filled in as the message is handled; ``started`` and the other times are ``clock`` readings."""

    __slots__ = ("msg_id", "conversation", "clock", "started", "first_text", "outcome", "model", "usage",
                 "card_calls", "tool_calls", "storage", "settings")

    def __init__(self, msg_id: str, conversation: str, clock: Callable[[], float] = time.monotonic,
                 started: float = 0.0) -> None:
        self.msg_id = msg_id
        self.conversation = conversation
        self.clock = clock
        self.started = started or clock()
        self.first_text: Optional[float] = None
        self.outcome = ""
        self.model = ""
        self.usage: Optional[Usage] = None
        self.card_calls = 0
        self.tool_calls = 0
        self.storage = ""
        self.settings: Dict[str, str] = {}  # items not at their default, and who set them

    def shown(self, at: Optional[float]) -> None:
        """The user saw text at ``at`` (a card update or a message accepted); the earliest counts."""
        if at is not None and (self.first_text is None or at < self.first_text):
            self.first_text = at

    def document(self, now: float) -> Dict[str, Any]:
        def ms(at: Optional[float]) -> Optional[int]:
            return None if at is None else round((at - self.started) * 1000)

        usage = self.usage
        return {
            "event": EVENT, "msg": digest(self.msg_id, 16), "conversation": digest(self.conversation, 16),
            "outcome": self.outcome, "first_text_ms": ms(self.first_text), "total_ms": ms(now),
            "model": self.model or None,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "tokens_estimated": bool(usage and usage.estimated),
            "card_calls": self.card_calls, "tool_calls": self.tool_calls, "storage": self.storage,
            "settings": self.settings,
        }

    def emit(self) -> None:
        logger.info(json.dumps(self.document(self.clock()), ensure_ascii=False, separators=(",", ":")),
                    extra={log.PLAIN: True})
