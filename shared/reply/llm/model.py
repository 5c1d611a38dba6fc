"""The model call, through the ``openai`` SDK, with failures turned into one readable sentence.

The SDK is imported on first use: it is the heaviest import of the bundle, and a command such
as ``\\clear`` never needs it.

``TIMEOUT`` is a wall-clock deadline on the whole call, counted from the request (``prepare``: the
SDK's import on a cold instance is not the model's time): the SDK's timeouts are per read, so a
server that sends SSE keep-alive comments, or drips whitespace into a non-streamed answer,
would hold the call for ever. A watchdog (``watchdog.py``) closes the client when the time is
up; the call then ends with the timeout sentence, and the next call builds a new client.

Every call leaves its token counts in ``usage``: the API's own ``usage`` (asked for when
streaming with ``stream_options.include_usage``), or, from a provider that sends none, an
estimate marked as such. A provider that refuses ``stream_options`` is asked again without it,
and the instance remembers not to send it there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.backoff import Backoff, fits
from shared.reply.config.model import ModelSettings
from shared.reply.llm.client import cached_client as _client
from shared.reply.llm.prompt import Prompt, estimate_tokens
from shared.reply.llm.reasoning import Split, split_reasoning
from shared.reply.watchdog import Watchdog

logger = log.get("llm")

MIN_ATTEMPT_SECONDS = 1.0
CONTEXT_OVERFLOW_HINTS = ("context_length_exceeded", "context length", "maximum context", "too many tokens",
                          "prompt is too long", "input is too long")
IMAGE_REFUSAL_HINTS = ("image", "vision", "multimodal", "image_url")
# Endpoints (base URLs) that refused stream_options, and (base URL, model) pairs that refused tools, per instance.
_NO_STREAM_OPTIONS: Set[str] = set()
_NO_TOOLS: Set[Tuple[str, str]] = set()
TOOL_REFUSAL_HINTS = ("tool", "function")


@dataclass(frozen=True)
class Usage:
    """Tokens one answer cost; ``estimated`` when the provider reported none and they were counted here."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @classmethod
    def of(cls, reported: Any) -> Optional["Usage"]:
        """The API's ``usage`` object, or None when it has none (or only zeros, as some proxies send)."""
        prompt = getattr(reported, "prompt_tokens", None)
        completion = getattr(reported, "completion_tokens", None)
        if not isinstance(prompt, int) or not isinstance(completion, int) or prompt + completion <= 0:
            return None
        return cls(prompt, completion)

    @classmethod
    def estimate(cls, prompt: Prompt, answer: str) -> "Usage":
        return cls(round(prompt.tokens()), round(estimate_tokens(answer)), estimated=True)


def _close_client(base_url: str, api_key: str, timeout: float) -> None:
    """Close the cached client (and with it the connection a call is blocked on) and forget it."""
    client = _client(base_url, api_key, timeout)
    _client.cache_clear()
    client.close()


def _mentions(exc: Exception, hints: tuple) -> bool:
    text = f"{getattr(exc, 'code', '') or ''} {getattr(exc, 'message', '') or exc}".lower()
    return any(hint in text for hint in hints)


def _user_message(exc: Exception, prompt: Prompt) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return texts.TIMEOUT
    if isinstance(exc, openai.RateLimitError):
        return texts.RATE_LIMITED
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return texts.AUTH_FAILED
    if isinstance(exc, openai.BadRequestError) and prompt.has_images and _mentions(exc, IMAGE_REFUSAL_HINTS):
        return texts.CANNOT_SEE
    if isinstance(exc, openai.NotFoundError):
        return texts.NOT_FOUND  # a wrong endpoint path or model name: configuration, not the question
    if isinstance(exc, openai.APIStatusError):
        template = texts.UNAVAILABLE if exc.status_code >= 500 else texts.REJECTED
        return template.format(status=exc.status_code)
    if isinstance(exc, openai.APIConnectionError):
        return texts.UNREACHABLE
    return texts.INTERNAL


@dataclass(frozen=True)
class Delta:
    """A streamed piece: answer text (reasoning may be inline in it), a separate reasoning delta, and pieces
    of tool calls (``(index, id, name, arguments fragment)``, as OpenAI streams them)."""

    content: str = ""
    reasoning: str = ""
    tool_calls: Tuple[Tuple[int, str, str, str], ...] = ()


class ChatModel:
    """One question, answered with the conversation's recent turns.

    ``TIMEOUT`` bounds the whole answer, retries included: each attempt gets what is left of the
    budget, and a retry (connection error, 429, 5xx, up to ``LLM_MAX_RETRIES``) is made only when
    its backoff still leaves time for a useful attempt. 429 honours ``Retry-After``. A prompt the
    model finds too long is asked once more with the oldest turns dropped.
    """

    def __init__(self, settings: ModelSettings, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, backoff: Backoff = Backoff()) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff
        self.deadline = 0.0
        self.usage: Optional[Usage] = None
        self.used_model = ""
        self.sent = Prompt("")
        self.watchdog: Optional[Watchdog] = None
        # Set by the tool loop: the answer's own deadline, which no single request may pass.
        self.overall_deadline: Optional[float] = None

    def _start_watchdog(self) -> Watchdog:
        settings = self.settings
        self.watchdog = Watchdog(self.deadline - self.clock(), lambda: _close_client(
            settings.base_url, settings.api_key, settings.timeout_seconds)).start()
        return self.watchdog

    def _raise_if_timed_out(self) -> None:
        """The timeout sentence when the watchdog cut the call, whatever error the closed connection left."""
        if self.watchdog is not None and self.watchdog.fired:
            logger.error("model call cut at TIMEOUT=%ss (the server kept the connection busy)",
                         self.settings.timeout_seconds)
            raise LLMError(texts.TIMEOUT, "TIMEOUT passed") from None

    def _fit(self, prompt: Prompt) -> Prompt:
        limit = self.settings.max_context_tokens
        fitted = prompt.fitted(limit)
        if limit and fitted.tokens() > limit:
            raise LLMError(texts.TOO_LONG, f"the question alone is about {fitted.tokens():.0f} tokens, over "
                                           f"MAX_CONTEXT_TOKENS={limit}")
        if len(fitted.history) < len(prompt.history):
            logger.info("MAX_CONTEXT_TOKENS=%d: sent %d of %d turns", limit, len(fitted.history), len(prompt.history))
        return fitted

    def prepare(self) -> Any:
        """The SDK imported and its client built: on a cold instance that takes a good part of a second, which
        is this instance's time, not the model's, so every ``TIMEOUT`` is counted from after it."""
        import openai  # noqa: F401  (the import is the point)

        return _client(self.settings.base_url, self.settings.api_key, self.settings.timeout_seconds)

    def _create(self, prompt: Prompt, **extra: Any) -> Any:
        """One completion request, retried within the TIMEOUT budget; raises ``LLMError``. The watchdog it
        starts is stopped by the caller once the answer is read, or here when no answer comes."""
        self.prepare()
        self.deadline = self.clock() + self.settings.timeout_seconds
        if self.overall_deadline is not None:
            self.deadline = min(self.deadline, self.overall_deadline)
        watchdog = self._start_watchdog()
        try:
            return self._attempts(self._fit(prompt), extra)
        except BaseException:
            watchdog.stop()
            raise

    def _attempts(self, prompt: Prompt, extra: Dict[str, Any]) -> Any:
        import openai

        client = self.prepare()
        attempt, shortened = 0, False
        while True:
            attempt += 1
            settings = self.settings
            options: Dict[str, Any] = {"model": settings.vision_model if prompt.has_images else settings.model,
                                       "messages": prompt.messages(), **extra}
            if extra.get("stream") and self.settings.base_url not in _NO_STREAM_OPTIONS:
                options["stream_options"] = {"include_usage": True}
            if not options.get("tools") or (self.settings.base_url, options["model"]) in _NO_TOOLS:
                options.pop("tools", None)
            if self.settings.temperature is not None:
                options["temperature"] = self.settings.temperature
            self.used_model, self.sent = options["model"], prompt
            try:
                remaining = max(self.deadline - self.clock(), 0.1)
                return client.with_options(timeout=remaining).chat.completions.create(**options)
            except openai.BadRequestError as exc:
                self._raise_if_timed_out()
                if "stream_options" in options and _mentions(exc, ("stream_options", "include_usage")):
                    logger.info("the model endpoint refuses stream_options: token counts will be estimated")
                    _NO_STREAM_OPTIONS.add(self.settings.base_url)
                    continue
                if "tools" in options and _mentions(exc, TOOL_REFUSAL_HINTS):
                    logger.warning("the model %s refuses tools: asked again without them (remembered)",
                                   options["model"])
                    _NO_TOOLS.add((self.settings.base_url, options["model"]))
                    continue
                overflow = _mentions(exc, CONTEXT_OVERFLOW_HINTS)
                shorter = prompt.shortened() if overflow and not shortened else None
                if shorter is None or not fits(self.clock(), 0.0, self.deadline, MIN_ATTEMPT_SECONDS):
                    message = texts.TOO_LONG if overflow else _user_message(exc, prompt)
                    logger.error("model refused the request: %s", exc)
                    raise LLMError(message, f"{type(exc).__name__}: {exc}") from None
                logger.warning("the model's context is full: dropped the %d oldest of %d turns and asked again",
                               len(prompt.history) - len(shorter.history), len(prompt.history))
                prompt, shortened = shorter, True
            except openai.OpenAIError as exc:
                self._raise_if_timed_out()
                delay = self._retry_delay(exc, attempt, self.deadline)
                if delay is None:
                    logger.error("model call failed after %d attempt(s): %s: %s", attempt, type(exc).__name__, exc)
                    raise LLMError(_user_message(exc, prompt), f"{type(exc).__name__}: {exc}") from None
                logger.warning("model call failed (%s), retry %d in %.2fs", type(exc).__name__, attempt, delay)
                self.sleep(delay)
            except Exception:
                self._raise_if_timed_out()
                raise

    def answer(self, prompt: Prompt) -> Split:
        try:
            completion = self._create(prompt)
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()
        choices = getattr(completion, "choices", None) or []
        message = choices[0].message if choices else None
        split = split_reasoning(getattr(message, "content", None) or "")
        reasoning = getattr(message, "reasoning_content", None) or split.reasoning
        answer = split.answer.strip()
        self.usage = Usage.of(getattr(completion, "usage", None)) or Usage.estimate(self.sent, split.answer)
        if not answer:
            logger.error("model returned no answer text (choices=%d)", len(choices))
            raise LLMError(texts.EMPTY_ANSWER, "empty answer")
        return Split(answer, reasoning if isinstance(reasoning, str) else "")

    def stream(self, prompt: Prompt, tools: Optional[List[Dict[str, Any]]] = None) -> Iterator[Delta]:
        """The answer as it is written (``stream=True``), with ``tools`` offered when given. Opening the
        stream is retried like ``answer``; a failure after text has arrived is not, since that text is
        already on screen. A round that only calls tools is a complete answer too."""
        import openai

        chunks = self._create(prompt, stream=True, **({"tools": tools} if tools else {}))
        received, finished, written = False, False, []
        try:
            for chunk in chunks:
                if self.clock() > self.deadline:
                    raise LLMError(texts.TIMEOUT, "stream exceeded TIMEOUT")
                self.usage = Usage.of(getattr(chunk, "usage", None)) or self.usage
                choice = chunk.choices[0] if chunk.choices else None
                finished = finished or bool(choice and choice.finish_reason)
                delta = choice.delta if choice else None
                content = (getattr(delta, "content", None) or "") if delta else ""
                reasoning = (getattr(delta, "reasoning_content", None) or "") if delta else ""
                calls = _tool_call_pieces(delta)
                if content or reasoning or calls:
                    received = received or bool(content) or bool(calls)
                    written.append(content)
                    yield Delta(content, reasoning if isinstance(reasoning, str) else "", calls)
        except LLMError:
            raise
        except openai.OpenAIError as exc:
            self._raise_if_timed_out()
            logger.error("model stream broke off: %s: %s", type(exc).__name__, exc)
            raise LLMError(_user_message(exc, prompt), f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # the HTTP client's own errors when a connection drops mid-stream
            self._raise_if_timed_out()
            logger.error("model stream broke off: %s: %s", type(exc).__name__, exc)
            raise LLMError(texts.INTERRUPTED, f"{type(exc).__name__}: {exc}") from None
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()
            close = getattr(chunks, "close", None)
            if close:
                close()
            if self.usage is None:
                self.usage = Usage.estimate(self.sent, "".join(written))
        if not finished:
            logger.error("model stream ended without a finish_reason")
            raise LLMError(texts.INTERRUPTED, "stream ended early")
        if not received:
            raise LLMError(texts.EMPTY_ANSWER, "empty streamed answer")

    def _retry_delay(self, exc: Exception, attempt: int, deadline: float) -> Optional[float]:
        """Seconds to wait before the next attempt, or None when no retry is due or affordable."""
        import openai

        if attempt > self.settings.max_retries or isinstance(exc, openai.APITimeoutError):
            return None
        if not isinstance(exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)):
            return None
        delay = self.backoff.delay(attempt, _retry_after(exc))
        return delay if fits(self.clock(), delay, deadline, MIN_ATTEMPT_SECONDS) else None


def _tool_call_pieces(delta: Any) -> Tuple[Tuple[int, str, str, str], ...]:
    pieces = []
    for call in (getattr(delta, "tool_calls", None) or []) if delta is not None else []:
        function = getattr(call, "function", None)
        pieces.append((int(getattr(call, "index", 0) or 0), getattr(call, "id", None) or "",
                       getattr(function, "name", None) or "", getattr(function, "arguments", None) or ""))
    return tuple(pieces)


def _retry_after(exc: Exception) -> Optional[float]:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
