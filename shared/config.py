"""Typed, validated settings for both functions, read once from the environment.

Variable names are the tutorial's (``DINGTALK_APP_SECRET``, ``ENDPOINT``, ``SERVICE_NAME``,
``CHATGPT_FUNCTION``, ``VERBOSE``, ``CHATGPT_API_KEY``, ``USER_API_KEY``, ``HISTORY_LENGTH``,
``OSS_MOUNT_POINT``, ``TIMEOUT``) so that an upgrade is a code swap. Everything new is optional.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Tuple, TypeVar
from urllib.parse import urlsplit

from shared.errors import ConfigError

T = TypeVar("T")

DEFAULT_LLM_ENDPOINT = "https://api.openai.com"
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_WEBHOOK_HOSTS = ("oapi.dingtalk.com", "api.dingtalk.com")
DINGTALK_MAX_SKEW_SECONDS = 3600
DEFAULT_REPLY_FUNCTION = "dingtalk_chatgpt_reply"
LOG_LEVEL_DEFAULT = 20

RECEIVER_VARIABLES = (
    "DINGTALK_APP_SECRET", "ENDPOINT", "SERVICE_NAME", "CHATGPT_FUNCTION", "VERBOSE",
    "SIGNATURE_WINDOW_SECONDS", "MAX_BODY_BYTES",
)
REPLY_VARIABLES = (
    "CHATGPT_API_KEY", "USER_API_KEY", "ENDPOINT", "MODEL", "SYSTEM_PROMPT", "TEMPERATURE",
    "TIMEOUT", "HISTORY_LENGTH", "HISTORY_SCOPE", "OSS_MOUNT_POINT", "ALLOWED_WEBHOOK_HOSTS",
    "MAX_MESSAGE_BYTES", "LLM_MAX_RETRIES", "ALLOWED_CONVERSATIONS", "ALLOWED_USERS", "VERBOSE",
    "DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGTALK_CARD_TEMPLATE_ID", "DINGTALK_CARD_CONTENT_KEY",
    "DINGTALK_API_ENDPOINT", "CARD_UPDATE_INTERVAL_MS",
)
DEFAULT_DINGTALK_API = "https://api.dingtalk.com"


def _text(env: Mapping[str, str], name: str) -> Optional[str]:
    """The stripped value, or None when unset or blank (FC's console saves blank fields)."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _number(env: Mapping[str, str], name: str, default: T, convert: Callable[[str], T],
             low: float, high: float) -> T:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number; set a value from {low} to {high}") from None
    if not low <= value <= high:  # type: ignore[operator]
        raise ConfigError(name, f"{raw} is out of range; set a value from {low} to {high}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: Tuple[str, ...]) -> str:
    raw = (_text(env, name) or default).lower()
    if raw not in choices:
        raise ConfigError(name, f"{raw!r} is not one of {', '.join(choices)}")
    return raw


def _id_list(env: Mapping[str, str], name: str) -> Tuple[str, ...]:
    """Comma-separated ids; unset means "no restriction"."""
    raw = _text(env, name)
    if raw is None:
        return ()
    ids = tuple(i.strip() for i in raw.split(",") if i.strip())
    if not ids:
        raise ConfigError(name, "lists nothing; give comma-separated ids or leave it unset")
    return ids


def _host_list(env: Mapping[str, str], name: str, default: Tuple[str, ...]) -> Tuple[str, ...]:
    hosts = tuple(h.lower() for h in _id_list(env, name))
    return hosts or default


def allowed_webhook_hosts(env: Mapping[str, str]) -> Tuple[str, ...]:
    return _host_list(env, "ALLOWED_WEBHOOK_HOSTS", DEFAULT_WEBHOOK_HOSTS)


def log_level(env: Mapping[str, str]) -> int:
    """``VERBOSE`` is a ``logging`` level number, as in the tutorial (10 debug ... 40 error)."""
    return _number(env, "VERBOSE", LOG_LEVEL_DEFAULT, int, 0, 50)


def fc_endpoint_url(endpoint: str, variable: str = "ENDPOINT") -> str:
    """Accept a bare host (the tutorial's form) or a full ``http(s)://host:port`` URL."""
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"{endpoint!r} is not a host or an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


def llm_base_url(endpoint: str) -> str:
    """The tutorial's ``ENDPOINT`` is a service root; the SDK wants the ``/v1`` base URL.

    A bare root gets ``/v1``; a URL that already has a path (DashScope's
    ``.../compatible-mode/v1``, a proxy prefix) is used as given.
    """
    endpoint = endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("ENDPOINT", f"{endpoint!r} is not an http(s) URL of the model service")
    return endpoint if parts.path not in ("", "/") else endpoint + "/v1"


@dataclass(frozen=True)
class ReceiverConfig:
    """Settings of ``dingtalk_conversation``, the HTTP function."""

    app_secret: str
    reply_function: str
    fc_endpoint: Optional[str]
    service_name: Optional[str]
    signature_window_seconds: int
    max_body_bytes: int
    log_level: int

    @property
    def uses_fc2_api(self) -> bool:
        """The tutorial's FC 2.0 setup names a service; FC 3.0 has none."""
        return self.service_name is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ReceiverConfig":
        secret = _text(env, "DINGTALK_APP_SECRET")
        if secret is None:
            raise ConfigError("DINGTALK_APP_SECRET",
                              "not set; copy the AppSecret of your DingTalk app into the function's environment")
        endpoint = _text(env, "ENDPOINT")
        return cls(
            app_secret=secret,
            reply_function=_text(env, "CHATGPT_FUNCTION") or DEFAULT_REPLY_FUNCTION,
            fc_endpoint=fc_endpoint_url(endpoint) if endpoint else None,
            service_name=_text(env, "SERVICE_NAME"),
            signature_window_seconds=_number(env, "SIGNATURE_WINDOW_SECONDS", DINGTALK_MAX_SKEW_SECONDS,
                                             int, 1, DINGTALK_MAX_SKEW_SECONDS),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", 65536, int, 1024, 6 * 1024 * 1024),
            log_level=log_level(env),
        )


@dataclass(frozen=True)
class CardSettings:
    """Streaming into a DingTalk AI card: needs the app's key and secret and a card template."""

    app_key: str
    app_secret: str
    template_id: str
    content_key: str
    api_endpoint: str
    update_interval_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Optional["CardSettings"]:
        """None (webhook mode) unless both ``DINGTALK_APP_KEY`` and ``DINGTALK_CARD_TEMPLATE_ID`` are set."""
        app_key, template = _text(env, "DINGTALK_APP_KEY"), _text(env, "DINGTALK_CARD_TEMPLATE_ID")
        if not app_key or not template:
            return None
        secret = _text(env, "DINGTALK_APP_SECRET")
        if secret is None:
            raise ConfigError("DINGTALK_APP_SECRET", "card streaming needs the app's AppSecret in the reply function too")
        endpoint = fc_endpoint_url(_text(env, "DINGTALK_API_ENDPOINT") or DEFAULT_DINGTALK_API, "DINGTALK_API_ENDPOINT")
        return cls(app_key, secret, template, _text(env, "DINGTALK_CARD_CONTENT_KEY") or "content", endpoint,
                   _number(env, "CARD_UPDATE_INTERVAL_MS", 300, int, 50, 10000) / 1000)


@dataclass(frozen=True)
class ReplyConfig:
    """Settings of ``dingtalk_chatgpt_reply``, the event function."""

    api_key: str
    llm_base_url: str
    model: str
    system_prompt: Optional[str]
    temperature: Optional[float]
    timeout_seconds: float
    history_length: int
    history_per_sender: bool
    oss_mount_point: str
    allowed_webhook_hosts: Tuple[str, ...]
    max_message_bytes: int
    llm_max_retries: int
    allowed_conversations: Tuple[str, ...]
    allowed_users: Tuple[str, ...]
    card: Optional[CardSettings]
    log_level: int

    @property
    def claim_ttl_ms(self) -> int:
        """How long a message being answered blocks a second delivery: ``TIMEOUT`` bounds the model
        call with its retries; the rest is room for paced, retried webhook posts."""
        return int((self.timeout_seconds + 300) * 1000)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ReplyConfig":
        endpoint = _text(env, "ENDPOINT") or DEFAULT_LLM_ENDPOINT
        base_url = llm_base_url(endpoint)
        temperature = _text(env, "TEMPERATURE")
        return cls(
            api_key=_api_key(env, base_url),
            llm_base_url=base_url,
            model=_text(env, "MODEL") or DEFAULT_MODEL,
            system_prompt=_text(env, "SYSTEM_PROMPT"),
            temperature=None if temperature is None else _number(env, "TEMPERATURE", 0.0, float, 0.0, 2.0),
            timeout_seconds=_number(env, "TIMEOUT", 55.0, float, 1.0, 86400.0),
            history_length=_number(env, "HISTORY_LENGTH", 5, int, 0, 1000),
            history_per_sender=_choice(env, "HISTORY_SCOPE", "conversation", ("conversation", "sender")) == "sender",
            oss_mount_point=_text(env, "OSS_MOUNT_POINT") or "/mnt/oss",
            allowed_webhook_hosts=allowed_webhook_hosts(env),
            max_message_bytes=_number(env, "MAX_MESSAGE_BYTES", 6000, int, 500, 14000),
            llm_max_retries=_number(env, "LLM_MAX_RETRIES", 2, int, 0, 5),
            allowed_conversations=_id_list(env, "ALLOWED_CONVERSATIONS"),
            allowed_users=_id_list(env, "ALLOWED_USERS"),
            card=CardSettings.from_env(env),
            log_level=log_level(env),
        )


def _api_key(env: Mapping[str, str], base_url: str) -> str:
    """The tutorial's rule: ``CHATGPT_API_KEY`` for OpenAI, ``USER_API_KEY`` for other endpoints when set."""
    is_openai = urlsplit(base_url).hostname == "api.openai.com"
    user_key = _text(env, "USER_API_KEY")
    key = _text(env, "CHATGPT_API_KEY") if is_openai else (user_key or _text(env, "CHATGPT_API_KEY"))
    if key is None:
        name = "CHATGPT_API_KEY" if is_openai else "USER_API_KEY"
        raise ConfigError(name, "not set; put the model service's API key in the function's environment")
    return key


@functools.lru_cache(maxsize=4)
def _cached(kind: type, values: Tuple[Tuple[str, Optional[str]], ...]):
    return kind.from_env(dict((k, v) for k, v in values if v is not None))


def load(kind: type, names: Tuple[str, ...], env: Mapping[str, str]):
    """Validate once per distinct environment: FC keeps one environment per instance."""
    return _cached(kind, tuple((name, env.get(name)) for name in names))


def load_receiver_config(env: Mapping[str, str]) -> ReceiverConfig:
    return load(ReceiverConfig, RECEIVER_VARIABLES, env)


def load_reply_config(env: Mapping[str, str]) -> ReplyConfig:
    return load(ReplyConfig, REPLY_VARIABLES, env)
