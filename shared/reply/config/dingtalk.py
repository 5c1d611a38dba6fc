"""What speaks to DingTalk: the app's credentials, the AI cards, and the messages an answer goes out as."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from shared.common.settings import EnvReader

DEFAULT_WEBHOOK_HOSTS = ("oapi.dingtalk.com", "api.dingtalk.com")
DEFAULT_DINGTALK_API = "https://api.dingtalk.com"
# DingTalk's built-in AI markdown card (what the official SDK's AIMarkdownCardInstance uses).
BUILTIN_CARD_TEMPLATE = "382e4302-551d-4880-bf29-a30acfab2e71.schema"
BUILTIN_CARD_CONTENT_KEY = "msgContent"


def allowed_webhook_hosts(read: EnvReader) -> Tuple[str, ...]:
    return tuple(h.lower() for h in read.id_list("ALLOWED_WEBHOOK_HOSTS")) or DEFAULT_WEBHOOK_HOSTS


class DingTalkApp(NamedTuple):
    """The app's credentials (开放平台 → 凭证与基础信息) and where its API lives; the OpenAPI needs them."""

    app_key: str
    app_secret: str
    api_endpoint: str

    def __repr__(self) -> str:  # never the secret
        return f"DingTalkApp(app_key={self.app_key!r}, api_endpoint={self.api_endpoint!r})"

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


class CardSettings(NamedTuple):
    """Answers streamed into a DingTalk AI card: on whenever the app is configured, unless
    ``CARD_STREAMING=off``. Without ``DINGTALK_CARD_TEMPLATE_ID`` the card is DingTalk's built-in AI
    markdown card, so an AppKey alone turns streaming on. ``CARD_BUTTONS=on`` adds 停止, 重新回答 and 👍/👎
    (``card_actions.py``); they need a template of the team's own that has them (``cards/``)."""

    template_id: str
    content_key: str
    update_interval_seconds: float
    max_chars: int
    max_calls: int
    buttons: bool = False

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
        buttons = read.choice("CARD_BUTTONS", "off", ("on", "off")) == "on"
        if buttons and not template:
            read.fail("DINGTALK_CARD_TEMPLATE_ID", "CARD_BUTTONS=on needs the card template with the buttons "
                      "(cards/ai-card-with-buttons.json); DingTalk's built-in card has none",
                      "CARD_BUTTONS=on 需要带按钮的卡片模板（cards/ai-card-with-buttons.json），钉钉内置的卡片没有按钮")
        return cls(template or BUILTIN_CARD_TEMPLATE, content_key,
                   read.number("CARD_UPDATE_INTERVAL_MS", 300, int, 50, 10000) / 1000,
                   read.number("CARD_MAX_CHARS", 3000, int, 500, 3000),
                   read.number("CARD_MAX_CALLS", 25, int, 6, 200), buttons)


class DeliverySettings(NamedTuple):
    """How an answer is shown: the session-webhook hosts it may be posted to, the size of one message, the
    hosts whose pictures it may show (``safe_markdown.py``), and whether the model's reasoning is quoted."""

    webhook_hosts: Tuple[str, ...]
    max_message_bytes: int
    answer_image_hosts: Tuple[str, ...]
    show_reasoning: bool

    @classmethod
    def read(cls, read: EnvReader) -> "DeliverySettings":
        return cls(allowed_webhook_hosts(read), read.number("MAX_MESSAGE_BYTES", 6000, int, 500, 14000),
                   tuple(h.lower() for h in read.id_list("ANSWER_IMAGE_HOSTS")),
                   read.choice("SHOW_REASONING", "off", ("off", "quote")) == "quote")
