"""``\\设置``: a conversation's settings, shown and changed from the chat (``conversation_settings.py``).

Anyone in the conversation may look; in a group only its admins (DingTalk's ``isAdmin``) may change them, in a
one-to-one chat the person. A change writes all of the conversation's own settings as one record, so every
instance answers the next message with them; like every command's record it is taken back when the
confirmation reached nobody. The persona item is the persona ``\\system`` sets.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.commands import Done
from shared.reply.config import ReplyConfig
from shared.reply.conversation_settings import (
    BACK_TO_DEFAULT,
    ITEMS,
    OWN,
    PERSONA,
    InForce,
    Refused,
    check,
    in_force,
    shown,
    stored,
)
from shared.reply.oss.operator import file_name
from shared.reply.oss.storage import Storage
from shared.reply.outcomes import Outcome

RESET = "重置"
EXAMPLES = {"模型": "qwen-max", "人设": "你是销售助理", "知识库": "销售", "工具": "read_url,web_search",
            "大脑": "模型", "上下文": "10", "配额": "200000"}


class SettingsCommand:
    def __init__(self, config: ReplyConfig, storage: Storage, force: Optional[InForce]) -> None:
        self.config = config
        self.storage = storage
        self.force = force or in_force(config, {}, {}, None)

    def run(self, argument: str, settings_key: str, key: str, message: IncomingMessage) -> Done:
        """``settings_key``: where the conversation's settings are kept; ``key``: its persona (``\\system``)."""
        if not argument:
            return Done(self._listing(message), Outcome.SETTINGS_SHOWN, plain=True)
        if message.is_group and not message.isAdmin:
            return Done(texts.SETTINGS_ADMIN_ONLY, Outcome.NOT_ADMIN)
        item, _, value = argument.partition(" ")
        value = value.strip()
        if item == RESET:
            return self._reset(settings_key, key, message)
        if item not in ITEMS:
            return Done(texts.SETTING_UNKNOWN.format(item=item[:20], items="、".join(ITEMS)), Outcome.SETTING_REFUSED,
                        plain=True)
        if item in self.force.locked:
            return Done(texts.SETTING_LOCKED.format(item=item), Outcome.LOCKED)
        if not value:
            return Done(texts.SETTING_NEEDS_VALUE.format(item=item, example=EXAMPLES[item]), Outcome.SETTING_REFUSED)
        back = value == BACK_TO_DEFAULT
        try:
            checked = None if back else check(self.config, item, value, by_operator=False, knowledge_on_disk=True)
        except Refused as refused:
            return Done(str(refused), Outcome.SETTING_REFUSED, plain=True)
        own = {k: v for k, v in self.force.own.items() if k != item}
        if item == PERSONA:
            records = self._write_persona(key, message, checked)
        else:
            own.update({} if back else {item: stored(item, checked)})
            records = self._write_settings(settings_key, message, own)
        if not records:
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        # The item as it is now in force (the operator's value or the default when it went back).
        after = in_force(self.config, self.force.operator, own, checked if item == PERSONA else None)
        text = (texts.SETTING_BACK if back else texts.SETTING_SET).format(item=item, value=self._value(after, item))
        return Done(text, Outcome.SETTING_SET, records, plain=True)

    def _value(self, force: InForce, item: str) -> str:
        return shown(force, item, self.config.knowledge.folder)

    def _listing(self, message: IncomingMessage) -> str:
        force = self.force
        lines = "\n".join(texts.SETTING_LINE.format(
            item=item, value=self._value(force, item), source=force.sources[item],
            locked=texts.SETTING_LOCKED_MARK if item in force.locked else "") for item in ITEMS)
        return texts.SETTINGS.format(items=lines, file=file_name(message.conversationId),
                                     conversation=message.conversationId)

    def _write_settings(self, settings_key: str, message: IncomingMessage, own: Dict[str, Any]) -> Tuple[str, ...]:
        name = self.storage.record("the conversation's settings",
                                   lambda h, at: h.set_settings(settings_key, message.msgId, at, own), message.createAt)
        return (name,) if name else ()

    def _write_persona(self, key: str, message: IncomingMessage, persona: Optional[str]) -> Tuple[str, ...]:
        name = self.storage.record("a persona", lambda h, at: h.set_persona(key, message.msgId, at, persona),
                                   message.createAt)
        return (name,) if name else ()

    def _reset(self, settings_key: str, key: str, message: IncomingMessage) -> Done:
        """Every item back to the operator's or the default; the persona too, unless the operator locked it."""
        records = self._write_settings(settings_key, message, {})
        if records and self.force.sources[PERSONA] == OWN:
            persona = self._write_persona(key, message, None)
            if not persona:
                self.storage.undo(records)
            records = records + persona if persona else ()
        if not records:
            return Done(texts.NOT_SAVED, Outcome.STORAGE_ERROR)
        return Done(texts.SETTINGS_RESET, Outcome.SETTINGS_RESET, records)
