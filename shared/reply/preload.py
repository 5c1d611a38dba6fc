"""The model SDK, imported and its client built on a thread of its own while the first stages wait.

On a cold instance the openai SDK's import and its client (an SSL context with the CA bundle) take about half
a second of CPU. The stages before the model request mostly wait for the network: the claim and the history
on the mount, the DingTalk token, the first card. A thread that loads the SDK meanwhile runs while the main
thread waits (a thread waiting on a socket gives up the interpreter lock), so the model request is ready
about when the network is; ``make bench`` measures it under FC's latencies ("Cold and warm paths"). The
main thread, when it needs the SDK, waits for this import to finish (Python's import lock) rather than
importing twice. On a warm instance the SDK is there already and nothing starts.
"""

from __future__ import annotations

import sys
import threading

from shared.common import log
from shared.reply.config.model import ModelSettings

logger = log.get("reply")
_started = threading.Lock()


def load_model_sdk(settings: ModelSettings) -> None:
    """Start loading the SDK and the client for ``settings`` unless this instance has (idempotent, non-blocking)."""
    if "openai" in sys.modules or not _started.acquire(blocking=False):
        return
    threading.Thread(target=_load, args=(settings,), name="load-model-sdk", daemon=True).start()


def _load(settings: ModelSettings) -> None:
    try:
        from shared.reply.llm.client import cached_client

        cached_client(settings.base_url, settings.api_key, settings.timeout_seconds)
    except Exception as exc:  # the model stage imports it again and reports what fails there
        logger.warning("loading the model SDK ahead failed: %s", exc)
