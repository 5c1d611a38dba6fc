"""A click on a button of an answer's card: what DingTalk sends, what the receiver hands the reply function.

What each part rests on:

- The body is the card callback of DingTalk's card platform. Its fields are those of the official stream
  SDK's ``CardCallbackMessage`` (``dingtalk_stream/card_callback.py``): ``outTrackId`` (the card),
  ``userId`` (who clicked), ``corpId``, ``type`` (``actionCallback``), ``content`` (a JSON string whose
  ``cardPrivateData`` holds ``actionIds`` and ``params``) and ``extension`` (a JSON string). ``spaceId`` and
  ``spaceType`` name where the card is; the SDK does not read them, so they are used only when present.
- The button's ``actionId`` is one of ``ACTIONS``; the template we ship (``cards/ai-card-with-buttons.json``)
  names them so.
- Where DingTalk sends an HTTP-mode callback: the ``callbackUrl`` registered with ``callbackRouteKey`` and
  ``apiSecret`` (``POST /v1.0/card/callbacks/register``, ``alibabacloud_dingtalk.card_1_0``), for cards
  created with ``callbackType: HTTP`` and that route key. How DingTalk signs an HTTP-mode card callback is
  not in the sources we have: the receiver checks ``timestamp`` and ``sign`` headers as DingTalk signs robot
  messages, with the registered ``apiSecret`` as the key. That is an assumption, so the buttons are off
  unless ``CARD_BUTTONS`` turns them on (see the README).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Dict, NamedTuple

from shared.common.errors import MalformedRequest

STOP, AGAIN, GOOD, BAD = "stop", "again", "good", "bad"
ACTIONS = (STOP, AGAIN, GOOD, BAD)
# The route key cards are created with and the callback URL is registered under; a robot of BOTS adds its name.
ROUTE_KEY = "dingbot"


def same_conversation(space: str, conversation_id: str) -> bool:
    """Whether a click's ``spaceId`` names the card's conversation (it may be the full open space id,
    ``dtv1.card//IM_GROUP.<conversation>``); a callback that names none is taken as the card's own."""
    return not space or space.rsplit(".", 1)[-1] == conversation_id


def route_key(robot: str) -> str:
    return f"{ROUTE_KEY}-{robot}" if robot else ROUTE_KEY


def callback_secret(app_secret: str) -> str:
    """The ``apiSecret`` registered for the app's card callbacks: derived from the app secret, so that both
    functions know it and no further setting is needed, and it reveals nothing of the app secret."""
    return hmac.new(app_secret.encode("utf-8"), b"dingbot card callback", hashlib.sha256).hexdigest()[:32]


class CardAction(NamedTuple):
    """One click, as the reply function receives it (``{"cardAction": {...}}`` as the async payload)."""

    out_track_id: str
    user_id: str
    action: str
    space_id: str = ""
    robot: str = ""
    signature: str = ""

    def to_payload(self) -> bytes:
        return json.dumps({"cardAction": self._asdict()}, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> "CardAction":
        fields = event.get("cardAction")
        if not isinstance(fields, dict) or not all(isinstance(fields.get(k), str) for k in cls._fields):
            raise MalformedRequest("not a card action")
        return cls(**{k: fields[k] for k in cls._fields})


def _json_object(value: Any, what: str) -> Dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value or "{}")
        except ValueError:
            raise MalformedRequest(f"{what} is not JSON") from None
        if isinstance(parsed, dict):
            return parsed
    raise MalformedRequest(f"{what} is not an object")


def parse_card_callback(body: bytes) -> CardAction:
    """The click in a card callback body; ``MalformedRequest`` for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest("body is not an object")
    out_track_id, user_id = data.get("outTrackId"), data.get("userId")
    if not isinstance(out_track_id, str) or not out_track_id or not isinstance(user_id, str) or not user_id:
        raise MalformedRequest("outTrackId or userId missing")
    private = _json_object(_json_object(data.get("content"), "content").get("cardPrivateData"), "cardPrivateData")
    action_ids = private.get("actionIds")
    if not isinstance(action_ids, list) or not action_ids or action_ids[0] not in ACTIONS:
        raise MalformedRequest("no known actionId")
    space = data.get("spaceId")
    return CardAction(out_track_id[:128], user_id[:128], action_ids[0], space if isinstance(space, str) else "")
