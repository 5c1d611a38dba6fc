"""``\\定时``: scheduled messages set up from the chat (``when.py`` reads the time, ``oss/schedules.py`` keeps them,
``ticker.py`` sends them).

``\\定时`` lists this conversation's schedules with their next run in ``TZ``; ``\\定时 <when> <text>`` adds one;
``\\定时 删除 N`` removes one. In a group only its admins (DingTalk's ``isAdmin``) may add or remove, in a one-to-one
chat the person for themselves. A text that starts with ``提醒：`` is posted as it is; any other is asked of the
conversation's brain when it is due. Scheduled messages go out through the robot OpenAPI, so they need the app
(``DINGTALK_APP_KEY``), and a one-to-one schedule the asker's staff id.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, List

from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.commands import Done
from shared.reply.config import ReplyConfig
from shared.reply.oss.schedules import PROMPT, REMINDER, Schedule
from shared.reply.oss.storage import Storage
from shared.reply.outcomes import Outcome
from shared.reply.when import NotUnderstood, parse

DELETE = ("删除", "delete")
REMINDER_PREFIXES = ("提醒：", "提醒:")


def next_run(schedule: Schedule, now: dt.datetime) -> str:
    following = parse(schedule.when)[0].next_after(now)
    return f"{following:%m月%d日 %H:%M}" if following else "不会再发"


def described(schedule: Schedule) -> str:
    return f"提醒：{schedule.text}" if schedule.kind == REMINDER else schedule.text


class ScheduleCommand:
    def __init__(self, config: ReplyConfig, storage: Storage, *, has_app: bool,
                 clock: Callable[[], dt.datetime]) -> None:
        self.config = config
        self.storage = storage
        self.has_app = has_app
        self.clock = clock

    def run(self, argument: str, message: IncomingMessage, address: ChatAddress) -> Done:
        book = self.storage.schedules
        if not self.has_app:
            return Done(texts.SCHEDULE_NEEDS_APP, Outcome.SCHEDULE_REFUSED)
        if book is None or self.storage.unavailable:
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        now = self.clock()
        mine = self.storage.attempt("list the schedules", "\\定时 cannot answer", lambda: book.of(address))
        if mine is None:
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        if not argument:
            return self._listing(mine, now)
        if message.is_group and not message.isAdmin:
            return Done(texts.SCHEDULE_ADMIN_ONLY, Outcome.NOT_ADMIN)
        if not message.is_group and not address.staff_id:
            return Done(texts.SCHEDULE_NEEDS_STAFF, Outcome.SCHEDULE_REFUSED)
        word, _, rest = argument.partition(" ")
        if word in DELETE:
            return self._delete(mine, rest.strip())
        return self._add(argument, message, address, now, len(mine) + 1)

    def _listing(self, mine: List[Schedule], now: dt.datetime) -> Done:
        if not mine:
            return Done(texts.SCHEDULES_NONE, Outcome.SCHEDULES_SHOWN)
        items = "\n".join(texts.SCHEDULE_LINE.format(number=number, when=s.when, what=described(s),
                                                     next=next_run(s, now), nick=s.creator_nick or "")
                          for number, s in enumerate(mine, 1))
        return Done(texts.SCHEDULES.format(tz=self.config.timezone, items=items), Outcome.SCHEDULES_SHOWN, plain=True)

    def _delete(self, mine: List[Schedule], number: str) -> Done:
        if not number.isdigit() or not 1 <= int(number) <= len(mine):
            return Done(texts.SCHEDULE_NO_SUCH.format(number=number[:10]), Outcome.SCHEDULE_REFUSED, plain=True)
        schedule = mine[int(number) - 1]
        book = self.storage.schedules
        assert book is not None
        if not self.storage.attempt("delete a schedule", "it stays", lambda: book.delete(schedule)):
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        return Done(texts.SCHEDULE_DELETED.format(number=number, when=schedule.when, what=described(schedule)),
                    Outcome.SCHEDULE_DELETED, plain=True)

    def _add(self, argument: str, message: IncomingMessage, address: ChatAddress, now: dt.datetime,
             number: int) -> Done:
        try:
            when, text = parse(argument)
        except NotUnderstood as exc:
            return Done(str(exc), Outcome.SCHEDULE_REFUSED)
        if not text:
            return Done(texts.SCHEDULE_NEEDS_TEXT.format(when=when.text), Outcome.SCHEDULE_REFUSED)
        following = when.next_after(now)
        if following is None:
            return Done(texts.SCHEDULE_NEVER, Outcome.SCHEDULE_REFUSED)
        gap = when.shortest_gap_minutes(now)
        limit = self.config.schedules.min_interval_minutes
        if gap is not None and gap < limit:
            return Done(texts.SCHEDULE_TOO_OFTEN.format(minutes=limit), Outcome.SCHEDULE_REFUSED)
        kind = REMINDER if text.startswith(REMINDER_PREFIXES) else PROMPT
        if kind == REMINDER:
            text = text.split("：" if "：" in text[:3] else ":", 1)[1].strip()
        book = self.storage.schedules
        assert book is not None
        made_ms = int(now.timestamp() * 1000)
        schedule = self.storage.attempt("add a schedule", "it was not added", lambda: book.add(
            address, when.text, kind, text, address.staff_id, address.nick, made_ms))
        if schedule is None:
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        added = texts.SCHEDULE_ADDED.format(number=number, when=when.text, what=described(schedule),
                                            next=f"{following:%m月%d日 %H:%M}", tz=self.config.timezone)
        # Taken back, like every command's record, when the confirmation reached nobody.
        return Done(added + (texts.SCHEDULE_GROUP_NOTE if address.is_group else ""), Outcome.SCHEDULE_ADDED,
                    (book.name_of(schedule),), plain=True)
