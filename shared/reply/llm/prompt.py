"""The messages sent to the model: the persona, the conversation's recent turns, the question.

A prompt can be made to fit: ``MAX_CONTEXT_TOKENS`` (optional) caps its estimated size before
the call, and a model that still answers "context length exceeded" gets the same question with
the oldest turns dropped. The estimate needs no tokenizer (nothing is downloaded at run time):
CJK characters cost about 0.6 token each and other characters about 0.3, which errs on the
large side for the common tokenizers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 1000


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF or \
        0xFF00 <= code <= 0xFFEF or 0x20000 <= code <= 0x2FA1F


def estimate_tokens(text: str) -> float:
    cjk = sum(1 for char in text if _is_cjk(char))
    return cjk * 0.6 + (len(text) - cjk) * 0.3


def _content_tokens(content: Any) -> float:
    """Plain text, or OpenAI content parts (text and images)."""
    if isinstance(content, str):
        return estimate_tokens(content)
    return sum(estimate_tokens(part.get("text", "")) if part.get("type") == "text" else IMAGE_TOKENS
               for part in content)


@dataclass(frozen=True)
class Prompt:
    """``question`` is a string, or a list of OpenAI content parts when the message holds pictures."""

    question: Any
    history: Tuple[Tuple[str, str], ...] = ()
    system: Optional[str] = None
    knowledge: Optional[str] = None  # excerpts of the team's documents, as data (``knowledge/retrieve.py``)
    now: Optional[str] = None  # the date and time in TZ, so "今天"/"明天" need no tool
    exchange: Tuple[Dict[str, Any], ...] = ()  # this answer's tool calls and their results, after the question

    @property
    def has_images(self) -> bool:
        return not isinstance(self.question, str) and any(p.get("type") == "image_url" for p in self.question)

    def messages(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = [{"role": "system", "content": self.system}] if self.system else []
        if self.now:
            out.append({"role": "system", "content": self.now})
        if self.knowledge:
            out.append({"role": "system", "content": self.knowledge})
        for asked, answered in self.history:
            out += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return out + [{"role": "user", "content": self.question}] + list(self.exchange)

    def texts(self) -> List[str]:
        """The text of every message (pictures left out): what the conversation holds."""
        return [content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
                for content in (m.get("content") for m in self.messages()) if content]

    def tokens(self) -> float:
        return sum(_content_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in self.messages())

    def without_oldest(self, turns: int) -> "Prompt":
        return replace(self, history=self.history[turns:])

    def fitted(self, max_tokens: Optional[int]) -> "Prompt":
        """The most recent turns that fit ``max_tokens`` (all of them when there is no cap)."""
        prompt = self
        while max_tokens and prompt.history and prompt.tokens() > max_tokens:
            prompt = prompt.without_oldest(1)
        return prompt

    def shortened(self) -> Optional["Prompt"]:
        """After "context length exceeded": at least half of the turns, the oldest, dropped; None when
        there is nothing left to drop."""
        if not self.history:
            return None
        return self.without_oldest(max(1, (len(self.history) + 1) // 2))


def build_prompt(question: Any, history: List[Dict[str, str]], system_prompt: Optional[str],
                 knowledge: Optional[str] = None, now: Optional[str] = None) -> Prompt:
    """``history`` as chat messages, oldest first (user, assistant, user, assistant ...)."""
    pairs = tuple((history[i]["content"], history[i + 1]["content"]) for i in range(0, len(history) - 1, 2))
    return Prompt(question, pairs, system_prompt, knowledge, now)
