"""A response body read up to a size limit, for downloads from outside (message files, links).

A declared ``Content-Length`` over the limit is refused before a byte is read; a body that declares
nothing (or less than it sends) is refused as soon as more than the limit has arrived, so memory
never holds more than the limit and one chunk.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

CHUNK = 64 * 1024


def read_bounded(chunks: Iterable[bytes], declared: Optional[str], limit: int,
                 too_large: Callable[[str], Exception]) -> bytes:
    """The whole body from ``chunks`` (read lazily); raises ``too_large(detail)`` past ``limit``."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"{declared} bytes declared")
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise too_large("more than the limit arrived")
    return bytes(data)
