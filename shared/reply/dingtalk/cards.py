"""Answers that grow in place: a DingTalk AI card, created for the conversation and streamed into.

Uses the official ``alibabacloud-dingtalk`` SDK (OAuth2 access token, card createAndDeliver,
card streaming update), imported only in streaming mode. The access token is cached per FC
instance and renewed five minutes before it expires. Updates are batched: at most one per
``CARD_UPDATE_INTERVAL_MS``, each carrying the full text so far (``isFull``), so a dropped update
costs nothing and DingTalk's rate limits are respected whatever the model's token rate.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from typing import Any, Callable, Dict, Optional, Tuple

from shared.common import log
from shared.common.errors import DingbotError
from shared.common.message import IncomingMessage
from shared.reply.config import CardSettings

TOKEN_RENEW_MARGIN_SECONDS = 300
CARD_TIMEOUT_MS = 5000

logger = log.get("card")


class CardError(DingbotError):
    """A card step failed; the caller falls back to the session webhook."""


def _config(endpoint: str) -> Any:
    from alibabacloud_tea_openapi import models

    scheme, _, host = endpoint.partition("://")
    return models.Config(protocol=scheme, region_id="central", endpoint=host)


@functools.lru_cache(maxsize=2)
def _clients(endpoint: str) -> Tuple[Any, Any]:
    from alibabacloud_dingtalk.card_1_0.client import Client as CardClient
    from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient

    return OAuthClient(_config(endpoint)), CardClient(_config(endpoint))


def _runtime() -> Any:
    from alibabacloud_tea_util import models

    return models.RuntimeOptions(read_timeout=CARD_TIMEOUT_MS, connect_timeout=CARD_TIMEOUT_MS)


class TokenCache:
    """App access tokens (valid about 2 h), shared by the invocations of one instance."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: Dict[Tuple[str, str], Tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, settings: CardSettings) -> str:
        key = (settings.api_endpoint, settings.app_key)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] - TOKEN_RENEW_MARGIN_SECONDS > self.clock():
                return cached[0]
            from alibabacloud_dingtalk.oauth2_1_0 import models

            oauth, _ = _clients(settings.api_endpoint)
            try:
                body = oauth.get_access_token_with_options(
                    models.GetAccessTokenRequest(app_key=settings.app_key, app_secret=settings.app_secret), {},
                    _runtime()).body
            except Exception as exc:
                raise CardError(f"access token refused: {type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
            if not body or not body.access_token:
                raise CardError("access token response had no token")
            log.add_secret(body.access_token)
            self._tokens[key] = (body.access_token, self.clock() + float(body.expire_in or 7200))
            return body.access_token


tokens = TokenCache()


def open_space(message: IncomingMessage) -> Dict[str, Any]:
    """Where the card goes: the group, or the one-to-one chat with the bot."""
    from alibabacloud_dingtalk.card_1_0 import models

    if message.is_group:
        return {"open_space_id": f"dtv1.card//IM_GROUP.{message.conversationId}",
                "im_group_open_space_model": models.CreateAndDeliverRequestImGroupOpenSpaceModel(support_forward=True),
                "im_group_open_deliver_model": models.CreateAndDeliverRequestImGroupOpenDeliverModel(
                    robot_code=message.robotCode, at_user_ids={message.senderStaffId: message.senderNick}
                    if message.senderStaffId else None)}
    return {"open_space_id": f"dtv1.card//IM_ROBOT.{message.senderStaffId or message.senderId}",
            "im_robot_open_space_model": models.CreateAndDeliverRequestImRobotOpenSpaceModel(support_forward=True),
            "im_robot_open_deliver_model": models.CreateAndDeliverRequestImRobotOpenDeliverModel(
                space_type="IM_ROBOT", robot_code=message.robotCode)}


class AICard:
    """One card: ``start`` delivers it empty, ``push`` shows the text so far, ``finish``/``fail`` close it."""

    def __init__(self, settings: CardSettings, message: IncomingMessage, *, cache: TokenCache = tokens,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.message = message
        self.cache = cache
        self.clock = clock
        self.out_track_id = f"dingbot-{uuid.uuid4().hex}"
        self.shown = ""
        self.last_update = float("-inf")
        self.updates = 0

    def _call(self, what: str, method: str, request: Any, headers_type: str) -> None:
        from alibabacloud_dingtalk.card_1_0 import models

        _, client = _clients(self.settings.api_endpoint)
        headers = getattr(models, headers_type)(x_acs_dingtalk_access_token=self.cache.get(self.settings))
        try:
            response = getattr(client, method)(request, headers, _runtime())
        except Exception as exc:
            raise CardError(f"{what} failed: {type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
        if response.body is not None and getattr(response.body, "success", True) is False:
            raise CardError(f"{what} was refused")

    def start(self) -> None:
        from alibabacloud_dingtalk.card_1_0 import models

        request = models.CreateAndDeliverRequest(
            card_template_id=self.settings.template_id, out_track_id=self.out_track_id, callback_type="STREAM",
            card_data=models.CreateAndDeliverRequestCardData(card_param_map={self.settings.content_key: ""}),
            **open_space(self.message))
        self._call("card create and deliver", "create_and_deliver_with_options", request, "CreateAndDeliverHeaders")

    def _update(self, text: str, *, final: bool = False, error: bool = False) -> None:
        from alibabacloud_dingtalk.card_1_0 import models

        request = models.StreamingUpdateRequest(out_track_id=self.out_track_id, guid=uuid.uuid4().hex,
                                                key=self.settings.content_key, content=text, is_full=True,
                                                is_finalize=final, is_error=error)
        self._call("card streaming update", "streaming_update_with_options", request, "StreamingUpdateHeaders")
        self.shown, self.last_update, self.updates = text, self.clock(), self.updates + 1

    def push(self, text: str) -> None:
        """Show ``text`` (the whole answer so far) unless the last update was too recent."""
        if text != self.shown and self.clock() - self.last_update >= self.settings.update_interval_seconds:
            self._update(text)

    def finish(self, text: str) -> None:
        self._update(text, final=True)

    def fail(self, text: str) -> None:
        self._update(text, final=True, error=True)


CardFactory = Callable[[IncomingMessage], Optional[AICard]]


def card_factory(settings: Optional[CardSettings]) -> CardFactory:
    return (lambda message: AICard(settings, message)) if settings else (lambda message: None)
