"""One signed request, one message: the first message a DingTalk signature carried is the only one that
reaches its conversation's history.

DingTalk's callback signature covers the timestamp alone, so a captured ``timestamp``/``sign``
pair would authorise any body for the hour the receiver accepts it: the victim's
``conversationId`` with the attacker's session webhook would print the victim's history in the
attacker's chat. The receiver passes a hash of the pair with the message; here the pair is
bound, create-if-absent, to the first message it carried: its msgId, its conversation and its
session webhook together, so not even the first msgId can be replayed into another chat. DingTalk's
own retries carry the very same body, so they pass.

DingTalk signs the timestamp in milliseconds, so two messages it pushes in the same millisecond
share a pair, and nothing in the body proves which chat a session webhook belongs to. A second
message that the receiver got within ``SAME_PUSH_MS`` of the first is therefore answered, but
``DETACHED``: without its conversation's history or persona, without recording a turn and without
running commands, so a replay inside that window reads and changes nothing of any conversation.
Later, a different message under a bound pair is ``REPLAYED`` and refused. Records outlive the
receiver's one-hour window and are deleted after ``KEEP_MS``.
"""

from __future__ import annotations

import time
from typing import Callable

from shared.reply.oss.blobs import Blobs, decode, encode
from shared.reply.oss.history import digest

FOLDER = "signatures/"
KEEP_MS = 2 * 3600 * 1000
SAME_PUSH_MS = 2000
# What ``bind`` finds: the pair's first message (or a retry of it), a message pushed in the same moment, a replay.
FIRST, DETACHED, REPLAYED = "first", "detached", "replayed"


def identity(msg_id: str, conversation_id: str, session_webhook: str) -> str:
    """What a retry repeats and a replay changes: the message, the chat it names and the chat it answers."""
    return digest(f"{msg_id}\n{conversation_id}\n{session_webhook}", 32)


class Signatures:
    def __init__(self, blobs: Blobs, *, atomic_create: bool, clock: Callable[[], float] = time.time) -> None:
        self.blobs = blobs
        self.atomic_create = atomic_create
        self.clock = clock

    def bind(self, signature: str, mine: str, received_ms: int) -> str:
        """``FIRST``, ``DETACHED`` or ``REPLAYED`` for the message ``mine`` (its ``identity``) under
        ``signature``; raises ``OSError`` when storage fails. ``received_ms``: when the receiver got it."""
        name = f"{FOLDER}{digest(signature, 32)}.json"
        now = int(self.clock() * 1000)
        if self.blobs.create(name, encode({"msg": mine, "at": now, "received": received_ms})) and self.atomic_create:
            return FIRST
        bound = decode(self.blobs.read(name)) or {}
        if bound.get("msg", mine) == mine:
            return FIRST
        at, received = bound.get("at"), bound.get("received")
        if isinstance(at, int) and now - at > KEEP_MS:
            return FIRST  # a record left from long ago: the receiver refuses a pair that old anyway
        # A message let through in the same moment keeps its mark, so DingTalk's retry of it passes later too.
        mark = f"{FOLDER}{digest(signature, 32)}-{mine[:16]}.json"
        if isinstance(received, int) and abs(received_ms - received) <= SAME_PUSH_MS:
            self.blobs.create(mark, encode({"at": now}))
            return DETACHED
        return DETACHED if self.blobs.read(mark) is not None else REPLAYED

    def compact(self) -> int:
        """Delete records older than ``KEEP_MS``; returns how many."""
        cutoff = self.clock() - KEEP_MS / 1000
        old = [entry.name for entry in self.blobs.entries(FOLDER) if entry.modified < cutoff]
        for name in old:
            self.blobs.delete(name)
        return len(old)
