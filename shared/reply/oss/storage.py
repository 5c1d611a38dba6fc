"""History and claims for one invocation, failing soft: lost storage costs context, never the answer.

The README promises that without the OSS mount the bot still answers, only without context.
Every storage call goes through here and turns ``OSError`` (mount missing, unwritable, a
network error on the mount or the OSS API) into "nothing stored", with a log line that says
what happened and what it costs.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from shared.common import log
from shared.common.message import IncomingMessage
from shared.reply.config.storage import StorageSettings
from shared.reply.oss.blobs import ApiBlobs, MountBlobs
from shared.reply.oss.card_marks import CardMarks
from shared.reply.oss.claims import Claim, Claims
from shared.reply.oss.history import Conversation, HistoryStore, Session, digest
from shared.reply.oss.operator import OperatorSettings
from shared.reply.oss.quota import QuotaMemo
from shared.reply.oss.schedules import ScheduleBook
from shared.reply.oss.signatures import FIRST, Signatures, identity
from shared.reply.oss.usage import Calendar, Entry, UsageBook
from shared.reply.timezone import DEFAULT_TIMEZONE

T = TypeVar("T")
DATA_FOLDER = "dingbot"
API_PREFIX = "dingbot/"
# Claims are compacted on about one message in this many (chosen by msgId, so deterministically).
COMPACT_EVERY = 16
FOLD_EVERY = 64

logger = log.get("storage")
# Per instance: (endpoint, bucket) -> why claims cannot rely on the OSS API ("" when they can).
_API_CLAIMS_CHECKED: Dict[Tuple[str, str], str] = {}
VERSIONED_LOSS = ("x-oss-forbid-overwrite has no effect on it, so claims stay on the mount: two instances that "
                  "take the same message within one round trip of each other can both answer it (FC's task id "
                  "still stops redelivered callbacks). Use a bucket that never had versioning turned on for "
                  "exactly-once across instances")


def api_claims_problem(blobs: ApiBlobs) -> str:
    """Why create-if-absent through the OSS API would not be atomic on this bucket ("" when it is).

    Asked, and logged, once per instance: a versioned bucket (enabled or suspended) accepts a second PutObject
    despite ``x-oss-forbid-overwrite``. A bucket whose versioning cannot be read (the role lacks
    ``oss:GetBucketVersioning``) is assumed never versioned, and the log says so."""
    key = (blobs.bucket.endpoint, blobs.bucket.bucket_name)
    if key not in _API_CLAIMS_CHECKED:
        try:
            state = blobs.versioning()
        except OSError as exc:
            logger.warning("could not read the versioning of bucket %s (%s); assuming it was never turned on "
                           "(grant oss:GetBucketVersioning to the function's role to have it checked)", key[1], exc)
            state = ""
        _API_CLAIMS_CHECKED[key] = f"bucket {key[1]} has versioning {state}" if state else ""
        if state:
            logger.warning("%s: %s", _API_CLAIMS_CHECKED[key], VERSIONED_LOSS)
    return _API_CLAIMS_CHECKED[key]


class Storage:
    def __init__(self, history: Optional[HistoryStore], claims: Optional[Claims], *,
                 quota: Optional[QuotaMemo] = None, usage: Optional[UsageBook] = None,
                 operator: Optional[OperatorSettings] = None, schedules: Optional[ScheduleBook] = None,
                 cards: Optional[CardMarks] = None, unavailable: str = "",
                 calendar: Optional[Calendar] = None, clock: Callable[[], float] = time.time) -> None:
        self.history = history
        self.claims = claims
        self.usage = usage
        self.calendar = calendar or (usage.calendar if usage is not None else Calendar(DEFAULT_TIMEZONE, clock))
        self.signatures = Signatures(claims.blobs, atomic_create=claims.atomic_create, clock=clock) \
            if claims is not None else None
        self.quota = quota
        self.operator = operator
        self.schedules = schedules
        self.cards = cards  # what the buttons on answers' cards leave (card_marks.py)
        self.unavailable = unavailable
        self.clock = clock

    @classmethod
    def open(cls, settings: StorageSettings, timezone: str = DEFAULT_TIMEZONE, credentials: Any = None,
             region: Optional[str] = None) -> "Storage":
        """The mount (``OSS_MOUNT_POINT``) for history; claims through the OSS API when
        ``OSS_BUCKET`` is set and its create-if-absent is atomic, else on the mount too. ``region``
        is FC's (the context's), used when neither ``OSS_REGION`` nor ``OSS_ENDPOINT`` names one."""
        mount = Path(settings.mount_point)
        if not mount.is_dir():
            return cls(None, None, calendar=Calendar(timezone),
                       unavailable=f"OSS_MOUNT_POINT {mount} is not a directory (is the OSS mount configured?)")
        blobs = MountBlobs(mount / DATA_FOLDER)
        api = cls._api_blobs(settings, credentials, region)
        claims = Claims(api, atomic_create=True) if api else Claims(blobs, atomic_create=False)
        calendar = Calendar(timezone)
        return cls(HistoryStore(blobs), claims, quota=QuotaMemo(blobs),
                   usage=UsageBook(blobs, calendar), operator=OperatorSettings(blobs),
                   schedules=ScheduleBook(blobs, claims.blobs), cards=CardMarks(blobs, claims.blobs, calendar))

    @staticmethod
    def _api_blobs(settings: StorageSettings, credentials: Any, region: Optional[str]) -> Optional[ApiBlobs]:
        if not settings.bucket or credentials is None:
            return None
        region = settings.region or region
        if not region:
            logger.error("OSS_BUCKET is set but no region is known for its V4 signatures: set OSS_REGION "
                         "(e.g. cn-hangzhou); claims stay on the mount")
            return None
        api = ApiBlobs.connect(settings.endpoint, settings.bucket, credentials, API_PREFIX, region)
        return None if api_claims_problem(api) else api

    @property
    def mode(self) -> str:
        """Where claims are kept, for the log: ``oss-api`` (atomic across instances), ``mount`` or ``none``."""
        if self.unavailable or self.claims is None:
            return "none"
        return "oss-api" if self.claims.atomic_create else "mount"

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

    def signed_as(self, message: IncomingMessage) -> str:
        """What the message's signed request makes of it (``signatures.py``): ``FIRST``, ``DETACHED`` or
        ``REPLAYED``. When storage fails the message goes ahead: the signature was checked, only its reuse
        is not."""
        if not message.signature or message.receivedAt is None or self.signatures is None:
            return FIRST
        signatures, mine = self.signatures, identity(message.msgId, message.conversationId, message.sessionWebhook)
        verdict = self._attempt("check the request signature's first use", "a replayed signature is not detected",
                                lambda: signatures.bind(message.signature, mine, message.receivedAt or 0), FIRST)
        if int(digest(message.msgId, 8), 16) % COMPACT_EVERY == 1:
            self._attempt("compact signature records", "old records stay until next time", signatures.compact, 0)
        return verdict

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

    def _at(self, at_ms: Optional[int]) -> int:
        """When a record happened: the time the user asked (``createAt``), or now when DingTalk gave none."""
        return at_ms or int(self.clock() * 1000)

    def add_turn(self, key: str, msg_id: str, at_ms: Optional[int], question: str, answer: str,
                 conversation: Conversation, keep: int, session: Optional[Session] = None) -> None:
        if keep <= 0:
            return
        at = self._at(at_ms)
        self._attempt("record the turn", "the next question will not see this one",
                      lambda: self.history.add_turn(key, msg_id, at, question, answer, session), "")
        if self.history is not None and self.history.needs_compaction(conversation, keep):
            self._attempt("compact the history", "old records stay until next time",
                          lambda: self.history.compact(key, keep), 0)

    def record(self, what: str, write: Callable[[HistoryStore, int], str], at_ms: Optional[int]) -> Optional[str]:
        """Write a command's record (``\\clear``, ``\\system``) as of ``at_ms``; its name, or None when it could
        not be stored (the command must then say so instead of confirming)."""
        if self.unavailable:
            return None
        at = self._at(at_ms)
        return self._attempt(f"record {what}", "the command did not take effect", lambda: write(self.history, at),
                             None)

    def undo(self, names: Tuple[str, ...]) -> None:
        """Take back a command's records when its confirmation reached nobody."""
        for name in names:
            self._attempt("take back a command", "it stays in effect", partial(self.history.remove, name), None)

    def attempt(self, what: str, cost: str, call: Callable[[], T]) -> Optional[T]:
        """``call``'s result, or None when the storage failed (the log says ``what`` and what it ``cost``)."""
        return self._attempt(what, cost, call, None)

    def operator_settings_known(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """The operator's settings when this instance read them less than a minute ago, else None."""
        return self.operator.known(conversation_id) if self.operator is not None else {}

    def operator_settings(self, conversation_id: str) -> Dict[str, Any]:
        """What the operator's files on the bucket set for this conversation (``oss/operator.py``); ``{}`` when
        there are none or they cannot be read."""
        if self.operator is None:
            return {}
        operator = self.operator
        return self._attempt("read the operator's settings", "the conversation has the deployment's settings",
                             lambda: operator.for_conversation(conversation_id), {})

    def image_upload(self) -> Optional[Callable[[bytes], str]]:
        """Where a drawn picture that came back as data is put to be shown: the bucket through the OSS API."""
        blobs = self.claims.blobs if self.claims is not None else None
        if not isinstance(blobs, ApiBlobs):
            return None
        from shared.reply.tools.draw import bucket_upload

        return bucket_upload(blobs)

    def usage_today(self) -> Optional[List[Entry]]:
        """Today's usage entries (one listing), or None when they cannot be read."""
        if self.usage is None:
            return None
        usage = self.usage
        return self._attempt("read today's usage", "daily limits are not checked for this message", usage.today,
                             None)

    def usage_month(self) -> Optional[List[Entry]]:
        if self.usage is None:
            return None
        usage = self.usage
        return self._attempt("read this month's usage", "\\usage cannot answer", usage.month, None)

    def record_usage(self, entry: Entry, msg_id: str, body: Dict[str, Any], keep_days: int) -> None:
        if self.usage is None or self.unavailable:
            return
        usage = self.usage
        self._attempt("record the usage", "this message is missing from \\usage and the report",
                      lambda: usage.write(entry, msg_id, body), "")
        if int(digest(msg_id, 8), 16) % FOLD_EVERY == 2:
            self._attempt("fold old usage records", "they stay until next time", lambda: usage.fold(keep_days), 0)

    def dingtalk_quota_paused_until(self) -> Optional[float]:
        """Whether an instance found DingTalk's monthly API quota spent (and until when to believe it)."""
        return self._attempt("read the API quota note", "DingTalk's API will be tried",
                             lambda: self.quota.paused_until(), None)

    def remember_dingtalk_quota_spent(self, code: str) -> Optional[float]:
        return self._attempt("note the spent API quota", "other instances will find out by themselves",
                             lambda: self.quota.remember(code), None)
