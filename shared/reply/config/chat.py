"""What the chat itself is allowed and kept: who may ask, how much of a conversation is remembered, and
how large the pictures and files of a question may be."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from shared.common.settings import EnvReader


class AccessSettings(NamedTuple):
    """``ALLOWED_CONVERSATIONS`` / ``ALLOWED_USERS`` (empty: everyone), and whether only a group's admins may
    ``\\clear`` it (``CLEAR_IN_GROUPS=admins``)."""

    conversations: Tuple[str, ...]
    users: Tuple[str, ...]
    clear_admins_only: bool

    @classmethod
    def read(cls, read: EnvReader) -> "AccessSettings":
        return cls(read.id_list("ALLOWED_CONVERSATIONS"), read.id_list("ALLOWED_USERS"),
                   read.choice("CLEAR_IN_GROUPS", "everyone", ("everyone", "admins")) == "admins")


class ConversationSettings(NamedTuple):
    """``HISTORY_LENGTH`` turns are remembered, per group or per member of it (``HISTORY_SCOPE=sender``);
    ``persona`` (``SYSTEM_PROMPT``) speaks unless the conversation set its own with ``\\system``. A conversation may
    choose up to ``max_history_length`` turns (``MAX_HISTORY_LENGTH``, by default ``HISTORY_LENGTH``)."""

    history_length: int
    per_sender: bool
    persona: Optional[str]
    max_history_length: int

    @classmethod
    def read(cls, read: EnvReader) -> "ConversationSettings":
        length = read.number("HISTORY_LENGTH", 5, int, 0, 1000)
        return cls(length, read.choice("HISTORY_SCOPE", "conversation", ("conversation", "sender")) == "sender",
                   read.text("SYSTEM_PROMPT"), max(length, read.number("MAX_HISTORY_LENGTH", length, int, 0, 1000)))


class MediaSettings(NamedTuple):
    """Pictures and files of a question: one file's size, all of a message's, and the text kept of a file."""

    max_file_bytes: int
    max_message_media_bytes: int
    file_text_chars: int

    @classmethod
    def read(cls, read: EnvReader) -> "MediaSettings":
        return cls(read.number("MAX_FILE_MB", 10, int, 1, 20) * 1024 * 1024,
                   read.number("MAX_MESSAGE_MEDIA_MB", 20, int, 1, 40) * 1024 * 1024,
                   read.number("FILE_TEXT_CHARS", 20000, int, 1000, 500_000))


class ScheduleSettings(NamedTuple):
    """Scheduled messages (``\\定时``): a due time missed by more than ``grace_minutes`` is skipped, never sent
    late; no schedule may run more often than every ``min_interval_minutes``."""

    grace_minutes: int
    min_interval_minutes: int

    @classmethod
    def read(cls, read: EnvReader) -> "ScheduleSettings":
        return cls(read.number("SCHEDULE_GRACE_MINUTES", 30, int, 1, 1440),
                   read.number("SCHEDULE_MIN_INTERVAL_MINUTES", 60, int, 1, 10080))
