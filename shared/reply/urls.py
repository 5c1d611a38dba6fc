"""A URL as the HTTP client will send it: the one parse that every check of an outgoing address looks at.

Its own module, so the session-webhook check on every message's path does not load the address guard
(``netguard.py``, with ``ipaddress`` and the resolver), which only links, files and tools need.
"""

from __future__ import annotations

from typing import Tuple

import requests
from urllib3.util import Url, parse_url


def parse_once(url: str) -> Tuple[str, Url]:
    """The URL as the HTTP client will send it (``requests`` prepares it) and its parts as ``urllib3`` splits
    it: checks look at exactly what is sent. Raises ``ValueError``."""
    prepared = requests.models.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        return prepared.url, parse_url(prepared.url)
    except (requests.RequestException, ValueError) as exc:
        raise ValueError(type(exc).__name__) from None
