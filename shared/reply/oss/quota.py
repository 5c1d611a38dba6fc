"""DingTalk's monthly API quota, remembered on the mount so that every instance knows it is spent.

A free (standard) organisation gets 5,000 server-API calls a month. Once DingTalk answers
``Forbidden.AccessDenied.ApiCountLimitForOrg``, nothing but the next month (or a paid plan)
helps, and every instance that found out by itself would spend a failed call and a delay per
message. The first instance to meet it writes ``state/dingtalk-api-quota.json``; the others
read it and go straight to the session webhook. The pause ends at the start of the next month
(China time) or after ``PAUSE_SECONDS``, whichever comes first, so a plan upgrade is noticed
within hours.
"""

from __future__ import annotations

import datetime
import time
from typing import Callable, Optional

from shared.reply.oss.blobs import Blobs, decode, encode

NAME = "state/dingtalk-api-quota.json"
PAUSE_SECONDS = 6 * 3600
CHINA = datetime.timezone(datetime.timedelta(hours=8))


def next_month_start(now: float) -> float:
    today = datetime.datetime.fromtimestamp(now, CHINA)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime.datetime(year, month, 1, tzinfo=CHINA).timestamp()


class QuotaMemo:
    def __init__(self, blobs: Blobs, *, clock: Callable[[], float] = time.time) -> None:
        self.blobs = blobs
        self.clock = clock

    def paused_until(self) -> Optional[float]:
        """When the pause ends (seconds since the epoch), or None when the quota is not known to be spent."""
        record = decode(self.blobs.read(NAME)) or {}
        until = record.get("pausedUntil")
        return until if isinstance(until, (int, float)) and until > self.clock() else None

    def remember(self, code: str) -> float:
        now = self.clock()
        until = min(now + PAUSE_SECONDS, next_month_start(now))
        self.blobs.write(NAME, encode({"code": code, "detectedAt": now, "pausedUntil": until,
                                       "meaning": "DingTalk's monthly API quota of this organisation is spent: "
                                                  "cards and the robot OpenAPI are paused until pausedUntil"}))
        return until
