"""Exceptions that carry meaning; the edges map them to HTTP statuses or chat messages."""

from __future__ import annotations

from typing import List, Sequence


class DingbotError(Exception):
    """Base class for every error this bundle raises on purpose."""


class ConfigError(DingbotError):
    """A setting is missing or malformed; the message names the variable and the fix.

    ``all`` lists this problem and any others found in the same environment, so a check can
    report every one of them at once. ``problem`` is for the log (English); ``hint`` says the same
    to the person at the terminal (``make doctor``, ``make run``), in Chinese.
    """

    def __init__(self, variable: str, problem: str, *, hint: str = "", more: Sequence["ConfigError"] = ()) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem
        self.hint = hint or problem
        self.all: List["ConfigError"] = [self, *more]


class SignatureError(DingbotError):
    """The callback is not provably from DingTalk (bad, missing or stale signature)."""


class MalformedRequest(DingbotError):
    """The callback body is not the JSON DingTalk sends."""


class InvokeError(DingbotError):
    """The reply function could not be handed the message."""


class LLMError(DingbotError):
    """The model gave no usable answer; ``user_message`` is what the chat is told."""

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message


class WebhookError(DingbotError):
    """DingTalk did not accept a message posted to the session webhook.

    ``retryable``: a later attempt may succeed. ``gone``: the session itself has expired, so only
    another channel (the robot OpenAPI) can still reach the chat. ``throttled``: DingTalk blocks the
    robot's webhook for minutes, which no retry within seconds outlasts; another channel may still work.
    """

    def __init__(self, detail: str, *, retryable: bool = False, gone: bool = False, throttled: bool = False) -> None:
        super().__init__(detail)
        self.retryable = retryable
        self.gone = gone
        self.throttled = throttled

    @property
    def another_way(self) -> bool:
        """The robot OpenAPI may still reach the chat where this webhook cannot."""
        return self.gone or self.throttled
