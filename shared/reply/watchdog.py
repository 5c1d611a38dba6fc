"""A wall-clock deadline for calls whose own timeouts are per read.

HTTP clients time out a read that waits too long, not a response that never ends: a server
that sends a byte (an SSE keep-alive comment, a space, the next byte of a ``Content-Length``
body) just before each read timeout keeps a call alive for ever. A watchdog thread runs
``expire`` (closing the response or the client) when the deadline passes, so the reader's
next read fails, and the caller, seeing ``fired``, reports a timeout instead of whatever error
the closed connection raised.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Callable, Optional, Type


class Watchdog:
    def __init__(self, seconds: float, expire: Callable[[], None]) -> None:
        self.seconds = max(seconds, 0.0)
        self.expire = expire
        self.fired = False
        self._timer: Optional[threading.Timer] = None

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(Exception):  # closing a connection that is already gone
            self.expire()

    def start(self) -> "Watchdog":
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.stop()
