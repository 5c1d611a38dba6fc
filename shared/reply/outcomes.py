"""What happened to a message: one name per outcome, shared by the stages, the commands, the usage
record, the summary line and the local stack.

Each outcome belongs to one kind, which is what the usage record keeps and ``make report`` counts:
an answer, a command, a refusal, a failure, or not handled at all (a duplicate delivery or a replay
leaves no usage record). The members are strings, so a log line, a JSON document or a test compares
them with their names as written.
"""

from __future__ import annotations

from enum import Enum

from shared.reply.oss import usage as kinds

NOT_HANDLED = "not-handled"


class Outcome(str, Enum):
    kind: str

    def __new__(cls, value: str, kind: str) -> "Outcome":
        member = str.__new__(cls, value)
        member._value_ = value
        member.kind = kind
        return member

    def __str__(self) -> str:
        return self.value

    ANSWERED = ("answered", kinds.ANSWERED)
    # Commands (commands.py).
    CLEARED = ("cleared", kinds.COMMAND)
    HELP = ("help", kinds.COMMAND)
    MODEL = ("model", kinds.COMMAND)
    PERSONA_SHOWN = ("persona-shown", kinds.COMMAND)
    PERSONA_SET = ("persona-set", kinds.COMMAND)
    PERSONA_RESET = ("persona-reset", kinds.COMMAND)
    PERSONA_TOO_LONG = ("persona-too-long", kinds.COMMAND)
    PERSONA_PLATFORM = ("persona-platform", kinds.COMMAND)
    UNKNOWN_COMMAND = ("unknown-command", kinds.COMMAND)
    USAGE = ("usage", kinds.COMMAND)
    KB = ("kb", kinds.COMMAND)
    TOOLS = ("tools", kinds.COMMAND)
    STORAGE_ERROR = ("storage-error", kinds.COMMAND)
    SETTINGS_SHOWN = ("settings-shown", kinds.COMMAND)
    SETTING_SET = ("setting-set", kinds.COMMAND)
    SETTINGS_RESET = ("settings-reset", kinds.COMMAND)
    SETTING_REFUSED = ("setting-refused", kinds.COMMAND)
    SCHEDULES_SHOWN = ("schedules-shown", kinds.COMMAND)
    SCHEDULE_ADDED = ("schedule-added", kinds.COMMAND)
    SCHEDULE_DELETED = ("schedule-deleted", kinds.COMMAND)
    SCHEDULE_REFUSED = ("schedule-refused", kinds.COMMAND)
    # A scheduled message (ticker.py), whatever it said: counted against the conversation's daily tokens.
    SCHEDULED = ("scheduled", kinds.SCHEDULED)
    # Refusals: not allowed, over the quota, not an admin.
    REFUSED = ("refused", kinds.REFUSED)
    QUOTA = ("quota", kinds.REFUSED)
    NOT_ADMIN = ("not-admin", kinds.REFUSED)
    LOCKED = ("locked", kinds.REFUSED)
    # Failures: what was asked could not be answered.
    UNSUPPORTED = ("unsupported", kinds.FAILED)
    EMPTY = ("empty", kinds.FAILED)
    NEEDS_APP = ("needs-app", kinds.FAILED)
    MEDIA_ERROR = ("media-error", kinds.FAILED)
    LLM_ERROR = ("llm-error", kinds.FAILED)
    DELIVERY_FAILED = ("delivery-failed", kinds.FAILED)
    UNDELIVERABLE = ("undeliverable", kinds.FAILED)
    INTERNAL_ERROR = ("internal-error", kinds.FAILED)
    # Not handled: the message was answered, or refused as a replay, elsewhere.
    DUPLICATE = ("duplicate", NOT_HANDLED)
    REPLAYED = ("replayed", NOT_HANDLED)


def kind_of(outcome: str) -> str:
    """The kind of an outcome given by name; anything unknown is a failure."""
    try:
        return Outcome(outcome).kind
    except ValueError:
        return kinds.FAILED
