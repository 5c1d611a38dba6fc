"""Chat commands: a message that starts with ``\\`` or ``/`` after any leading whitespace.

Group messages arrive as ``" \\clear"`` (DingTalk keeps the space after the removed @-mention),
which is why the tutorial's ``startswith("\\\\")`` missed them. A command that changes the
conversation writes one record and returns its name: when the confirmation reaches nobody,
the record is taken back, so what the chat was told and what the bot does never disagree.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

from shared.common.card_actions import BAD, GOOD
from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.config import ReplyConfig
from shared.reply.conversation_settings import PERSONA, PERSONA_MAX_CHARS, InForce
from shared.reply.oss.history import Conversation
from shared.reply.oss.storage import Storage
from shared.reply.oss.usage import Entry, Totals, short
from shared.reply.outcomes import Outcome
from shared.reply.timezone import zone_of

PREFIXES = ("\\", "/")
COMMAND_ECHO_CHARS = 40
SETTINGS_COMMANDS = ("设置", "settings")
SCHEDULE_COMMANDS = ("定时", "schedule")


class Command(NamedTuple):
    """``\\name argument``, as the user typed it."""

    name: str
    argument: str


class Done(NamedTuple):
    """What to say, what happened, and the record to take back if nobody hears it."""

    text: str
    outcome: str
    records: Tuple[str, ...] = ()
    plain: bool = False  # the text echoes what the user typed: sent as text, never rendered as markdown


def parse_command(text: str) -> Optional[Command]:
    text = text.strip()
    if len(text) < 2 or text[0] not in PREFIXES or text[1] in PREFIXES or text[1].isspace():
        return None
    name, _, argument = text[1:].partition(" ")
    return Command(name.lower(), argument.strip())


class Commands:
    """``config`` is the deployment's; ``force`` the settings this conversation is answered with (its own and the
    operator's, ``conversation_settings.py``), which the commands that describe the bot describe."""

    def __init__(self, config: ReplyConfig, storage: Storage, force: Optional[InForce] = None) -> None:
        self.config = config
        self.storage = storage
        self.force = force
        self.current = force.config if force is not None else config

    def run(self, command: Command, key: str, message: IncomingMessage, conversation: Conversation,
            settings_key: Optional[str] = None) -> Done:
        if command.name == "clear":
            if message.is_group and self.config.access.clear_admins_only and not message.isAdmin:
                return Done(texts.CLEAR_ADMIN_ONLY, Outcome.NOT_ADMIN)
            record = self.storage.record("a \\clear", lambda h, at: h.add_clear(key, message.msgId, at),
                                         message.createAt)
            if not record:
                return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
            return Done(texts.CLEARED, Outcome.CLEARED, (record,))
        if command.name == "help":
            return Done(texts.HELP, Outcome.HELP)
        if command.name == "model":
            return Done(texts.MODEL.format(model=self._model_name()), Outcome.MODEL)
        if command.name == "usage":
            return self._usage(message)
        if command.name == "kb":
            return self._knowledge()
        if command.name == "tools":
            return self._tools()
        if command.name == "system" and self.current.brain.kind != "chat":
            return Done(texts.PERSONA_ON_PLATFORM.format(platform=texts.PLATFORM_NAMES[self.current.brain.kind]),
                        Outcome.PERSONA_PLATFORM)
        if command.name == "system":
            return self._persona(command.argument, key, message, conversation)
        if command.name in SCHEDULE_COMMANDS:
            from shared.reply.address import ChatAddress
            from shared.reply.schedule_command import ScheduleCommand

            return ScheduleCommand(self.config, self.storage, has_app=self.current.app is not None,
                                   clock=lambda: dt.datetime.now(self.storage.calendar.zone)).run(
                command.argument, message, ChatAddress.of(message))
        if command.name in SETTINGS_COMMANDS:
            from shared.reply.settings_command import SettingsCommand

            return SettingsCommand(self.config, self.storage, self.force).run(
                command.argument, settings_key or key, key, message)
        return Done(texts.UNKNOWN_COMMAND.format(command=command.name[:COMMAND_ECHO_CHARS]), Outcome.UNKNOWN_COMMAND,
                       plain=True)

    def _model_name(self) -> str:
        brain = self.current.brain
        if brain.kind == "bailian":
            return f"{texts.PLATFORM_NAMES[brain.kind]} {brain.app_id}"
        if brain.kind == "dify":
            return f"{texts.PLATFORM_NAMES[brain.kind]}（{brain.endpoint}）"
        return self.current.model.model

    def _tools(self) -> Done:
        from shared.reply.tools.registry import tools_for

        tools = tools_for(self.current.tools)
        if not tools:
            return Done(texts.TOOLS_NONE, Outcome.TOOLS)
        described = {"read_url": "读取你给的链接", "web_search": f"联网搜索（{self.current.tools.search_provider}）"}
        lines = "\n".join(f"- {tool.name}：{described.get(tool.name, tool.description)}" for tool in tools)
        return Done(texts.TOOLS_LIST.format(tools=lines), Outcome.TOOLS, plain=True)

    def _knowledge(self) -> Done:
        """The documents of the knowledge folder's index and when it was built."""
        from shared.reply.knowledge.index import load as load_index

        folder = Path(self.current.knowledge.folder)
        if not self.current.knowledge.folder or not folder.is_dir():
            return Done(texts.KB_NONE, Outcome.KB)
        index = load_index(folder)
        if index is None or not index.files:
            return Done(texts.KB_EMPTY, Outcome.KB)
        built = dt.datetime.fromtimestamp(index.built_at / 1000, zone_of(self.config.timezone))
        files = "\n".join(f"- {source}（{entry.get('chunks', 0)} 段）" for source, entry in sorted(index.files.items()))
        return Done(texts.KB_LIST.format(count=len(index.files), built=f"{built:%Y-%m-%d %H:%M}", files=files),
                       Outcome.KB, plain=True)

    def _usage(self, message: IncomingMessage) -> Done:
        """Today and this month, for the asker and for the conversation: answered questions, tokens, cost."""
        month = self.storage.usage_month()
        if month is None:
            return Done(texts.USAGE_UNAVAILABLE, Outcome.USAGE)
        today = self.storage.calendar.day()
        sender, conversation = short(message.sender_key), short(message.conversationId)

        def line(entries: List[Entry]) -> str:
            totals = Totals.of(entries)
            return texts.USAGE_LINE.format(messages=totals.messages, tokens=totals.tokens,
                                           cost=totals.cost_micro / 1_000_000)

        def of_today(entries: List[Entry]) -> List[Entry]:
            return [e for e in entries if self.storage.calendar.day(e.at_ms / 1000) == today]

        mine = [e for e in month if e.sender == sender]
        here = [e for e in month if e.conversation == conversation]
        report = texts.USAGE.format(day=today, tz=self.config.timezone, me_today=line(of_today(mine)),
                                    me_month=line(mine), here_today=line(of_today(here)), here_month=line(here))
        return Done(report + self._feedback(message, today, conversation), Outcome.USAGE)

    def _feedback(self, message: IncomingMessage, today: str, conversation: str) -> str:
        """For a group's admins (or in a one-to-one chat): today's 👍/👎 on answers' cards (CARD_BUTTONS=on)."""
        marks = self.storage.cards
        if marks is None or self.config.card is None or not self.config.card.buttons or \
                (message.is_group and not message.isAdmin):
            return ""
        try:
            votes = marks.feedback_on(today)
        except OSError:
            return ""
        here = [v for v in votes if v.get("conversation") == conversation]
        return texts.USAGE_FEEDBACK.format(good_here=sum(v["value"] == GOOD for v in here),
                                           bad_here=sum(v["value"] == BAD for v in here),
                                           good_all=sum(v["value"] == GOOD for v in votes),
                                           bad_all=sum(v["value"] == BAD for v in votes))

    def _persona(self, argument: str, key: str, message: IncomingMessage, conversation: Conversation) -> Done:
        """``\\system`` shows, ``\\system <text>`` sets, ``\\system reset`` clears the persona.
        In a group the persona speaks for everyone, so only an admin (``isAdmin``) may change it. The
        operator's ``SYSTEM_PROMPT`` is never shown: it may hold what members should not read."""
        locked = self.force is not None and PERSONA in self.force.locked
        if not argument:
            if conversation.persona and not locked:
                return Done(texts.PERSONA_SHOW.format(persona=conversation.persona), Outcome.PERSONA_SHOWN)
            if self.current.conversation.persona:
                return Done(texts.PERSONA_DEFAULT, Outcome.PERSONA_SHOWN)
            return Done(texts.PERSONA_NONE, Outcome.PERSONA_SHOWN)
        if message.is_group and not message.isAdmin:
            return Done(texts.ADMIN_ONLY, Outcome.NOT_ADMIN)
        if locked:
            return Done(texts.SETTING_LOCKED.format(item=PERSONA), Outcome.LOCKED)
        if len(argument) > PERSONA_MAX_CHARS:
            return Done(texts.PERSONA_TOO_LONG.format(limit=PERSONA_MAX_CHARS), Outcome.PERSONA_TOO_LONG)
        persona = None if argument.lower() == "reset" else argument
        record = self.storage.record("a persona", lambda h, at: h.set_persona(key, message.msgId, at, persona),
                                     message.createAt)
        if not record:
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        if persona is None:
            return Done(texts.PERSONA_RESET, Outcome.PERSONA_RESET, (record,))
        return Done(texts.PERSONA_SET.format(persona=persona), Outcome.PERSONA_SET, (record,))
