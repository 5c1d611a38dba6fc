"""Settings of ``dingtalk_chatgpt_reply``, the event function, read once from its environment.

The tutorial's names keep their meaning: ``CHATGPT_API_KEY``, ``USER_API_KEY``, ``ENDPOINT``
(the model service), ``HISTORY_LENGTH``, ``OSS_MOUNT_POINT``, ``TIMEOUT``, ``VERBOSE``.
Everything else is optional.

``ReplyConfig`` is made of groups, one for each part of the reply path that uses them (the chat model,
the brain, the knowledge folder, the tools, DingTalk, the conversation, storage and quotas), each in the
module of this package named for it. A part takes its group, never the whole record, and settings that
differ per conversation are a group replaced (``_replace``), not a new record.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional, Tuple

from shared.common.settings import EnvReader, load_once
from shared.reply import timezone
from shared.reply.config.brain import BrainSettings
from shared.reply.config.chat import AccessSettings, ConversationSettings, MediaSettings, ScheduleSettings
from shared.reply.config.dingtalk import (
    BUILTIN_CARD_TEMPLATE,
    CardSettings,
    DeliverySettings,
    DingTalkApp,
    allowed_webhook_hosts,
)
from shared.reply.config.knowledge import KnowledgeSettings
from shared.reply.config.model import ModelSettings, timeout_seconds
from shared.reply.config.storage import Quotas, StorageSettings
from shared.reply.config.tools import ToolSettings

__all__ = ["BUILTIN_CARD_TEMPLATE", "CardSettings", "DingTalkApp", "ReplyConfig", "allowed_webhook_hosts",
           "load_reply_config"]

VARIABLES = (
    "CHATGPT_API_KEY", "USER_API_KEY", "ENDPOINT", "MODEL", "SYSTEM_PROMPT", "TEMPERATURE",
    "TIMEOUT", "HISTORY_LENGTH", "HISTORY_SCOPE", "OSS_MOUNT_POINT", "ALLOWED_WEBHOOK_HOSTS",
    "MAX_MESSAGE_BYTES", "LLM_MAX_RETRIES", "ALLOWED_CONVERSATIONS", "ALLOWED_USERS", "VERBOSE",
    "DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGTALK_CARD_TEMPLATE_ID", "DINGTALK_CARD_CONTENT_KEY",
    "DINGTALK_API_ENDPOINT", "CARD_UPDATE_INTERVAL_MS", "OSS_BUCKET", "OSS_ENDPOINT", "CARD_STREAMING",
    "CARD_MAX_CHARS", "CARD_MAX_CALLS", "CARD_BUTTONS", "SHOW_REASONING", "MAX_CONTEXT_TOKENS", "VISION_MODEL",
    "MAX_FILE_MB", "FILE_TEXT_CHARS", "OSS_REGION", "MAX_MESSAGE_MEDIA_MB", "CLEAR_IN_GROUPS",
    "TZ", "USAGE_KEEP_DAYS", "QUOTA_USER_DAILY_MESSAGES", "QUOTA_USER_DAILY_TOKENS",
    "QUOTA_CONVERSATION_DAILY_TOKENS", "QUOTA_EXEMPT_USERS", "MODEL_PRICES", "KNOWLEDGE_DIR", "EMBEDDING_MODEL",
    "EMBEDDING_ENDPOINT", "EMBEDDING_API_KEY", "KB_TOP_K", "KB_MIN_SCORE", "KB_REFRESH_SECONDS", "KB_BACKEND",
    "DASHVECTOR_ENDPOINT", "DASHVECTOR_API_KEY", "DASHVECTOR_COLLECTION",
    "TOOLS", "MAX_TOOL_ROUNDS", "TOOL_ALLOW_HOSTS", "SEARCH_PROVIDER", "SEARCH_API_KEY", "SEARCH_ENDPOINT",
    "MCP_SERVERS", "IMAGE_MODEL", "IMAGE_ENDPOINT", "ANSWER_IMAGE_HOSTS", "BRAIN", "BAILIAN_APP_ID",
    "DASHSCOPE_API_KEY", "DASHSCOPE_ENDPOINT", "BAILIAN_BIZ_PARAMS", "DIFY_ENDPOINT", "DIFY_API_KEY",
    "ALLOWED_MODELS", "MAX_HISTORY_LENGTH", "BOTS", "SCHEDULE_GRACE_MINUTES", "SCHEDULE_MIN_INTERVAL_MINUTES",
)


class ReplyConfig(NamedTuple):
    """The reply function's settings, read from the environment once (``load_reply_config``)."""

    model: ModelSettings
    brain: BrainSettings
    knowledge: KnowledgeSettings
    tools: ToolSettings
    app: Optional[DingTalkApp]
    card: Optional[CardSettings]
    delivery: DeliverySettings
    access: AccessSettings
    conversation: ConversationSettings
    media: MediaSettings
    storage: StorageSettings
    quotas: Quotas
    timezone: str
    log_level: int
    schedules: ScheduleSettings = ScheduleSettings(30, 60)
    brains: Tuple[BrainSettings, ...] = ()  # what a conversation may choose (``BrainSettings.choices``)

    @property
    def claim_ttl_ms(self) -> int:
        """How long a message being answered blocks a second delivery: ``TIMEOUT`` bounds the model
        call with its retries; the rest is room for paced, retried webhook posts."""
        return int((self.model.timeout_seconds + 300) * 1000)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ReplyConfig":
        read = EnvReader(env)
        app = DingTalkApp.read(read)
        timeout = timeout_seconds(read)
        brain = BrainSettings.read(read, timeout)
        model = ModelSettings.read(read, timeout, needed=brain.kind == "chat")
        media = MediaSettings.read(read)
        return read.finish(cls(
            model=model,
            brain=brain,
            knowledge=KnowledgeSettings.read(read, model, media.file_text_chars),
            tools=ToolSettings.read(read, model, media.max_file_bytes, media.file_text_chars),
            app=app,
            card=CardSettings.read(read, app),
            delivery=DeliverySettings.read(read),
            access=AccessSettings.read(read),
            conversation=ConversationSettings.read(read),
            media=media,
            storage=StorageSettings.read(read),
            quotas=Quotas.read(read),
            timezone=_timezone(read),
            log_level=read.log_level(),
            schedules=ScheduleSettings.read(read),
            brains=brain.choices(read, bool(model.api_key)),
        ))


def _timezone(read: EnvReader) -> str:
    name = read.text("TZ") or timezone.DEFAULT_TIMEZONE
    problem = timezone.problem(name)
    if problem:
        read.fail("TZ", f"{name!r} {problem}",
                  f"「{name}」不是这个运行环境认识的时区（拼写对吗？例如 Asia/Shanghai）；"
                  f"用量按天统计和回答里的当前时间都用它")
    return name


def load_reply_config(env: Mapping[str, str]) -> ReplyConfig:
    return load_once(ReplyConfig.from_env, VARIABLES, env)
