"""The model SDK, imported and its client built on a thread of its own while the first stages wait.

On a cold instance the openai SDK's import and its client (an SSL context with the CA bundle) take about half
a second of CPU. The stages before the model request mostly wait for the network: the claim and the history
on the mount, the DingTalk token, the first card. A thread that loads the SDK meanwhile runs while the main
thread waits (a thread waiting on a socket gives up the interpreter lock), so the model request is ready
about when the network is; ``make bench`` measures it under FC's latencies ("Cold and warm paths"). The
main thread, when it needs the SDK, waits for this import to finish (Python's import lock) rather than
importing twice. On a warm instance the SDK is there already and nothing starts.

The thread begins ``DELAY_SECONDS`` after it is started: the few milliseconds of CPU from the handler's
start to the first card request are then not shared with the import (both need the one interpreter
lock), while every wait on FC (the first is the claim, a mount operation of tens of milliseconds) is
still overlapped.
"""

from __future__ import annotations

import sys
import threading
import time

from shared.common import log
from shared.reply.config.model import ModelSettings

logger = log.get("reply")
_started = threading.Lock()
DELAY_SECONDS = 0.01


def load_model_sdk(settings: ModelSettings) -> None:
    """Start loading the SDK and the client for ``settings`` unless this instance has (idempotent, non-blocking)."""
    if "openai" in sys.modules or not _started.acquire(blocking=False):
        return
    threading.Thread(target=_load, args=(settings,), name="load-model-sdk", daemon=True).start()


def _load(settings: ModelSettings) -> None:
    time.sleep(DELAY_SECONDS)
    try:
        from shared.reply.llm.client import cached_client

        cached_client(settings.base_url, settings.api_key, settings.timeout_seconds)
    except Exception as exc:  # the model stage imports it again and reports what fails there
        logger.warning("loading the model SDK ahead failed: %s", exc)
