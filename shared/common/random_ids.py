"""Random identifiers: temporary files, claim owners, cards, request nonces.

Not ``uuid``: on Python 3.10 importing it imports ``platform`` and ``subprocess``, about 4 ms of
every cold start before the first card, for what is 16 random bytes either way.
"""

from __future__ import annotations

import os


def random_id() -> str:
    """32 hex characters from the OS's random source, as ``uuid.uuid4().hex`` would give."""
    return os.urandom(16).hex()
