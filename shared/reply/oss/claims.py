"""Who answers a message: one claim object per msgId, created only if absent, never locked.

A delivery claims the msgId before calling the model (``in_progress``) and marks the claim
``handled`` once the answer reached the chat, like an idempotency record; a second delivery
that finds either state is skipped. A claim whose answer reached nobody is deleted, so a
later delivery can answer. An ``in_progress`` claim older than its time-to-live belonged to
an instance that died: the next delivery takes over by creating the next *generation*
(``<id>-2.json``), again create-if-absent, so two deliveries can never both take over.

Creation is atomic through the OSS API (``x-oss-forbid-overwrite``). On the mount it is
``O_EXCL``, atomic on one machine only; there each claim is read back, and a claim that
another instance overwrote is given up. Two instances that create the same claim within one
round trip of each other can both proceed, which FC's task id (derived from the msgId) stops
one step earlier.

Handled claims are kept for a day (DingTalk and FC stop redelivering well before that) and at
most ``KEEP`` per conversation.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, NamedTuple, Optional

from shared.common import log
from shared.common.random_ids import random_id
from shared.reply.oss.blobs import Blobs, decode, encode
from shared.reply.oss.history import digest

FOLDER = "claims/"
IN_PROGRESS, HANDLED = "in_progress", "handled"
MAX_GENERATIONS = 5
KEEP = 200
HANDLED_TTL_MS = 24 * 3600 * 1000

logger = log.get("claims")


class Claim(NamedTuple):
    """A claim held by this invocation; ``name`` is None when storage was unavailable."""

    name: Optional[str]
    msg_id: str
    owner: str


class Claims:
    def __init__(self, blobs: Blobs, *, atomic_create: bool, clock: Callable[[], float] = time.time) -> None:
        self.blobs = blobs
        self.atomic_create = atomic_create
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def folder(self, key: str) -> str:
        return f"{FOLDER}{digest(key)}/"

    def claim(self, key: str, msg_id: str, ttl_ms: int) -> Optional[Claim]:
        """This invocation's claim on ``msg_id``, or None when it was answered or is being answered.
        Raises ``OSError`` when the storage cannot be reached."""
        owner = random_id()
        stem = self.folder(key) + digest(msg_id, 32)
        for generation in range(1, MAX_GENERATIONS + 1):
            name = f"{stem}-{generation}.json"
            document = {"msgId": msg_id, "state": IN_PROGRESS, "at": self._now_ms(), "owner": owner}
            if self.blobs.create(name, encode(document)):
                if self.atomic_create or (decode(self.blobs.read(name)) or {}).get("owner") == owner:
                    return Claim(name, msg_id, owner)
                logger.info("another instance claimed the message at the same moment, skipped")
                return None
            existing = decode(self.blobs.read(name))
            if existing is None or existing.get("state") == HANDLED:
                return None
            claimed_at = existing.get("at")
            if not isinstance(claimed_at, int) or self._now_ms() - claimed_at < ttl_ms:
                return None
            logger.warning("taking over a claim left %d s ago by an instance that did not finish",
                           (self._now_ms() - claimed_at) // 1000)
        return None

    def finish(self, claim: Claim) -> None:
        """The answer reached the chat: later deliveries of this msgId are skipped."""
        if claim.name:
            self.blobs.write(claim.name, encode({"msgId": claim.msg_id, "state": HANDLED, "at": self._now_ms(),
                                                 "owner": claim.owner}))

    def release(self, claim: Claim) -> None:
        """Nothing reached the user: a later delivery may answer."""
        if claim.name:
            self.blobs.delete(claim.name)

    def compact(self, key: str) -> int:
        """Delete the claims of messages older than a day, then all but the newest ``KEEP``.
        The generations of one msgId go together, so a deleted first generation never lets a
        handled message be answered again. Returns how many claim objects were deleted."""
        groups: Dict[str, List[str]] = {}
        newest: Dict[str, float] = {}
        for name, modified in self.blobs.entries(self.folder(key)):
            stem = name.rsplit("-", 1)[0]
            groups.setdefault(stem, []).append(name)
            newest[stem] = max(newest.get(stem, 0.0), modified)
        by_age = sorted(groups, key=lambda stem: newest[stem], reverse=True)
        cutoff = self.clock() - HANDLED_TTL_MS / 1000
        doomed = [stem for index, stem in enumerate(by_age) if index >= KEEP or newest[stem] < cutoff]
        deleted = 0
        for stem in doomed:
            for name in groups[stem]:
                self.blobs.delete(name)
                deleted += 1
        return deleted
