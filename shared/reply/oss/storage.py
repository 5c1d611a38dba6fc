"""History and claims for one invocation, failing soft: lost storage costs context, never the answer.

The README promises that without the OSS mount the bot still answers, only without context.
Every storage call goes through here and turns ``OSError`` (mount missing, unwritable, a
network error on the mount or the OSS API) into "nothing stored", with a log line that says
what happened and what it costs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from shared.common import log
from shared.common.message import IncomingMessage
from shared.reply.config import ReplyConfig
from shared.reply.oss.blobs import ApiBlobs, MountBlobs
from shared.reply.oss.claims import Claim, Claims
from shared.reply.oss.history import Conversation, HistoryStore, digest
from shared.reply.oss.quota import QuotaMemo

T = TypeVar("T")
DATA_FOLDER = "dingbot"
API_PREFIX = "dingbot/"
# Claims are compacted on about one message in this many (chosen by msgId, so deterministically).
COMPACT_EVERY = 16

logger = log.get("storage")


class Storage:
    def __init__(self, history: Optional[HistoryStore], claims: Optional[Claims], *,
                 quota: Optional[QuotaMemo] = None, unavailable: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.history = history
        self.claims = claims
        self.quota = quota
        self.unavailable = unavailable
        self.clock = clock

    @classmethod
    def open(cls, config: ReplyConfig, credentials: Any = None) -> "Storage":
        """The mount (``OSS_MOUNT_POINT``) for history; claims through the OSS API when
        ``OSS_BUCKET`` is set (create-if-absent across instances), else on the mount too."""
        mount = Path(config.oss_mount_point)
        if not mount.is_dir():
            return cls(None, None, unavailable=f"OSS_MOUNT_POINT {mount} is not a directory (is the OSS mount "
                                               f"configured?)")
        blobs = MountBlobs(mount / DATA_FOLDER)
        if config.oss_bucket and credentials is not None:
            claims = Claims(ApiBlobs.connect(config.oss_endpoint, config.oss_bucket, credentials, API_PREFIX),
                            atomic_create=True)
        else:
            claims = Claims(blobs, atomic_create=False)
        return cls(HistoryStore(blobs), claims, quota=QuotaMemo(blobs))

    def _attempt(self, what: str, cost: str, call: Callable[[], T], fallback: T) -> T:
        if self.unavailable:
            return fallback
        try:
            return call()
        except OSError as exc:
            logger.error("storage failed to %s (%s: %s); %s", what, type(exc).__name__, exc, cost)
            return fallback

    def warn_if_unavailable(self) -> None:
        if self.unavailable:
            logger.warning("%s: answering without history and without duplicate checks", self.unavailable)

    def claim(self, key: str, msg_id: str, ttl_ms: int) -> Optional[Claim]:
        """None when the message was or is being answered elsewhere. When storage fails the answer
        goes ahead unclaimed (FC's task id still stops a redelivered callback)."""
        unclaimed = Claim(None, msg_id, "")
        return self._attempt("claim the message", "answering without a duplicate check",
                             lambda: self.claims.claim(key, msg_id, ttl_ms), unclaimed)

    def finish(self, claim: Claim, key: str) -> None:
        self._attempt("mark the message handled", "a redelivery could be answered again",
                      lambda: self.claims.finish(claim), None)
        if claim.name and int(digest(claim.msg_id, 8), 16) % COMPACT_EVERY == 0:
            self._attempt("compact claims", "old claims stay until next time", lambda: self.claims.compact(key), 0)

    def release(self, claim: Claim) -> None:
        self._attempt("release the claim", "a redelivery of this message will be skipped",
                      lambda: self.claims.release(claim), None)

    def load(self, key: str, length: int) -> Conversation:
        return self._attempt("read the history", "answering without context",
                             lambda: self.history.load(key, length), Conversation(key))

    def add_turn(self, key: str, message: IncomingMessage, question: str, answer: str,
                 conversation: Conversation, keep: int) -> None:
        if keep <= 0:
            return
        at = message.createAt or int(self.clock() * 1000)
        self._attempt("record the turn", "the next question will not see this one",
                      lambda: self.history.add_turn(key, message.msgId, at, question, answer), "")
        if self.history is not None and self.history.needs_compaction(conversation, keep):
            self._attempt("compact the history", "old records stay until next time",
                          lambda: self.history.compact(key, keep), 0)

    def record(self, what: str, write: Callable[[HistoryStore, int], str], message: IncomingMessage) -> Optional[str]:
        """Write a command's record (``\\clear``, ``\\system``); its name, or None when it could not be
        stored (the command must then say so instead of confirming)."""
        if self.unavailable:
            return None
        at = message.createAt or int(self.clock() * 1000)
        return self._attempt(f"record {what}", "the command did not take effect", lambda: write(self.history, at),
                             None)

    def undo(self, name: Optional[str]) -> None:
        """Take back a command's record when its confirmation reached nobody."""
        if name:
            self._attempt("take back a command", "it stays in effect", lambda: self.history.remove(name), None)

    def dingtalk_quota_paused_until(self) -> Optional[float]:
        """Whether an instance found DingTalk's monthly API quota spent (and until when to believe it)."""
        return self._attempt("read the API quota note", "DingTalk's API will be tried",
                             lambda: self.quota.paused_until(), None)

    def remember_dingtalk_quota_spent(self, code: str) -> Optional[float]:
        return self._attempt("note the spent API quota", "other instances will find out by themselves",
                             lambda: self.quota.remember(code), None)
