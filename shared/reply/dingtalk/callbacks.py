"""Where DingTalk sends the clicks on answers' cards: ``POST /v1.0/card/callbacks/register``.

The request of ``RegisterCallbackRequest`` (``alibabacloud_dingtalk.card_1_0``): ``callbackRouteKey`` (cards
created with it send their clicks to ``callbackUrl``), ``apiSecret`` (what those callbacks are signed with)
and ``forceUpdate`` (replace an earlier registration of the key). Run once per robot at deployment
(``make doctor ARGS="--url … --register-card-callback"``) and by the local stack; never on an answer's path.
"""

from __future__ import annotations

from typing import Dict

from shared.common.card_actions import callback_secret, route_key
from shared.reply.config.dingtalk import DingTalkApp
from shared.reply.dingtalk.openapi import OpenApi

CALLBACK_PATH = "/card-callback"


def callback_url(receiver_url: str, robot: str) -> str:
    """The receiver's URL for the clicks on a robot's cards (``/bots/<name>/card-callback`` for one of BOTS)."""
    base = receiver_url.rstrip("/")
    return f"{base}/bots/{robot}{CALLBACK_PATH}" if robot else f"{base}{CALLBACK_PATH}"


def register_card_callback(app: DingTalkApp, receiver_url: str, robot: str = "") -> Dict[str, str]:
    """Register the robot's route key; raises ``OpenApiError``. Returns what DingTalk confirmed."""
    answer = OpenApi(app).call("card callback register", "POST", "/v1.0/card/callbacks/register", {
        "callbackRouteKey": route_key(robot), "callbackUrl": callback_url(receiver_url, robot),
        "apiSecret": callback_secret(app.app_secret), "forceUpdate": True})
    result = answer.get("result") if isinstance(answer, dict) else None
    return {"routeKey": route_key(robot), "url": str((result or {}).get("callbackUrl") or "")}
