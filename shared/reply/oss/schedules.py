"""Scheduled messages on the bucket: one record per schedule, one mark per time it was due.

A schedule is ``schedules/<conversation>-<id>.json`` (``conversation``: a hash of the robot and the
conversation), so one listing gives the timer every schedule and a prefix gives one conversation's. It keeps
what a run needs without the callback that made it: the chat's address (group or one-to-one, its title, the
robot), who made it, when it is due and what to say. Deleting it is deleting the file, so a schedule deleted
before its time is never sent.

Each due time is taken by creating ``schedules/runs/<id>-<due>.json`` if it is absent: through the OSS API
(``OSS_BUCKET``) that is atomic across instances, so two timer ticks, two instances, a late tick and FC's retry
of one all send a due time at most once. On the mount alone, two instances that create the same mark within one
round trip can both send it (as for messages, ``claims.py``). A run whose instance dies after taking the mark is
not sent again: a message late by hours is worth less than none.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, NamedTuple, Optional

from shared.common.random_ids import random_id
from shared.reply.address import ChatAddress
from shared.reply.oss.blobs import Blobs, decode, encode
from shared.reply.oss.history import digest

FOLDER = "schedules/"
RUNS = FOLDER + "runs/"
REMINDER, PROMPT = "reminder", "prompt"


class Schedule(NamedTuple):
    id: str
    address: ChatAddress
    when: str  # as the user wrote it (``when.py`` reads it again at every tick)
    kind: str  # REMINDER: posted as it is; PROMPT: asked of the brain at run time
    text: str
    creator: str  # the staff id of who made it
    creator_nick: str
    created_ms: int

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "address": self.address._asdict(), "when": self.when, "kind": self.kind,
                "text": self.text, "creator": self.creator, "creator_nick": self.creator_nick,
                "created_ms": self.created_ms}

    @classmethod
    def from_json(cls, document: Dict[str, Any]) -> Optional["Schedule"]:
        """None for a record that is not one (half-written, or written by hand and wrong)."""
        try:
            address = ChatAddress(**document["address"])
            return cls(str(document["id"]), address, str(document["when"]), str(document["kind"]),
                       str(document["text"]), str(document["creator"]), str(document.get("creator_nick") or ""),
                       int(document["created_ms"]))
        except (KeyError, TypeError, ValueError):
            return None


def conversation_prefix(address: ChatAddress) -> str:
    return f"{FOLDER}{digest(address.robot + chr(10) + address.conversation_id, 16)}-"


class ScheduleBook:
    def __init__(self, blobs: Blobs, marks: Blobs) -> None:
        """``blobs`` hold the schedules (the mount); ``marks`` the due times taken (the OSS API when configured)."""
        self.blobs = blobs
        self.marks = marks

    @staticmethod
    def name_of(schedule: Schedule) -> str:
        return f"{conversation_prefix(schedule.address)}{schedule.id}.json"

    def add(self, address: ChatAddress, when: str, kind: str, text: str, creator: str, creator_nick: str,
            now_ms: int) -> Schedule:
        schedule = Schedule(random_id()[:8], address, when, kind, text, creator, creator_nick, now_ms)
        self.blobs.write(self.name_of(schedule), encode(schedule.to_json()))
        return schedule

    def _read(self, names: List[str]) -> List[Schedule]:
        schedules = [Schedule.from_json(decode(self.blobs.read(name)) or {}) for name in names
                     if name.endswith(".json") and not name.startswith(RUNS)]
        return sorted((s for s in schedules if s is not None), key=lambda s: (s.created_ms, s.id))

    def of(self, address: ChatAddress) -> List[Schedule]:
        """One conversation's schedules, oldest first (the numbers ``\\定时`` shows)."""
        prefix = conversation_prefix(address)
        return self._read([name for name in self.blobs.list(FOLDER) if name.startswith(prefix)])

    def all(self) -> List[Schedule]:
        return self._read(self.blobs.list(FOLDER))

    def delete(self, schedule: Schedule) -> bool:
        self.blobs.delete(self.name_of(schedule))
        return True

    def take(self, schedule: Schedule, due: dt.datetime, what: str) -> bool:
        """Take this due time of ``schedule`` (``what``: sent or skipped); False when it was taken already."""
        stamp = _stamp(due)
        return self.marks.create(f"{RUNS}{schedule.id}-{stamp}.json", encode({"schedule": schedule.id, "due": stamp,
                                                                              "what": what}))

    def prune(self, before: dt.datetime) -> int:
        """Delete the marks of due times before ``before`` (no tick looks that far back); how many."""
        cutoff = _stamp(before)
        old = [name for name in self.marks.list(RUNS) if name.rsplit("-", 1)[-1].removesuffix(".json") < cutoff]
        for name in old:
            self.marks.delete(name)
        return len(old)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
