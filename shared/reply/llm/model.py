"""The model call, through the ``openai`` SDK, with failures turned into one readable sentence.

The SDK is imported on first use: it is the heaviest import of the bundle, and a command such
as ``\\clear`` never needs it.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.backoff import Backoff, fits
from shared.reply.config import ReplyConfig

logger = log.get("llm")

MIN_ATTEMPT_SECONDS = 1.0


@functools.lru_cache(maxsize=4)
def _client(base_url: str, api_key: str, timeout: float) -> Any:
    """Cached across warm invocations; retries are ours, bounded by the TIMEOUT budget."""
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


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
    """One question, answered with the conversation's recent turns.

    ``TIMEOUT`` bounds the whole answer, retries included: each attempt gets what is left of the
    budget, and a retry (connection error, 429, 5xx, up to ``LLM_MAX_RETRIES``) is made only when
    its backoff still leaves time for a useful attempt. 429 honours ``Retry-After``.
    """

    def __init__(self, config: ReplyConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, backoff: Backoff = Backoff()) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff
        self.deadline = 0.0

    def _create(self, messages: List[Dict[str, str]], **extra: Any) -> Any:
        """One completion request, retried within the TIMEOUT budget; raises ``LLMError``."""
        import openai

        client = _client(self.config.llm_base_url, self.config.api_key, self.config.timeout_seconds)
        options: Dict[str, Any] = {"model": self.config.model, "messages": messages, **extra}
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        self.deadline = self.clock() + self.config.timeout_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                remaining = max(self.deadline - self.clock(), 0.1)
                return client.with_options(timeout=remaining).chat.completions.create(**options)
            except openai.OpenAIError as exc:
                delay = self._retry_delay(exc, attempt, self.deadline)
                if delay is None:
                    logger.error("model call failed after %d attempt(s): %s: %s", attempt, type(exc).__name__, exc)
                    raise LLMError(_user_message(exc), f"{type(exc).__name__}: {exc}") from None
                logger.warning("model call failed (%s), retry %d in %.2fs", type(exc).__name__, attempt, delay)
                self.sleep(delay)

    def answer(self, messages: List[Dict[str, str]]) -> str:
        completion = self._create(messages)
        choices = getattr(completion, "choices", None) or []
        content = (choices[0].message.content or "").strip() if choices and choices[0].message else ""
        if not content:
            logger.error("model returned no text (choices=%d)", len(choices))
            raise LLMError(texts.EMPTY_ANSWER, "empty answer")
        return content

    def stream(self, messages: List[Dict[str, str]]) -> Iterator[str]:
        """The answer as it is written (``stream=True``). Opening the stream is retried like ``answer``;
        a failure after text has arrived is not, since that text is already on screen."""
        import openai

        chunks = self._create(messages, stream=True)
        received, finished = False, False
        try:
            for chunk in chunks:
                if self.clock() > self.deadline:
                    raise LLMError(texts.TIMEOUT, "stream exceeded TIMEOUT")
                choice = chunk.choices[0] if chunk.choices else None
                finished = finished or bool(choice and choice.finish_reason)
                if choice and choice.delta and choice.delta.content:
                    received = True
                    yield choice.delta.content
        except LLMError:
            raise
        except openai.OpenAIError as exc:
            logger.error("model stream broke off: %s: %s", type(exc).__name__, exc)
            raise LLMError(_user_message(exc), f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # the HTTP client's own errors when a connection drops mid-stream
            logger.error("model stream broke off: %s: %s", type(exc).__name__, exc)
            raise LLMError(texts.INTERRUPTED, f"{type(exc).__name__}: {exc}") from None
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        if not finished:
            logger.error("model stream ended without a finish_reason")
            raise LLMError(texts.INTERRUPTED, "stream ended early")
        if not received:
            raise LLMError(texts.EMPTY_ANSWER, "empty streamed answer")

    def _retry_delay(self, exc: Exception, attempt: int, deadline: float) -> Optional[float]:
        """Seconds to wait before the next attempt, or None when no retry is due or affordable."""
        import openai

        if attempt > self.config.llm_max_retries or isinstance(exc, openai.APITimeoutError):
            return None
        if not isinstance(exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)):
            return None
        delay = self.backoff.delay(attempt, _retry_after(exc))
        return delay if fits(self.clock(), delay, deadline, MIN_ATTEMPT_SECONDS) else None


def _retry_after(exc: Exception) -> Optional[float]:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
