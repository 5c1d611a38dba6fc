"""The openai SDK's client, one per endpoint, key and timeout, kept across warm invocations.

A module of its own, importing nothing of the reply path, so that ``preload.py`` can build it on a thread while
the main thread imports the stages: no two threads then import the same modules of ours in different orders.
A lock makes a caller that comes while the client is being built wait for it rather than build a second one.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_building = threading.Lock()


@functools.lru_cache(maxsize=4)
def _build(base_url: str, api_key: str, timeout: float) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


def cached_client(base_url: str, api_key: str, timeout: float) -> Any:
    """Retries are ours (``ChatModel``), bounded by the TIMEOUT budget, so the SDK makes none."""
    with _building:
        return _build(base_url, api_key, timeout)


cached_client.cache_clear = _build.cache_clear  # type: ignore[attr-defined]
cached_client.cache_info = _build.cache_info  # type: ignore[attr-defined]
