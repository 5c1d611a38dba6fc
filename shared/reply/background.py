"""Work that overlaps a stage: started early, waited for by the stage that needs its result.

A small result holder of its own rather than ``concurrent.futures``: importing that package costs every cold
start a millisecond or two before the first card, for one thread and one result.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """A call running on a thread of its own; ``result()`` waits for it."""

    __slots__ = ("_done", "_value", "_error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None

    def result(self) -> T:
        """What the call returned; whatever it raised is raised again here, in the stage that waits for it, so an
        unexpected failure takes the same path as if it ran there."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def already(value: T) -> Pending[T]:
    """A result that needs no thread: what was known without waiting for anything."""
    pending: Pending[T] = Pending()
    pending._value = value
    pending._done.set()
    return pending


def in_background(call: Callable[[], T]) -> Pending[T]:
    pending: Pending[T] = Pending()

    def run() -> None:
        try:
            pending._value = call()
        except BaseException as exc:  # handed to the waiting stage, not swallowed
            pending._error = exc
        finally:
            pending._done.set()

    threading.Thread(target=run, daemon=True).start()
    return pending
