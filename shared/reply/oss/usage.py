"""What each handled message cost: one append-only usage record per message, safe across instances.

Records live under ``usage/<day>/`` (the day in ``TZ``), each a small JSON object named
``<at>-<sender>-<conversation>-<outcome>-<prompt>-<completion>-<estimated>-<cost>-<msg>.json``. The
name carries every figure a limit or ``\\usage`` needs, so checking a quota is one listing of
today's folder and no reads, and writing a record is one create of a name of its own: instances
that share nothing but the mount never overwrite each other. The body adds what only the report
reads (titles, nicknames, model, card calls, latencies). No message text is ever stored: ids are
hashed in names, and bodies hold ids and counts only.

Days older than ``USAGE_KEEP_DAYS`` are folded into one summary per day (``usage/days/<day>.json``)
and their records deleted, so reading a month stays a few listings. Folding is idempotent: two
instances folding the same day write the same summary.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional

from shared.reply.oss.blobs import Blobs, decode, encode
from shared.reply.oss.history import digest
from shared.reply.timezone import zone_of

FOLDER = "usage/"
DAYS = FOLDER + "days/"
ANSWERED, FAILED, REFUSED, COMMAND, SCHEDULED = "a", "f", "r", "c", "s"
OUTCOMES = {ANSWERED: "answered", FAILED: "failed", REFUSED: "refused", COMMAND: "command", SCHEDULED: "scheduled"}


def short(identifier: str) -> str:
    """The 10-character hash a record name uses for a sender or a conversation."""
    return digest(identifier or "-", 10)


class Entry(NamedTuple):
    """One record as its name tells it."""

    at_ms: int
    sender: str
    conversation: str
    outcome: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost_micro: int  # estimated cost in millionths of a yuan

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def name(self, msg_id: str) -> str:
        return (f"{self.at_ms:013d}-{self.sender}-{self.conversation}-{self.outcome}-{self.prompt_tokens}-"
                f"{self.completion_tokens}-{int(self.estimated)}-{self.cost_micro}-{digest(msg_id, 12)}.json")

    @classmethod
    def parse(cls, name: str) -> Optional["Entry"]:
        parts = name.rsplit("/", 1)[-1].removesuffix(".json").split("-")
        if len(parts) != 9 or parts[3] not in OUTCOMES or not all(p.isdigit() for p in parts[4:8]) \
                or not parts[0].isdigit():
            return None
        return cls(int(parts[0]), parts[1], parts[2], parts[3], int(parts[4]), int(parts[5]), parts[6] == "1",
                   int(parts[7]))


class Totals:
    """Answered messages, tokens and cost of a set of entries (commands and refusals are not counted)."""

    __slots__ = ("messages", "tokens", "cost_micro")

    def __init__(self) -> None:
        self.messages = 0
        self.tokens = 0
        self.cost_micro = 0

    def add(self, entry: Entry) -> None:
        if entry.outcome == ANSWERED:
            self.messages += 1
        self.tokens += entry.tokens
        self.cost_micro += entry.cost_micro

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> "Totals":
        totals = cls()
        for entry in entries:
            totals.add(entry)
        return totals


class Calendar:
    """Days as the team counts them: in ``TZ`` (default Asia/Shanghai)."""

    def __init__(self, tz_name: str, clock: Callable[[], float] = time.time) -> None:
        self.tz_name = tz_name
        self.clock = clock

    @functools.cached_property
    def zone(self) -> dt.tzinfo:
        """Resolved on first use: ``zoneinfo`` reads the system's configuration when imported (a few ms of
        a cold start), and a message that needs no day or time is answered without it."""
        return zone_of(self.tz_name)

    def day(self, at_seconds: Optional[float] = None) -> str:
        moment = self.clock() if at_seconds is None else at_seconds
        return dt.datetime.fromtimestamp(moment, self.zone).strftime("%Y-%m-%d")

    def next_midnight(self) -> dt.datetime:
        now = dt.datetime.fromtimestamp(self.clock(), self.zone)
        return (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

    def month_days(self) -> List[str]:
        """Every day of this month up to today, oldest first."""
        today = dt.datetime.fromtimestamp(self.clock(), self.zone).date()
        return [today.replace(day=d).isoformat() for d in range(1, today.day + 1)]


class UsageBook:
    def __init__(self, blobs: Blobs, calendar: Calendar) -> None:
        self.blobs = blobs
        self.calendar = calendar

    def write(self, entry: Entry, msg_id: str, body: Dict[str, Any]) -> str:
        """One create; raises ``OSError`` when storage fails."""
        name = f"{FOLDER}{self.calendar.day(entry.at_ms / 1000)}/{entry.name(msg_id)}"
        self.blobs.create(name, encode(body))
        return name

    def entries(self, day: str) -> List[Entry]:
        """The records of one day, from one listing."""
        return [e for e in (Entry.parse(n) for n in self.blobs.list(f"{FOLDER}{day}/")) if e is not None]

    def today(self) -> List[Entry]:
        return self.entries(self.calendar.day())

    def month(self) -> List[Entry]:
        return [entry for day in self.calendar.month_days() for entry in self.entries(day)]

    def records(self, day: str) -> List[Dict[str, Any]]:
        """The bodies of one day's records (for the report)."""
        return [body for body in (decode(self.blobs.read(name)) for name in self.blobs.list(f"{FOLDER}{day}/"))
                if body]

    def days(self) -> List[str]:
        """Days whose records are not folded yet, oldest first (a folded day's empty folder may remain on
        the mount)."""
        folded = {name[len(DAYS):].removesuffix(".json") for name in self.blobs.list(DAYS)}
        found = (name[len(FOLDER):].strip("/") for name in self.blobs.list(FOLDER))
        return sorted(day for day in found if len(day) == 10 and day not in folded)

    def summaries(self) -> List[Dict[str, Any]]:
        return [s for s in (decode(self.blobs.read(n)) for n in self.blobs.list(DAYS)) if s]

    def fold(self, keep_days: int) -> int:
        """Fold every day older than ``keep_days`` into its summary and delete its records; returns how many
        days were folded."""
        cutoff = self.calendar.day(self.calendar.clock() - keep_days * 86400)
        folded = 0
        for day in self.days():
            if day >= cutoff:
                continue
            names = self.blobs.list(f"{FOLDER}{day}/")
            bodies = [b for b in (decode(self.blobs.read(n)) for n in names) if b]
            self.blobs.write(f"{DAYS}{day}.json", encode(summarise(day, bodies)))
            for name in names:
                self.blobs.delete(name)
            folded += 1
        return folded


def summarise(day: str, bodies: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One day's records as the report needs them: totals, per conversation and per user, outcomes, latencies."""
    summary: Dict[str, Any] = {"day": day, "messages": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_micro": 0,
                               "card_calls": 0, "outcomes": {}, "conversations": {}, "users": {},
                               "first_text_ms": [], "total_ms": []}
    for body in bodies:
        answered = body.get("outcome") == "answered"
        tokens = int(body.get("prompt_tokens") or 0) + int(body.get("completion_tokens") or 0)
        cost = int(body.get("cost_micro") or 0)
        summary["messages"] += answered
        summary["prompt_tokens"] += int(body.get("prompt_tokens") or 0)
        summary["completion_tokens"] += int(body.get("completion_tokens") or 0)
        summary["cost_micro"] += cost
        summary["card_calls"] += int(body.get("card_calls") or 0)
        summary["outcomes"][body.get("outcome", "?")] = summary["outcomes"].get(body.get("outcome", "?"), 0) + 1
        for key, label, group in (("conversation", "title", "conversations"), ("sender", "nick", "users")):
            slot = summary[group].setdefault(str(body.get(key, "")), {"name": body.get(label) or "", "messages": 0,
                                                                      "tokens": 0, "cost_micro": 0})
            slot["messages"] += answered
            slot["tokens"] += tokens
            slot["cost_micro"] += cost
        for latency in ("first_text_ms", "total_ms"):
            if isinstance(body.get(latency), int):
                summary[latency].append(body[latency])
    return summary
