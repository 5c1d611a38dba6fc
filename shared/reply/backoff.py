"""One retry policy for everything the reply function calls: the model, the webhook, the OpenAPI.

Capped exponential backoff with jitter (so instances that failed together do not retry
together), a server's own ``Retry-After`` honoured, and a deadline that no wait may pass.
"""

from __future__ import annotations

import random
from typing import Callable, NamedTuple, Optional


class Backoff(NamedTuple):
    """Exponential backoff with jitter, capped; a server's ``Retry-After`` wins when it is longer."""

    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)) * (0.5 + self.jitter())
        return max(delay, retry_after) if retry_after is not None else delay


def fits(now: float, delay: float, deadline: Optional[float], room: float = 0.0) -> bool:
    """Whether waiting ``delay`` still leaves ``room`` seconds before ``deadline`` (None: no deadline)."""
    return deadline is None or now + delay + room < deadline
