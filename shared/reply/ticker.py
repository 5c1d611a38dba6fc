"""The timer's tick: each scheduled message that is due sent once, and the knowledge index kept fresh.

FC's timer trigger (``s.yaml``: every minute, ``SCHEDULE_TICK``) invokes the reply function with
``{"triggerTime": "2026-12-07T01:00:00Z", "triggerName": "…", "payload": "…"}`` (FC "定时触发器"). For every
schedule (``oss/schedules.py``) the tick finds the latest time it was due, at or before ``triggerTime``, and takes
that due time once for good: sent when the tick is at most ``SCHEDULE_GRACE_MINUTES`` late, skipped and logged
when it is later (a morning summary at noon helps nobody). Two ticks at once, two instances, a late tick or FC
retrying one cannot send a due time twice; a tick that finds nothing due costs one listing.

A reminder is posted as it is. A prompt is asked of the brain of its conversation, with that conversation's
settings (``conversation_settings.py``), tools and knowledge, but none of its turns, and what the brain says, or
the one sentence that says why it could not, is posted. Messages go out through the robot OpenAPI (no session
webhook exists), split like every answer: ``groupMessages/send`` for a group (it can @ nobody), and
``oToMessages/batchSend`` for a one-to-one chat. Each run leaves a usage record (``scheduled``), counted against
its conversation's daily tokens, under the schedule's own name rather than its creator's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Mapping, Optional

from shared.common import log
from shared.common.bots import parse_bots, robot_environment
from shared.common.errors import ConfigError
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.admit import over_quota
from shared.reply.brains.base import Ask
from shared.reply.config import ReplyConfig, load_reply_config
from shared.reply.conversation_settings import in_force
from shared.reply.delivery import Delivery
from shared.reply.dingtalk.openapi import OpenApi
from shared.reply.dingtalk.webhook import WebhookSender
from shared.reply.oss.history import Conversation, conversation_key
from shared.reply.oss.schedules import REMINDER, Schedule
from shared.reply.oss.storage import Storage
from shared.reply.outcomes import Outcome
from shared.reply.provenance import Provenance
from shared.reply.question import Question
from shared.reply.record import record
from shared.reply.summary import Summary
from shared.reply.timezone import now_line
from shared.reply.when import NotUnderstood, parse

logger = log.get("ticker")
SENT, SKIPPED, FAILED = "sent", "skipped", "failed"
# Marks of due times older than this are deleted, on the tick at the top of each hour.
KEEP_MARKS = dt.timedelta(days=2)


def timer_time(document: Any) -> Optional[dt.datetime]:
    """When the timer fired, for an FC timer event; None for anything else."""
    if not isinstance(document, dict) or "triggerName" not in document or "msgId" in document:
        return None
    try:
        return dt.datetime.fromisoformat(str(document.get("triggerTime")).replace("Z", "+00:00"))
    except ValueError:
        return None


class Ticker:
    def __init__(self, env: Mapping[str, str], config: ReplyConfig, storage: Storage) -> None:
        """``config`` is the deployment's own robot's: storage, ``TZ`` and the grace are the deployment's."""
        self.env = env
        self.config = config
        self.storage = storage
        self.bots = parse_bots(env.get("BOTS") or "")

    def tick(self, fired: dt.datetime) -> Dict[str, int]:
        """Send what is due at ``fired``; how many were sent, skipped and failed."""
        book = self.storage.schedules
        counts = {SENT: 0, SKIPPED: 0, FAILED: 0}
        now = fired.astimezone(self.storage.calendar.zone)
        schedules = self.storage.attempt("list the schedules", "nothing is sent on this tick", book.all) \
            if book is not None else None
        for schedule in schedules or []:
            outcome = self._consider(schedule, now)
            if outcome:
                counts[outcome] += 1
        self._refresh_knowledge()
        if book is not None and now.minute == 0:
            self.storage.attempt("delete old marks", "they stay until the next hour",
                                 lambda: book.prune(now - KEEP_MARKS))
        logger.info("tick at %s: %d sent, %d skipped, %d failed", fired.isoformat(), counts[SENT], counts[SKIPPED],
                    counts[FAILED])
        return counts

    def _consider(self, schedule: Schedule, now: dt.datetime) -> Optional[str]:
        book = self.storage.schedules
        assert book is not None
        try:
            due = parse(schedule.when)[0].latest_at_or_before(now)
        except NotUnderstood:
            logger.error("schedule %s says %r, which is not a time; it is never sent", schedule.id, schedule.when)
            return None
        if due is None or due.timestamp() * 1000 < schedule.created_ms:
            return None
        late = (now - due).total_seconds() / 60
        grace = self.config.schedules.grace_minutes
        if late > grace:
            if self.storage.attempt("mark a skipped schedule", "it may be logged again",
                                    lambda: book.take(schedule, due, SKIPPED)):
                logger.warning("schedule %s due at %s skipped: the tick came %.0f minutes late, more than "
                               "SCHEDULE_GRACE_MINUTES=%d", schedule.id, due.isoformat(), late, grace)
                return SKIPPED
            return None
        if not self.storage.attempt("take a due schedule", "it is not sent this time (never twice)",
                                    lambda: book.take(schedule, due, SENT)):
            return None
        return self._run(schedule, due)

    def _run(self, schedule: Schedule, due: dt.datetime) -> str:
        address = schedule.address
        try:
            config = load_reply_config(robot_environment(self.env, self.bots, address.robot))
        except ConfigError as exc:
            logger.error("schedule %s cannot be sent: %s", schedule.id, exc)
            return FAILED
        log.add_secret(config.model.api_key, config.brain.api_key, config.knowledge.dashvector_api_key,
                       config.app.app_secret if config.app else None)
        if config.app is None:
            logger.error("schedule %s cannot be sent: without DINGTALK_APP_KEY there is no way to post unasked",
                         schedule.id)
            return FAILED
        msg_id = f"schedule-{schedule.id}-{due.astimezone(dt.timezone.utc):%Y%m%dT%H%M}"
        summary = Summary(msg_id, address.conversation_id)
        summary.outcome = Outcome.SCHEDULED
        as_recorded = address._replace(sender=f"schedule:{schedule.id}", nick=f"定时消息 {schedule.id}")
        with log.bound(msg_id=msg_id, conversation=address.conversation_id):
            if schedule.kind == REMINDER:
                text = texts.SCHEDULE_REMINDER.format(text=schedule.text)
            else:
                text, config = self._ask(schedule, config, as_recorded, due, summary)
            delivery = Delivery(config.delivery, WebhookSender(config.delivery.webhook_hosts), self.storage,
                                OpenApi(config.app))
            parts, delivered = delivery.send(address, None, text)
            summary.shown(delivery.first_sent)
            record(config.quotas, self.storage, as_recorded, msg_id, summary)
        if delivered < parts:
            logger.error("schedule %s: %d of %d messages delivered", schedule.id, delivered, parts)
            return FAILED
        return SENT

    def _ask(self, schedule: Schedule, config: ReplyConfig, as_recorded: ChatAddress, due: dt.datetime,
             summary: Summary) -> tuple:
        """What the conversation's brain says to the schedule's prompt, and the settings it said it with."""
        from shared.reply.brains.registry import brain_for
        from shared.reply.thinking import think

        address = schedule.address
        key = conversation_key(address.conversation_id, None, False, address.robot)
        conversation = self.storage.load(key, 0)
        force = in_force(config, self.storage.operator_settings(address.conversation_id), conversation.settings,
                         conversation.persona)
        config = force.config
        summary.settings = force.changed()
        if config.quotas.active and over_quota(config.quotas, as_recorded, self.storage.usage_today(), ""):
            logger.info("schedule %s: the conversation's daily limit is reached", schedule.id)
            return texts.SCHEDULE_OVER_QUOTA.format(what=schedule.text[:40]), config
        brain = brain_for(config, self.storage)
        knowledge, notes = None, ""
        if brain.reads_knowledge:
            from shared.reply.knowledge import retrieve

            found = retrieve.find(config.knowledge, schedule.text)
            if found:
                knowledge, notes = found.for_prompt(), found.sources()
        ask = Ask(Question(schedule.text, schedule.text), Conversation(key), address,
                  now_line(self.storage.calendar.zone, config.timezone, due), Provenance(), force.persona, knowledge,
                  int(due.timestamp() * 1000))
        answer = think(brain, ask, config.delivery, notes=notes)
        summary.model, summary.usage, summary.tool_calls = brain.report.model, brain.report.usage, \
            brain.report.tool_calls
        return answer.posting, config

    def _refresh_knowledge(self) -> None:
        """The knowledge index refreshed here, so a question never waits for it (``retrieve.current_index``)."""
        from pathlib import Path

        knowledge = self.config.knowledge
        if not knowledge.folder or not Path(knowledge.folder).is_dir():
            return
        from shared.reply.knowledge import retrieve

        try:
            retrieve.keep_fresh(knowledge)
        except OSError as exc:
            logger.warning("the knowledge index was not refreshed on this tick: %s", exc)


def handle_tick(fired: dt.datetime, env: Mapping[str, str], context: Any) -> Dict[str, Any]:
    """The FC entry for a timer event: never raises (FC would retry it)."""
    try:
        config = load_reply_config(env)
    except ConfigError as exc:
        log.setup(20)
        logger.error("configuration error, no scheduled message is sent: %s", exc)
        return {"status": "misconfigured", "variable": exc.variable}
    log.setup(config.log_level)
    log.add_secret(config.model.api_key, config.brain.api_key, config.knowledge.dashvector_api_key,
                   config.app.app_secret if config.app else None)
    try:
        storage = Storage.open(config.storage, config.timezone, getattr(context, "credentials", None),
                               getattr(context, "region", None))
        return {"status": "ticked", **Ticker(env, config, storage).tick(fired)}
    except Exception:
        logger.exception("the tick failed")
        return {"status": "internal-error"}
