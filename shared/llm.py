"""The model call, through the ``openai`` SDK, with failures turned into one readable sentence.

The SDK is imported on first use: it is the heaviest import of the bundle, and a command such
as ``\\clear`` never needs it.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional

from shared import log, texts
from shared.config import ReplyConfig
from shared.errors import LLMError

logger = log.get("llm")


@functools.lru_cache(maxsize=4)
def _client(base_url: str, api_key: str, timeout: float, max_retries: int) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def build_messages(question: str, history: List[Dict[str, str]], system_prompt: Optional[str]) -> List[Dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + history + [{"role": "user", "content": question}]


def _user_message(exc: Exception) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return texts.TIMEOUT
    if isinstance(exc, openai.RateLimitError):
        return texts.RATE_LIMITED
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return texts.AUTH_FAILED
    if isinstance(exc, openai.APIStatusError):
        template = texts.UNAVAILABLE if exc.status_code >= 500 else texts.REJECTED
        return template.format(status=exc.status_code)
    if isinstance(exc, openai.APIConnectionError):
        return texts.UNREACHABLE
    return texts.INTERNAL


class ChatModel:
    """One question, answered with the conversation's recent turns."""

    def __init__(self, config: ReplyConfig) -> None:
        self.config = config

    def answer(self, messages: List[Dict[str, str]]) -> str:
        import openai

        client = _client(self.config.llm_base_url, self.config.api_key, self.config.timeout_seconds,
                         self.config.llm_max_retries)
        options: Dict[str, Any] = {"model": self.config.model, "messages": messages}
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        try:
            completion = client.chat.completions.create(**options)
        except openai.OpenAIError as exc:
            logger.error("model call failed: %s: %s", type(exc).__name__, exc)
            raise LLMError(_user_message(exc), f"{type(exc).__name__}: {exc}") from None
        choices = getattr(completion, "choices", None) or []
        content = (choices[0].message.content or "").strip() if choices and choices[0].message else ""
        if not content:
            logger.error("model returned no text (choices=%d)", len(choices))
            raise LLMError(texts.EMPTY_ANSWER, "empty answer")
        return content
