"""Settings of ``dingtalk_chatgpt_reply``, the event function, read once from its environment.

The tutorial's names keep their meaning: ``CHATGPT_API_KEY``, ``USER_API_KEY``, ``ENDPOINT``
(the model service), ``HISTORY_LENGTH``, ``OSS_MOUNT_POINT``, ``TIMEOUT``, ``VERBOSE``.
Everything else is optional.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from shared.common.settings import EnvReader, load_once
from shared.reply import timezone
from shared.reply.prices import parse_prices

DEFAULT_LLM_ENDPOINT = "https://api.openai.com"
COMPLETIONS_PATH = "/chat/completions"
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_WEBHOOK_HOSTS = ("oapi.dingtalk.com", "api.dingtalk.com")
DEFAULT_DINGTALK_API = "https://api.dingtalk.com"
# DingTalk's built-in AI markdown card (what the official SDK's AIMarkdownCardInstance uses).
BUILTIN_CARD_TEMPLATE = "382e4302-551d-4880-bf29-a30acfab2e71.schema"
BUILTIN_CARD_CONTENT_KEY = "msgContent"
VARIABLES = (
    "CHATGPT_API_KEY", "USER_API_KEY", "ENDPOINT", "MODEL", "SYSTEM_PROMPT", "TEMPERATURE",
    "TIMEOUT", "HISTORY_LENGTH", "HISTORY_SCOPE", "OSS_MOUNT_POINT", "ALLOWED_WEBHOOK_HOSTS",
    "MAX_MESSAGE_BYTES", "LLM_MAX_RETRIES", "ALLOWED_CONVERSATIONS", "ALLOWED_USERS", "VERBOSE",
    "DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGTALK_CARD_TEMPLATE_ID", "DINGTALK_CARD_CONTENT_KEY",
    "DINGTALK_API_ENDPOINT", "CARD_UPDATE_INTERVAL_MS", "OSS_BUCKET", "OSS_ENDPOINT", "CARD_STREAMING",
    "CARD_MAX_CHARS", "CARD_MAX_CALLS", "SHOW_REASONING", "MAX_CONTEXT_TOKENS", "VISION_MODEL",
    "MAX_FILE_MB", "FILE_TEXT_CHARS", "OSS_REGION", "MAX_MESSAGE_MEDIA_MB", "CLEAR_IN_GROUPS",
    "TZ", "USAGE_KEEP_DAYS", "QUOTA_USER_DAILY_MESSAGES", "QUOTA_USER_DAILY_TOKENS",
    "QUOTA_CONVERSATION_DAILY_TOKENS", "QUOTA_EXEMPT_USERS", "MODEL_PRICES", "KNOWLEDGE_DIR", "EMBEDDING_MODEL",
    "EMBEDDING_ENDPOINT", "EMBEDDING_API_KEY", "KB_TOP_K", "KB_MIN_SCORE", "KB_REFRESH_SECONDS",
    "TOOLS", "MAX_TOOL_ROUNDS", "TOOL_ALLOW_HOSTS", "SEARCH_PROVIDER", "SEARCH_API_KEY", "SEARCH_ENDPOINT",
    "MCP_SERVERS", "IMAGE_MODEL", "IMAGE_ENDPOINT", "ANSWER_IMAGE_HOSTS", "BRAIN", "BAILIAN_APP_ID",
    "DASHSCOPE_API_KEY", "DASHSCOPE_ENDPOINT", "BAILIAN_BIZ_PARAMS", "DIFY_ENDPOINT", "DIFY_API_KEY",
)
BRAINS = ("chat", "bailian", "dify")
DEFAULT_DASHSCOPE_ENDPOINT = "https://dashscope.aliyuncs.com"
# oss-cn-hangzhou.aliyuncs.com, oss-cn-hangzhou-internal.aliyuncs.com, bucket.oss-cn-hangzhou.aliyuncs.com
OSS_HOST_REGION = re.compile(r"(?:^|\.)oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")


def llm_base_url(endpoint: str) -> str:
    """The tutorial's ``ENDPOINT`` is a service root; the SDK wants the ``/v1`` base URL.

    A bare root gets ``/v1``; a URL that already has a path (DashScope's
    ``.../compatible-mode/v1``, a proxy prefix) is used as given. The full
    ``.../v1/chat/completions`` URL that providers' pages show is accepted too: the SDK adds
    ``/chat/completions`` itself, so it is taken off.
    """
    endpoint = endpoint.strip().rstrip("/")
    if endpoint.endswith(COMPLETIONS_PATH):
        endpoint = endpoint[:-len(COMPLETIONS_PATH)]
    return endpoint if urlsplit(endpoint).path else endpoint + "/v1"


def allowed_webhook_hosts(read: EnvReader) -> Tuple[str, ...]:
    return tuple(h.lower() for h in read.id_list("ALLOWED_WEBHOOK_HOSTS")) or DEFAULT_WEBHOOK_HOSTS


# No generated repr (it would print the secrets) or __eq__ (never compared): both would be made at import,
# in every cold start.
@dataclass(frozen=True, repr=False, eq=False)
class DingTalkApp:
    """The app's credentials (开放平台 → 凭证与基础信息) and where its API lives; the OpenAPI needs them."""

    app_key: str
    app_secret: str
    api_endpoint: str

    @property
    def robot_code(self) -> str:
        """An enterprise-internal app's robot is addressed by the app's key."""
        return self.app_key

    @classmethod
    def read(cls, read: EnvReader) -> Optional["DingTalkApp"]:
        """None unless ``DINGTALK_APP_KEY`` is set; then the AppSecret is needed in this function too."""
        app_key = read.text("DINGTALK_APP_KEY")
        if not app_key:
            return None
        secret = read.required("DINGTALK_APP_SECRET", "DINGTALK_APP_KEY is set, so the reply function needs the "
                                                      "app's AppSecret too",
                               "设置了 DINGTALK_APP_KEY，回复函数也需要应用的 AppSecret")
        return cls(app_key, secret, read.url("DINGTALK_API_ENDPOINT", DEFAULT_DINGTALK_API))


@dataclass(frozen=True)
class CardSettings:
    """Answers streamed into a DingTalk AI card: on whenever the app is configured, unless
    ``CARD_STREAMING=off``. Without ``DINGTALK_CARD_TEMPLATE_ID`` the card is DingTalk's built-in AI
    markdown card, so an AppKey alone turns streaming on."""

    template_id: str
    content_key: str
    update_interval_seconds: float
    max_chars: int
    max_calls: int

    @property
    def builtin(self) -> bool:
        return self.template_id == BUILTIN_CARD_TEMPLATE

    @classmethod
    def read(cls, read: EnvReader, app: Optional[DingTalkApp]) -> Optional["CardSettings"]:
        streaming = read.choice("CARD_STREAMING", "on", ("on", "off")) == "on"
        if app is None or not streaming:
            return None
        template = read.text("DINGTALK_CARD_TEMPLATE_ID")
        content_key = (read.text("DINGTALK_CARD_CONTENT_KEY") or "content") if template else BUILTIN_CARD_CONTENT_KEY
        return cls(template or BUILTIN_CARD_TEMPLATE, content_key,
                   read.number("CARD_UPDATE_INTERVAL_MS", 300, int, 50, 10000) / 1000,
                   read.number("CARD_MAX_CHARS", 3000, int, 500, 3000),
                   read.number("CARD_MAX_CALLS", 25, int, 6, 200))


@dataclass(frozen=True)
class Quotas:
    """Daily limits (unset: unlimited), counted in ``TZ`` days; ``exempt`` users have none."""

    user_messages: Optional[int] = None
    user_tokens: Optional[int] = None
    conversation_tokens: Optional[int] = None
    exempt: Tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return any(limit is not None for limit in (self.user_messages, self.user_tokens, self.conversation_tokens))

    @classmethod
    def read(cls, read: EnvReader) -> "Quotas":
        def limit(name: str) -> Optional[int]:
            return read.number(name, None, int, 1, 10**12)

        return cls(limit("QUOTA_USER_DAILY_MESSAGES"), limit("QUOTA_USER_DAILY_TOKENS"),
                   limit("QUOTA_CONVERSATION_DAILY_TOKENS"), read.id_list("QUOTA_EXEMPT_USERS"))


@dataclass(frozen=True, repr=False, eq=False)  # as DingTalkApp
class BrainSettings:
    """What answers (``BRAIN``): the chat model (``chat``, the default, set by the tutorial's variables), a
    Bailian application (``bailian``: ``BAILIAN_APP_ID``, ``DASHSCOPE_API_KEY``) or a Dify app (``dify``:
    ``DIFY_ENDPOINT``, ``DIFY_API_KEY``). ``endpoint`` is the platform's API root, ``biz_params`` whether the
    asker's nick and the group's name go to a Bailian application as parameters."""

    kind: str = "chat"
    endpoint: str = ""
    api_key: str = ""
    app_id: str = ""
    biz_params: bool = False

    @classmethod
    def read(cls, read: EnvReader) -> "BrainSettings":
        kind = read.choice("BRAIN", "chat", BRAINS)
        if kind == "bailian":
            return cls(kind, read.url("DASHSCOPE_ENDPOINT", DEFAULT_DASHSCOPE_ENDPOINT).rstrip("/"),
                       read.required("DASHSCOPE_API_KEY", "BRAIN=bailian needs the Bailian (DashScope) API key",
                                     "BRAIN=bailian 需要百炼（DashScope）的 API Key"),
                       read.required("BAILIAN_APP_ID", "BRAIN=bailian needs the application's id",
                                     "BRAIN=bailian 需要百炼应用的 ID（应用管理页的应用卡片上）"),
                       read.choice("BAILIAN_BIZ_PARAMS", "off", ("off", "on")) == "on")
        if kind == "dify":
            endpoint = read.required("DIFY_ENDPOINT", "BRAIN=dify needs the app's API base, e.g. https://api.dify.ai/v1",
                                     "BRAIN=dify 需要应用的 API 地址（Dify「访问 API」页上的 API 服务器，"
                                     "例如 https://api.dify.ai/v1）")
            base = read.url("DIFY_ENDPOINT", "") if endpoint else ""
            # The API base as Dify's console shows it ends in /v1; a bare host gets it.
            return cls(kind, base if urlsplit(base).path or not base else base + "/v1",
                       read.required("DIFY_API_KEY", "BRAIN=dify needs the app's API key",
                                     "BRAIN=dify 需要应用的 API 密钥（「访问 API」页右上角）"))
        return cls(kind)


def _prices(read: EnvReader) -> Dict[str, Tuple[float, float]]:
    try:
        return parse_prices(read.text("MODEL_PRICES"))
    except ValueError as exc:
        read.fail("MODEL_PRICES", f"{exc}; e.g. {{\"qwen-plus\": [0.8, 2]}} (yuan per million input/output tokens)",
                  f"格式不对（{exc}）；例如 {{\"qwen-plus\": [0.8, 2]}}（每百万输入/输出 token 的价格，单位元）")
        return {}


@dataclass(frozen=True, repr=False, eq=False)  # as DingTalkApp
class ReplyConfig:
    """The reply function's settings, read from the environment once (``load_reply_config``)."""

    api_key: str
    llm_base_url: str
    model: str
    vision_model: str
    system_prompt: Optional[str]
    temperature: Optional[float]
    timeout_seconds: float
    history_length: int
    history_per_sender: bool
    clear_admins_only: bool
    oss_mount_point: str
    oss_bucket: Optional[str]
    oss_endpoint: str
    oss_region: Optional[str]
    allowed_webhook_hosts: Tuple[str, ...]
    max_message_bytes: int
    llm_max_retries: int
    allowed_conversations: Tuple[str, ...]
    allowed_users: Tuple[str, ...]
    app: Optional[DingTalkApp]
    card: Optional[CardSettings]
    show_reasoning: bool
    max_context_tokens: Optional[int]
    max_file_bytes: int
    max_message_media_bytes: int
    file_text_chars: int
    timezone: str
    usage_keep_days: int
    quotas: Quotas
    prices: Dict[str, Tuple[float, float]]
    knowledge_dir: str
    embedding_model: str
    embedding_base_url: str
    embedding_api_key: str
    kb_top_k: int
    kb_min_score: float
    kb_refresh_seconds: float
    tools: Tuple[str, ...]
    max_tool_rounds: int
    tool_allow_hosts: Tuple[str, ...]
    answer_image_hosts: Tuple[str, ...]  # hosts whose pictures an answer may show (safe_markdown.py)
    search_provider: Optional[str]
    search_api_key: str
    search_endpoint: Optional[str]
    mcp_servers: Tuple[Any, ...]
    image_model: Optional[str]
    image_base_url: str
    brain: BrainSettings
    log_level: int

    @property
    def claim_ttl_ms(self) -> int:
        """How long a message being answered blocks a second delivery: ``TIMEOUT`` bounds the model
        call with its retries; the rest is room for paced, retried webhook posts."""
        return int((self.timeout_seconds + 300) * 1000)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ReplyConfig":
        read = EnvReader(env)
        base_url = llm_base_url(read.url("ENDPOINT", DEFAULT_LLM_ENDPOINT))
        temperature = read.text("TEMPERATURE")
        app = DingTalkApp.read(read)
        brain = BrainSettings.read(read)
        api_key = _api_key(read, base_url, needed=brain.kind == "chat")
        return read.finish(cls(
            api_key=api_key,
            llm_base_url=base_url,
            model=read.text("MODEL") or DEFAULT_MODEL,
            vision_model=read.text("VISION_MODEL") or read.text("MODEL") or DEFAULT_MODEL,
            system_prompt=read.text("SYSTEM_PROMPT"),
            temperature=None if temperature is None else read.number("TEMPERATURE", 0.0, float, 0.0, 2.0),
            timeout_seconds=read.number("TIMEOUT", 55.0, float, 1.0, 86400.0),
            history_length=read.number("HISTORY_LENGTH", 5, int, 0, 1000),
            history_per_sender=read.choice("HISTORY_SCOPE", "conversation", ("conversation", "sender")) == "sender",
            clear_admins_only=read.choice("CLEAR_IN_GROUPS", "everyone", ("everyone", "admins")) == "admins",
            oss_mount_point=read.text("OSS_MOUNT_POINT") or "/mnt/oss",
            oss_bucket=read.text("OSS_BUCKET"),
            oss_endpoint=_oss_endpoint(read),
            oss_region=read.text("OSS_REGION") or oss_region_of(read.text("OSS_ENDPOINT") or ""),
            allowed_webhook_hosts=allowed_webhook_hosts(read),
            max_message_bytes=read.number("MAX_MESSAGE_BYTES", 6000, int, 500, 14000),
            llm_max_retries=read.number("LLM_MAX_RETRIES", 2, int, 0, 5),
            allowed_conversations=read.id_list("ALLOWED_CONVERSATIONS"),
            allowed_users=read.id_list("ALLOWED_USERS"),
            app=app,
            card=CardSettings.read(read, app),
            show_reasoning=read.choice("SHOW_REASONING", "off", ("off", "quote")) == "quote",
            max_context_tokens=read.number("MAX_CONTEXT_TOKENS", None, int, 500, 10_000_000),
            max_file_bytes=read.number("MAX_FILE_MB", 10, int, 1, 20) * 1024 * 1024,
            max_message_media_bytes=read.number("MAX_MESSAGE_MEDIA_MB", 20, int, 1, 40) * 1024 * 1024,
            file_text_chars=read.number("FILE_TEXT_CHARS", 20000, int, 1000, 500_000),
            timezone=_timezone(read),
            usage_keep_days=read.number("USAGE_KEEP_DAYS", 35, int, 32, 3650),
            quotas=Quotas.read(read),
            prices=_prices(read),
            knowledge_dir=read.text("KNOWLEDGE_DIR") or str(Path(read.text("OSS_MOUNT_POINT") or "/mnt/oss")
                                                            / "dingbot" / "knowledge"),
            embedding_model=read.text("EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL,
            embedding_base_url=llm_base_url(read.url("EMBEDDING_ENDPOINT", "")) if read.text("EMBEDDING_ENDPOINT")
            else base_url,
            embedding_api_key=read.text("EMBEDDING_API_KEY") or api_key,
            kb_top_k=read.number("KB_TOP_K", 4, int, 1, 20),
            kb_min_score=read.number("KB_MIN_SCORE", 0.3, float, 0.0, 1.0),
            kb_refresh_seconds=read.number("KB_REFRESH_SECONDS", 10.0, float, 1.0, 600.0),
            tools=_tools(read),
            max_tool_rounds=read.number("MAX_TOOL_ROUNDS", 4, int, 1, 10),
            tool_allow_hosts=tuple(h.lower() for h in read.id_list("TOOL_ALLOW_HOSTS")),
            answer_image_hosts=tuple(h.lower() for h in read.id_list("ANSWER_IMAGE_HOSTS")),
            search_provider=_search_provider(read),
            search_api_key=read.text("SEARCH_API_KEY") or "",
            search_endpoint=read.url("SEARCH_ENDPOINT", "") if read.text("SEARCH_ENDPOINT") else None,
            mcp_servers=_mcp_servers(read),
            image_model=read.text("IMAGE_MODEL"),
            image_base_url=llm_base_url(read.url("IMAGE_ENDPOINT", "")) if read.text("IMAGE_ENDPOINT") else base_url,
            brain=brain,
            log_level=read.log_level(),
        ))


def _api_key(read: EnvReader, base_url: str, *, needed: bool = True) -> str:
    """The tutorial's rule: ``CHATGPT_API_KEY`` for OpenAI, ``USER_API_KEY`` for other endpoints when set.
    Not ``needed`` when another brain answers (the chat model then serves only embeddings and drawing)."""
    is_openai = urlsplit(base_url).hostname == "api.openai.com"
    user_key = read.text("USER_API_KEY")
    key = read.text("CHATGPT_API_KEY") if is_openai else (user_key or read.text("CHATGPT_API_KEY"))
    if key is None and not needed:
        return ""
    if key is None:
        read.fail("CHATGPT_API_KEY" if is_openai else "USER_API_KEY", "not set: the model service's API key",
                  "没有设置：模型服务的 API Key")
        return ""
    return key


TOOL_NAMES = ("read_url", "web_search", "mcp", "draw_image")
SEARCH_PROVIDERS = ("bocha", "tavily", "searxng")


def _timezone(read: EnvReader) -> str:
    name = read.text("TZ") or timezone.DEFAULT_TIMEZONE
    problem = timezone.problem(name)
    if problem:
        read.fail("TZ", f"{name!r} {problem}",
                  f"「{name}」不是这个运行环境认识的时区（拼写对吗？例如 Asia/Shanghai）；"
                  f"用量按天统计和回答里的当前时间都用它")
    return name


def _tools(read: EnvReader) -> Tuple[str, ...]:
    """``auto`` (every tool whose settings are present), ``off``, or a comma list of tool names."""
    names = tuple(n.lower() for n in read.id_list("TOOLS")) or ("auto",)
    if names in (("auto",), ("off",)):
        return names
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown:
        read.fail("TOOLS", f"{', '.join(unknown)} unknown; use auto, off or a list of {', '.join(TOOL_NAMES)}",
                  f"{'、'.join(unknown)} 不认识；请写 auto、off 或 {'、'.join(TOOL_NAMES)} 中的几个（逗号分隔）")
    return names


def _mcp_servers(read: EnvReader) -> Tuple[Any, ...]:
    """``MCP_SERVERS``: ``{"name": {"url": "https://…/mcp", "headers": {…}}}``."""
    text = read.text("MCP_SERVERS")
    if not text:
        return ()
    from shared.reply.tools.mcp import Server

    example = '{"amap": {"url": "https://…/mcp", "headers": {"Authorization": "Bearer …"}}}'
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not an object")
        servers = []
        for name, entry in document.items():
            if not re.fullmatch(r"[a-zA-Z0-9_-]{1,30}", name) or not isinstance(entry, dict):
                raise ValueError(f"server {name!r}: names are letters, digits, _ and -")
            url, headers = entry.get("url"), entry.get("headers") or {}
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise ValueError(f"server {name!r} has no http(s) url")
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise ValueError(f"server {name!r}: headers must be strings")
            servers.append(Server(name, url, tuple(sorted(headers.items()))))
    except ValueError as exc:
        read.fail("MCP_SERVERS", f"{exc}; e.g. {example}", f"格式不对（{exc}）；例如 {example}")
        return ()
    return tuple(servers)


def _search_provider(read: EnvReader) -> Optional[str]:
    provider = read.text("SEARCH_PROVIDER")
    if provider is None:
        return None
    provider = read.choice("SEARCH_PROVIDER", "bocha", SEARCH_PROVIDERS)
    if provider != "searxng" and not read.text("SEARCH_API_KEY"):
        read.fail("SEARCH_API_KEY", f"SEARCH_PROVIDER={provider} needs its API key",
                  f"SEARCH_PROVIDER={provider} 需要它的 API Key")
    if provider == "searxng" and not read.text("SEARCH_ENDPOINT"):
        read.fail("SEARCH_ENDPOINT", "SEARCH_PROVIDER=searxng needs the instance's URL",
                  "SEARCH_PROVIDER=searxng 需要写上实例的地址")
    return provider


def _oss_endpoint(read: EnvReader) -> str:
    """Needed only with ``OSS_BUCKET``: claims then go through the OSS API of that region."""
    if read.text("OSS_BUCKET") is None:
        return ""
    if read.text("OSS_ENDPOINT") is None:
        read.fail("OSS_ENDPOINT", "OSS_BUCKET is set, so the bucket's endpoint is needed too, e.g. "
                                  "http://oss-cn-hangzhou-internal.aliyuncs.com",
                  "设置了 OSS_BUCKET，也需要桶的地址，例如 http://oss-cn-hangzhou-internal.aliyuncs.com")
        return ""
    return read.url("OSS_ENDPOINT", "")


def oss_region_of(endpoint: str) -> Optional[str]:
    """The region in an OSS endpoint's host name (V4 signatures are scoped to it), or None."""
    match = OSS_HOST_REGION.search((urlsplit(endpoint if "//" in endpoint else "//" + endpoint).hostname or ""))
    return match.group(1) if match else None


def load_reply_config(env: Mapping[str, str]) -> ReplyConfig:
    return load_once(ReplyConfig.from_env, VARIABLES, env)
