"""When a scheduled message is due: the Chinese phrases people write, and five-field cron for those who know it.

``每天 09:00``, ``工作日 9点``, ``每周五 17:00``, ``每月1日 9点半``, ``每月最后一天 18:00``, ``每分钟`` (the shortest a
deployment allows, ``SCHEDULE_MIN_INTERVAL_MINUTES``) and ``0 9 * * 1-5`` all become one ``When``: the minutes,
hours, days of the month, months and weekdays it fires on, read in the deployment's ``TZ``. Cron's rule holds for
days: when both the day of the month and the weekday are restricted, either one matching is enough. 工作日 is
Monday to Friday; China's holidays and the weekends worked in their place are not known here. 每月31日 fires only in
months that have a 31st (as cron does); 每月最后一天 is the last day of every month. ``TZ`` may be any zone;
a zone with daylight saving repeats or skips the hour that moves, as FC's own timers do.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import FrozenSet, NamedTuple, Optional, Tuple

WEEKDAYS = "一二三四五六日"  # Monday first, as ``date.weekday()`` counts
LAST_DAY = 0  # in ``days``: the last day of the month
SEARCH_DAYS = 400 * 4  # far enough back or ahead for 29 February
TIME = r"(?:(\d{1,2})[:：](\d{2})|(\d{1,2})点(?:(\d{1,2})分|(半))?)"
PERIOD = r"(每天|每日|工作日|每个工作日|(?:每周|每星期|周|星期)([一二三四五六日天])|每月(\d{1,2})[日号]|每月最后一天)"
PHRASE = re.compile(r"\s*" + PERIOD + r"\s*" + TIME + r"\s*(.*)", re.S)
EVERY_MINUTE = re.compile(r"\s*每分钟\s*(.*)", re.S)
CRON_FIELD = r"[\d*/,\-]+"
CRON = re.compile(r"\s*" + r"\s+".join([f"({CRON_FIELD})"] * 5) + r"(?:\s+(.*))?", re.S)


UNDERSTOOD = ("没看懂什么时候发。可以写：每天 09:00、工作日 9点、每周五 17:00、每月1日 9点、每月最后一天 18:00，"
              "或 cron（分 时 日 月 周，如 0 9 * * 1-5）。")


class NotUnderstood(ValueError):
    """The words do not say when; the message is the sentence the chat gets."""


class When(NamedTuple):
    minutes: FrozenSet[int]
    hours: FrozenSet[int]
    days: FrozenSet[int]  # 1–31, or LAST_DAY
    months: FrozenSet[int]
    weekdays: FrozenSet[int]  # 0 Monday … 6 Sunday
    any_day: bool  # the day of the month is not restricted (cron's "*")
    any_weekday: bool
    text: str  # as the user wrote it, for \定时's list

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        in_month = day.day in self.days or (LAST_DAY in self.days and day.day == last)
        on_weekday = day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and on_weekday
        return in_month or on_weekday

    def _times(self) -> Tuple[Tuple[int, int], ...]:
        return tuple(sorted((h, m) for h in self.hours for m in self.minutes))

    def next_after(self, moment: dt.datetime) -> Optional[dt.datetime]:
        """The first time it fires strictly after ``moment`` (an aware datetime; the result is in its zone)."""
        start = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        times = self._times()
        for offset in range(SEARCH_DAYS):
            day = start.date() + dt.timedelta(days=offset)
            if not self._day_matches(day):
                continue
            for hour, minute in times:
                candidate = dt.datetime.combine(day, dt.time(hour, minute), start.tzinfo)
                if candidate >= start:
                    return candidate
        return None

    def latest_at_or_before(self, moment: dt.datetime) -> Optional[dt.datetime]:
        """The last time it fired at or before ``moment``."""
        end = moment.replace(second=0, microsecond=0)
        times = self._times()[::-1]
        for offset in range(SEARCH_DAYS):
            day = end.date() - dt.timedelta(days=offset)
            if not self._day_matches(day):
                continue
            for hour, minute in times:
                candidate = dt.datetime.combine(day, dt.time(hour, minute), end.tzinfo)
                if candidate <= end:
                    return candidate
        return None

    def shortest_gap_minutes(self, moment: dt.datetime, samples: int = 50) -> Optional[float]:
        """The shortest time between two runs over the next ``samples`` runs (None: it fires at most once)."""
        runs, at = [], moment
        for _ in range(samples):
            following = self.next_after(at)
            if following is None:
                break
            runs.append(following)
            at = following
        gaps = [(b - a).total_seconds() / 60 for a, b in zip(runs, runs[1:])]
        return min(gaps) if gaps else None


def _clock(match: re.Match, first: int) -> Tuple[int, int]:
    hh, mm, h, m, half = match.group(first, first + 1, first + 2, first + 3, first + 4)
    hour, minute = (int(hh), int(mm)) if hh is not None else (int(h), 30 if half else int(m or 0))
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise NotUnderstood("时间写得不对：小时是 0–23，分钟是 0–59，例如 09:00 或 9点半。")
    return hour, minute


def _field(text: str, low: int, high: int, name: str) -> FrozenSet[int]:
    """One cron field: ``*``, ``5``, ``1-5``, ``*/15``, ``1-31/2`` and lists of them."""
    values = set()
    for part in text.split(","):
        every = 1
        if "/" in part:
            part, _, step = part.partition("/")
            if not step.isdigit() or int(step) == 0:
                raise NotUnderstood(f"cron 的{name}一栏写得不对：{text}")
            every = int(step)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, _, last = part.partition("-")
            if not first.isdigit() or not last.isdigit():
                raise NotUnderstood(f"cron 的{name}一栏写得不对：{text}")
            start, end = int(first), int(last)
        elif part.isdigit():
            start = end = int(part)
            end = high if every > 1 else end
        else:
            raise NotUnderstood(f"cron 的{name}一栏写得不对：{text}")
        if not low <= start <= end <= high:
            raise NotUnderstood(f"cron 的{name}一栏超出范围（{low}–{high}）：{text}")
        values.update(range(start, end + 1, every))
    return frozenset(values)


EVERYTHING = {"minutes": frozenset(range(60)), "hours": frozenset(range(24)), "days": frozenset(range(1, 32)),
              "months": frozenset(range(1, 13)), "weekdays": frozenset(range(7))}


def parse(words: str) -> Tuple[When, str]:
    """``(when, the rest)``: the rest is what to post or ask. Raises ``NotUnderstood``."""
    minute = EVERY_MINUTE.fullmatch(words)
    if minute:
        return When(**EVERYTHING, any_day=True, any_weekday=True, text="每分钟"), minute.group(1).strip()
    phrase = PHRASE.fullmatch(words)
    if phrase:
        period, weekday, day = phrase.group(1, 2, 3)
        hour, minute_of_hour = _clock(phrase, 4)
        when = {**EVERYTHING, "minutes": frozenset({minute_of_hour}), "hours": frozenset({hour})}
        if period.endswith("工作日"):
            when["weekdays"] = frozenset(range(5))
        elif weekday:
            when["weekdays"] = frozenset({6 if weekday in "日天" else WEEKDAYS.index(weekday)})
        elif day:
            if not 1 <= int(day) <= 31:
                raise NotUnderstood("每月的日子是 1–31 日；月底请写「每月最后一天」。")
            when["days"] = frozenset({int(day)})
        elif period == "每月最后一天":
            when["days"] = frozenset({LAST_DAY})
        any_day = not (day or period == "每月最后一天")
        text = words[:phrase.start(9)].strip()
        return When(**when, any_day=any_day, any_weekday=not (weekday or "工作日" in period), text=text), \
            phrase.group(9).strip()
    cron = CRON.fullmatch(words)
    if cron:
        minutes, hours, days, months, weekdays, rest = cron.groups()
        weekday_values = _field(weekdays, 0, 7, "星期")
        # cron counts Sunday as 0 (or 7), Monday as 1; ``date.weekday()`` counts Monday as 0.
        weekdays_from_monday = frozenset((w - 1) % 7 for w in weekday_values)
        return When(_field(minutes, 0, 59, "分钟"), _field(hours, 0, 23, "小时"), _field(days, 1, 31, "日期"),
                    _field(months, 1, 12, "月份"), weekdays_from_monday, any_day=days == "*",
                    any_weekday=weekdays == "*", text=" ".join(cron.groups()[:5])), (rest or "").strip()
    raise NotUnderstood(UNDERSTOOD)
