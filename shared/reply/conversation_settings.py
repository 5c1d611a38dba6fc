"""Settings per conversation: what a group's admins change with ``\\设置`` and the operator with a file on the
bucket (``oss/operator.py``), on top of the deployment's environment.

Item by item the environment gives the default (默认), the operator's file may change it (运营方), and the
conversation's own setting (本会话) wins over both, except for the items the operator's file lists under
``锁定``: those keep the operator's value, and ``\\设置`` refuses to change them. The conversation's own
settings are a history record (``oss/history.py``), read with the turns, so they cost no round trip of their
own; the operator's files are read at most once a minute per instance.

Every value is checked against what this deployment offers (``ALLOWED_MODELS``, the tools whose settings are
present, the knowledge folder's sub-folders, the brains whose variables are set, ``MAX_HISTORY_LENGTH`` and
the daily token limit), wherever it comes from: the operator may choose any model, any number of turns and
any limit, a group only within the operator's bounds; a value that no longer fits (the operator narrowed
``ALLOWED_MODELS``) is logged and the item falls back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, FrozenSet, NamedTuple, Optional, Tuple

from shared.common import log
from shared.reply import texts
from shared.reply.config import ReplyConfig

MODEL, PERSONA, KNOWLEDGE, TOOLS, BRAIN, HISTORY, QUOTA = "模型", "人设", "知识库", "工具", "大脑", "上下文", "配额"
ITEMS = (MODEL, PERSONA, KNOWLEDGE, TOOLS, BRAIN, HISTORY, QUOTA)
LOCKED = "锁定"
DEFAULT, OPERATOR, OWN = "默认", "运营方", "本会话"
# The names of the items in the log line and the usage record, which stay English.
LOG_NAMES = {MODEL: "model", PERSONA: "persona", KNOWLEDGE: "knowledge", TOOLS: "tools", BRAIN: "brain",
             HISTORY: "history", QUOTA: "quota"}
BACK_TO_DEFAULT = "默认"
NONE_WORDS = ("无", "关", "不用", "off", "none")
ALL_WORDS = ("全部", "开", "auto", "on")
UNLIMITED_WORDS = ("不限", "无限")
BRAIN_WORDS = {"模型": "chat", "chat": "chat", "百炼": "bailian", "bailian": "bailian", "dify": "dify"}
PERSONA_MAX_CHARS = 2000
LIST_SEPARATORS = re.compile(r"[\s,，、;；]+")

logger = log.get("settings")


class Refused(Exception):
    """A value this conversation may not have; the message is the one sentence the chat gets."""


class InForce(NamedTuple):
    """The settings one message is answered with, where each item's value came from, and what they were made
    of: the operator's settings and the conversation's own (as stored)."""

    config: ReplyConfig
    persona: Optional[str]
    sources: Dict[str, str]
    locked: FrozenSet[str]
    operator: Dict[str, Any]
    own: Dict[str, Any]

    def changed(self) -> Dict[str, str]:
        """The items not at their default, by their log names, for the summary line and the usage record."""
        return {LOG_NAMES[item]: source_tag(source) for item, source in self.sources.items() if source != DEFAULT}


def source_tag(source: str) -> str:
    return {OPERATOR: "operator", OWN: "conversation"}.get(source, "default")


def _number(item: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise Refused(texts.SETTING_NOT_A_NUMBER.format(item=item))
    return int(str(value).strip())


def _brain_names(config: ReplyConfig) -> str:
    return "、".join(texts.BRAIN_NAMES[brain.kind] for brain in config.brains)


def check(config: ReplyConfig, item: str, value: Any, *, by_operator: bool, knowledge_on_disk: bool = False) -> Any:
    """The value as the item keeps it, or ``Refused`` with why not. The operator may go beyond what a group
    may (any model, any number of turns, any daily limit); a group's sub-folder of the knowledge folder is
    looked for on the mount (``knowledge_on_disk``) when it is set, not at every message."""
    if item == MODEL:
        model = str(value).strip()
        if not model or (not by_operator and model not in config.model.allowed):
            others = [m for m in config.model.allowed if m != config.model.model]
            raise Refused(texts.MODEL_CHOICES.format(models="、".join(config.model.allowed)) if others
                          else texts.MODEL_FIXED.format(model=config.model.model))
        return model
    if item == PERSONA:
        persona = str(value).strip()
        if len(persona) > PERSONA_MAX_CHARS:
            raise Refused(texts.PERSONA_TOO_LONG.format(limit=PERSONA_MAX_CHARS))
        return persona or None
    if item == KNOWLEDGE:
        return _knowledge(config, str(value).strip(), knowledge_on_disk)
    if item == TOOLS:
        return _tools(config, value)
    if item == BRAIN:
        kind = BRAIN_WORDS.get(str(value).strip().lower())
        if kind is None or kind not in {brain.kind for brain in config.brains}:
            raise Refused(texts.BRAIN_CHOICES.format(brains=_brain_names(config)))
        return kind
    if item == HISTORY:
        turns = _number(item, value)
        limit = config.conversation.max_history_length  # what is kept (replier.py), for the operator too
        if turns > limit:
            raise Refused(texts.HISTORY_RANGE.format(limit=limit))
        return turns
    if item == QUOTA:
        ceiling = None if by_operator else config.quotas.conversation_tokens
        if str(value).strip() in UNLIMITED_WORDS:
            if ceiling is not None:
                raise Refused(texts.QUOTA_CEILING.format(limit=f"{ceiling:,}"))
            return None
        tokens = _number(item, value)
        if tokens < 1 or (ceiling is not None and tokens > ceiling):
            raise Refused(texts.QUOTA_CEILING.format(limit=f"{ceiling:,}") if ceiling else
                          texts.SETTING_NOT_A_NUMBER.format(item=item))
        return tokens
    raise Refused(texts.SETTING_UNKNOWN.format(item=item[:20], items="、".join(ITEMS)))


def _knowledge(config: ReplyConfig, name: str, on_disk: bool) -> str:
    """"" for none, else a sub-folder's name: one path part, never outside the knowledge folder."""
    if name.lower() in NONE_WORDS:
        return ""
    if not name or name.startswith(".") or "/" in name or "\\" in name or len(name) > 100:
        raise Refused(texts.KNOWLEDGE_NAME)
    if on_disk and not (Path(config.knowledge.folder) / name).is_dir():
        folders = sorted(p.name for p in Path(config.knowledge.folder).glob("*") if p.is_dir()
                         and not p.name.startswith(".")) if Path(config.knowledge.folder).is_dir() else []
        raise Refused(texts.KNOWLEDGE_MISSING.format(name=name, folders="、".join(folders) or "（还没有子目录）"))
    return name


def _tools(config: ReplyConfig, value: Any) -> Tuple[str, ...]:
    words = [str(v).strip() for v in value] if isinstance(value, list) else LIST_SEPARATORS.split(str(value).strip())
    words = [w.lower() for w in words if w]
    offered = config.tools.offered
    if words and all(w in NONE_WORDS for w in words):
        return ("off",)
    if not offered:
        raise Refused(texts.TOOLS_NOT_OFFERED)
    if words and all(w in ALL_WORDS for w in words):
        return ("auto",)
    if not words or any(w not in offered for w in words):
        raise Refused(texts.TOOLS_CHOICES.format(tools="、".join(offered)))
    return tuple(dict.fromkeys(words))


def stored(item: str, value: Any) -> Any:
    """A checked value as a settings record keeps it: what ``check`` reads back to the same value."""
    if item == KNOWLEDGE and not value:
        return NONE_WORDS[0]
    if item == QUOTA and value is None:
        return UNLIMITED_WORDS[0]
    return list(value) if isinstance(value, tuple) else value


def apply(config: ReplyConfig, item: str, value: Any) -> ReplyConfig:
    """``config`` with one checked value in force."""
    if item == MODEL:
        model = config.model
        vision = value if model.vision_model == model.model else model.vision_model
        return config._replace(model=model._replace(model=value, vision_model=vision))
    if item == PERSONA:
        return config._replace(conversation=config.conversation._replace(persona=value))
    if item == KNOWLEDGE:
        folder = str(Path(config.knowledge.folder) / value) if value else ""
        return config._replace(knowledge=config.knowledge._replace(folder=folder))
    if item == TOOLS:  # "全部" is all the operator offers: TOOLS as the environment has it
        return config._replace(tools=config.tools._replace(enabled=config.tools.enabled if value == ("auto",)
                                                           else value))
    if item == BRAIN:
        return config._replace(brain=next(brain for brain in config.brains if brain.kind == value))
    if item == HISTORY:
        return config._replace(conversation=config.conversation._replace(history_length=value))
    return config._replace(quotas=config.quotas._replace(conversation_tokens=value))


def locked_items(operator: Dict[str, Any]) -> FrozenSet[str]:
    listed = operator.get(LOCKED)
    return frozenset(item for item in listed if item in ITEMS) if isinstance(listed, list) else frozenset()


def in_force(config: ReplyConfig, operator: Dict[str, Any], own: Dict[str, Any],
             own_persona: Optional[str]) -> InForce:
    """The settings for one message of a conversation: ``config`` (the deployment's), the operator's file and the
    conversation's own settings and persona, item by item as the module docstring says."""
    locked = locked_items(operator)
    sources: Dict[str, str] = {}
    for item in ITEMS:
        chosen = [(OWN, own)] if item not in locked else []
        for source, given in chosen + [(OPERATOR, operator)]:
            if item not in given:
                continue
            try:
                value = check(config, item, given[item], by_operator=source == OPERATOR)
            except Refused as refused:
                logger.warning("the %s setting %s=%r is not used: %s", source_tag(source), LOG_NAMES[item],
                               given[item], refused)
                continue
            config, sources[item] = apply(config, item, value), source
            break
    persona = config.conversation.persona
    if own_persona and PERSONA not in locked:
        persona, sources[PERSONA] = own_persona, OWN
    for item in ITEMS:
        sources.setdefault(item, DEFAULT)
    return InForce(config, persona, sources, locked, operator, own)


def shown(force: InForce, item: str, root: str) -> str:
    """One item's value in force, as the chat reads it."""
    config = force.config
    if item == MODEL:
        return config.model.model
    if item == PERSONA:
        return texts.SETTING_PERSONA_SET if force.persona else texts.SETTING_PERSONA_NONE
    if item == KNOWLEDGE:
        folder = config.knowledge.folder
        return "无" if not folder else ("整个知识库目录" if folder == root else Path(folder).name)
    if item == TOOLS:
        enabled = config.tools.enabled
        names = config.tools.offered if enabled == ("auto",) else () if enabled == ("off",) else enabled
        return "、".join(names) or "关"
    if item == BRAIN:
        return texts.BRAIN_NAMES[config.brain.kind]
    if item == HISTORY:
        return f"{config.conversation.history_length} 轮"
    limit = config.quotas.conversation_tokens
    return f"每天 {limit:,} token" if limit else "不限"
