"""One signed request, one message: the first message a DingTalk signature carried is the only one.

DingTalk's callback signature covers the timestamp alone, so a captured ``timestamp``/``sign``
pair would authorise any body for the hour the receiver accepts it: the victim's
``conversationId`` with the attacker's session webhook would print the victim's history in the
attacker's chat. The receiver passes a hash of the pair with the message; here the pair is
bound, create-if-absent, to the first msgId it carried, and a different message with the same
pair is refused. DingTalk's own retries carry the same message, so they pass. DingTalk signs
the timestamp in milliseconds, so two messages it pushes in the same millisecond share a pair:
a second message that the receiver got within ``SAME_PUSH_MS`` of the first is let through (a
replay needs a capture first, then arrives later). Records outlive the receiver's one-hour
window and are deleted after ``KEEP_MS``.
"""

from __future__ import annotations

import time
from typing import Callable

from shared.reply.oss.blobs import Blobs, decode, encode
from shared.reply.oss.history import digest

FOLDER = "signatures/"
KEEP_MS = 2 * 3600 * 1000
SAME_PUSH_MS = 2000


class Signatures:
    def __init__(self, blobs: Blobs, *, atomic_create: bool, clock: Callable[[], float] = time.time) -> None:
        self.blobs = blobs
        self.atomic_create = atomic_create
        self.clock = clock

    def bind(self, signature: str, msg_id: str, received_ms: int) -> bool:
        """True when ``signature`` carried no other message (or one pushed in the same moment); raises
        ``OSError`` when storage fails. ``received_ms``: when the receiver got this message."""
        name = f"{FOLDER}{digest(signature, 32)}.json"
        mine = digest(msg_id, 32)
        now = int(self.clock() * 1000)
        if self.blobs.create(name, encode({"msg": mine, "at": now, "received": received_ms})) and self.atomic_create:
            return True
        bound = decode(self.blobs.read(name)) or {}
        if bound.get("msg", mine) == mine:
            return True
        at, received = bound.get("at"), bound.get("received")
        if isinstance(at, int) and now - at > KEEP_MS:
            return True  # a record left from long ago: the receiver refuses a pair that old anyway
        return isinstance(received, int) and abs(received_ms - received) <= SAME_PUSH_MS

    def compact(self) -> int:
        """Delete records older than ``KEEP_MS``; returns how many."""
        cutoff = self.clock() - KEEP_MS / 1000
        old = [entry.name for entry in self.blobs.entries(FOLDER) if entry.modified < cutoff]
        for name in old:
            self.blobs.delete(name)
        return len(old)
