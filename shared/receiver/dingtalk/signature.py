"""DingTalk callback signature check: pure, clock injected, knows nothing of FC.

DingTalk signs each callback with ``sign = base64(HMAC-SHA256(appSecret, timestamp + "\\n" +
appSecret))`` and documents that a timestamp more than one hour from the server clock is
invalid, which bounds how long a captured request can be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Sequence, Tuple

from shared.common.errors import SignatureError

# Checked before any arithmetic: ``str.isdigit`` accepts "²" and full-width digits, and ``int``
# refuses thousands of digits with an exception of its own.
TIMESTAMP = re.compile(r"[0-9]{1,16}")
SIGN = re.compile(r"[A-Za-z0-9+/=]{1,128}")


def compute_sign(app_secret: str, timestamp: str) -> str:
    digest = hmac.new(app_secret.encode("utf-8"), f"{timestamp}\n{app_secret}".encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_id(timestamp: str, sign: str) -> str:
    """A short id of one signed request, carried with its message: DingTalk's sign covers only the
    timestamp, so the reply function binds each (timestamp, sign) pair to the first message it carried."""
    return hashlib.sha256(f"{timestamp}\n{sign.strip()}".encode("utf-8")).hexdigest()[:32]


def verify_signature(app_secret: str, timestamp: str | None, sign: str | None, *, now_ms: int,
                     window_seconds: int) -> None:
    """Raise ``SignatureError`` unless ``sign`` is DingTalk's and ``timestamp`` is fresh."""
    signing_robot((("", app_secret),), timestamp, sign, now_ms=now_ms, window_seconds=window_seconds)


def signing_robot(robots: Sequence[Tuple[str, str]], timestamp: str | None, sign: str | None, *, now_ms: int,
                  window_seconds: int) -> str:
    """The name of the robot whose app secret signed the request (``robots``: ``(name, secret)`` pairs), or
    ``SignatureError``. Every secret is tried, each compared in constant time, so neither a match nor its place
    in the list shows in the time the check takes."""
    if not any(secret for _, secret in robots):
        raise SignatureError("no app secret configured")
    if not timestamp or not sign:
        raise SignatureError("missing timestamp or sign header")
    if not TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("timestamp is not a millisecond number")
    if not SIGN.fullmatch(sign.strip()):
        raise SignatureError("sign is not base64")
    if abs(now_ms - int(timestamp)) > window_seconds * 1000:
        raise SignatureError("timestamp outside the allowed window")
    given = sign.strip().encode("ascii")
    matches = [name for name, secret in robots
               if hmac.compare_digest(compute_sign(secret, timestamp).encode("ascii"), given) and secret]
    if not matches:
        raise SignatureError("signature mismatch")
    return matches[0]
