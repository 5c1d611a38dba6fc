"""Work that overlaps a stage: started early, waited for by the stage that needs its result."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable


def in_background(call: Callable[[], Any]) -> Future:
    """``call`` on a thread of its own. Whatever it raises is raised again by ``result()``, in the
    stage that waits for it, so an unexpected failure takes the same path as if it ran there."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the waiting stage, not swallowed
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future
