"""Answers that grow in place: DingTalk AI cards, within DingTalk's size and API-call limits.

One card is created and delivered in one call (``createAndDeliver``); each update sends the
full text so far (``isFull``), so a dropped update costs nothing. ``createAndDeliver`` answers
200 even when the card reached nobody (robot not in the group, wrong space): its
``deliverResults`` say so per recipient, and such a card counts as failed. With DingTalk's
built-in AI markdown card (no ``DINGTALK_CARD_TEMPLATE_ID``) the card also moves through its
``flowStatus`` (processing → inputting → finished / failed) as the official SDK's
``AIMarkdownCardInstance`` does, sending the card's whole data at each change in that SDK's
component order; each data update states that it merges by key (``cardUpdateOptions``), so a
status change never wipes what the streaming calls wrote.

Limits that only show on the real platform:
- A card holding more than about 3,000 characters renders blank, so a longer answer is split
  (``split.py``, code fences kept whole) and continues in a next card, each part finished.
- A free organisation has 5,000 API calls a month, and every card update is one. Updates come
  fast at first (the first text right after the model's first token) and ever slower as the
  answer grows (up to 5 s apart), never more often than every 20 new characters, and one answer
  never spends more than ``CARD_MAX_CALLS`` calls: once a card is half full the calls a next
  card needs are kept aside, and what the budget cannot show goes out through the session
  webhook instead.

With ``CARD_BUTTONS=on`` (a template of the team's own, ``cards/ai-card-with-buttons.json``) the card is created
with ``callbackType: HTTP`` and the app's route key, so a click reaches the receiver
(``shared/common/card_actions.py``), and its ``status`` variable says which buttons show: 停止 while it streams
(``streaming``), 重新回答 and 👍/👎 once it is ``finished``, none when ``stopped`` or ``failed``. Between two
updates the stream looks for a 停止 mark on the storage (``oss/card_marks.py``) and, when it finds one from this
conversation, raises ``Stopped``: the card keeps what it shows and says 已停止.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional

from shared.common.card_actions import route_key, same_conversation
from shared.common.errors import DingbotError
from shared.common.random_ids import random_id
from shared.reply.address import ChatAddress
from shared.reply.config import CardSettings, DingTalkApp
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError
from shared.reply.dingtalk.split import split_message

# The official SDK's AICardStatus (card_replier.py): 4 (executing) is not used by the markdown card.
PROCESSING, INPUTTING, FINISHED, FAILED = "1", "2", "3", "5"
# The built-in card's components, top to bottom, as AIMarkdownCardInstance sends them with every change.
BUILTIN_ORDER = json.dumps({"order": ["msgTitle", "msgContent", "staticMsgContent", "msgTextList", "msgImages",
                                      "msgSlider", "msgButtons"]})
MERGE_BY_KEY = {"updateCardDataByKey": True}
# The ``status`` variable of the template with buttons: which of them show.
STREAMING, DONE, STOPPED, BROKEN = "streaming", "finished", "stopped", "failed"
STOPPED_NOTE = "已停止"
GROWTH = 1.5
MAX_INTERVAL_SECONDS = 5.0
MIN_NEW_CHARS = 20


class Stopped(Exception):
    """Someone in the conversation pressed 停止 on the card being streamed into."""


class CardError(DingbotError):
    """A card step failed; what it could not show goes through the session webhook.

    ``quota_spent``: DingTalk refused because the organisation's monthly API quota is used up."""

    def __init__(self, detail: str, *, code: str = "", quota_spent: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.quota_spent = quota_spent


def open_space(address: ChatAddress, robot_code: str) -> Dict[str, Any]:
    """Where the card goes: the group, or the one-to-one chat with the bot."""
    if address.is_group:
        deliver: Dict[str, Any] = {"robotCode": robot_code}
        if address.staff_id:
            deliver["atUserIds"] = {address.staff_id: address.nick}
        return {"openSpaceId": f"dtv1.card//IM_GROUP.{address.conversation_id}",
                "imGroupOpenSpaceModel": {"supportForward": True}, "imGroupOpenDeliverModel": deliver}
    return {"openSpaceId": f"dtv1.card//IM_ROBOT.{address.staff_id or address.user_id}",
            "imRobotOpenSpaceModel": {"supportForward": True},
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": robot_code}}


def undelivered_reason(answer: Dict[str, Any]) -> Optional[str]:
    """Why ``createAndDeliver`` reached nobody (a recipient with ``success: false``), or None."""
    result = answer.get("result")
    results = result.get("deliverResults") if isinstance(result, dict) else None
    failed = [r for r in results if isinstance(r, dict) and r.get("success") is False] if isinstance(results, list) \
        else []
    if not failed:
        return None
    return "; ".join(f"{r.get('spaceType') or 'space'} {r.get('spaceId') or ''}: {r.get('errorMsg') or 'refused'}"
                     for r in failed)


class _Card:
    """One delivered card and what it shows."""

    __slots__ = ("out_track_id", "shown", "inputting")

    def __init__(self, out_track_id: str) -> None:
        self.out_track_id = out_track_id
        self.shown = ""
        self.inputting = False


class CardStream:
    """One answer shown in one or more cards. ``start`` delivers the first card, ``show`` shows the
    text so far when the cadence and the budget allow, ``finish``/``fail`` close the answer and
    return what no card could hold (for the session webhook)."""

    def __init__(self, settings: CardSettings, api: OpenApi, address: ChatAddress, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.api = api
        self.address = address
        self.clock = clock
        self.cards: List[_Card] = []
        self.calls = 0
        self.first_shown: Optional[float] = None  # when the first text appeared (``clock``)
        self.updates = 0
        self.next_update_at = float("-inf")
        self.overflow: Optional[int] = None  # index of the first part no card will show
        self.closed = False  # the answer is finished or failed: no call changes the cards any more
        # With buttons: the conversation a 停止 on this card came from (None: not pressed); see card_marks.py.
        self.stop_requested: Optional[Callable[[str], Optional[str]]] = None

    # --- the calls --------------------------------------------------------------------------------

    def _call(self, what: str, method: str, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        self.calls += 1
        try:
            return self.api.call(what, method, path, body)
        except OpenApiError as exc:
            raise CardError(str(exc), code=exc.code, quota_spent=exc.quota_spent) from None

    def _create(self) -> _Card:
        card = _Card(f"dingbot-{random_id()}")
        params = {"flowStatus": PROCESSING} if self.settings.builtin else {self.settings.content_key: ""}
        # Clicks go to the URL registered for the route key (make doctor --register-card-callback).
        callback = {"callbackType": "HTTP", "callbackRouteKey": route_key(self.address.robot)} \
            if self.settings.buttons else {"callbackType": "STREAM"}
        if self.settings.buttons:
            params["status"] = STREAMING
        answer = self._call("card create and deliver", "POST", "/v1.0/card/instances/createAndDeliver", {
            "cardTemplateId": self.settings.template_id, "outTrackId": card.out_track_id, **callback,
            "cardData": {"cardParamMap": params}, "userIdType": 1,
            **open_space(self.address, self.address.robot_code or self.api.app.robot_code)})
        undelivered = undelivered_reason(answer)
        if undelivered is not None:
            raise CardError(f"card created but not delivered: {undelivered}", code="DeliverFailed")
        self.cards.append(card)
        return card

    def _status(self, card: _Card, status: str, text: str) -> None:
        """The built-in card's whole data with a new ``flowStatus``, as AIMarkdownCardInstance sends it."""
        params = {"msgContent": text, "staticMsgContent": "", "flowStatus": status, "sys_full_json_obj": BUILTIN_ORDER}
        self._call("card status update", "PUT", "/v1.0/card/instances",
                   {"outTrackId": card.out_track_id, "cardData": {"cardParamMap": params},
                    "cardUpdateOptions": MERGE_BY_KEY})

    def _stream(self, card: _Card, text: str, *, final: bool = False, error: bool = False) -> None:
        if self.settings.builtin and not card.inputting:
            self._status(card, INPUTTING, card.shown)
            card.inputting = True
        self._call("card streaming update", "PUT", "/v1.0/card/streaming", {
            "outTrackId": card.out_track_id, "guid": random_id(), "key": self.settings.content_key,
            "content": text, "isFull": True, "isFinalize": final, "isError": error})
        card.shown = text
        self._mark_shown(text)

    def _mark_shown(self, text: str) -> None:
        if text and self.first_shown is None:
            self.first_shown = self.clock()

    def _buttons(self, card: _Card, status: str) -> None:
        """The template's ``status``: which buttons the card shows now."""
        self._call("card buttons update", "PUT", "/v1.0/card/instances",
                   {"outTrackId": card.out_track_id, "cardData": {"cardParamMap": {"status": status}},
                    "cardUpdateOptions": MERGE_BY_KEY})

    def _close(self, card: _Card, text: str, *, error: bool = False, status: str = DONE) -> None:
        if self.settings.builtin:
            self._status(card, FAILED if error else FINISHED, text)
            card.shown = text
            self._mark_shown(text)
        else:
            self._stream(card, text, final=True, error=error)
            if self.settings.buttons:
                self._buttons(card, BROKEN if error else status)

    # --- the budget -------------------------------------------------------------------------------

    def _cost_of_update(self, card: _Card) -> int:
        """One streaming call, and (built-in card) the switch to "inputting" before the first."""
        return 2 if self.settings.builtin and not card.inputting else 1

    def _cost_of_closing(self) -> int:
        """The last update, and (with buttons) the status that shows the finished card's buttons."""
        return 2 if self.settings.buttons else 1

    def _cost_of_a_card(self) -> int:
        """Create, one update, finish: what a next card must be able to afford."""
        return 1 + self._cost_of_closing() + self._cost_of_update(_Card(""))

    def _left(self) -> int:
        return self.settings.max_calls - self.calls

    # --- the answer -------------------------------------------------------------------------------

    def start(self) -> None:
        self._create()

    def _parts(self, text: str) -> List[str]:
        return split_message(text, self.settings.max_chars, measure=len)

    def _advance(self, parts: List[str]) -> None:
        """Finish every card whose part is complete and open the next, while the budget allows."""
        while self.overflow is None and len(parts) > len(self.cards):
            if self._left() - self._cost_of_closing() < self._cost_of_a_card():  # finishing this card
                self.overflow = len(self.cards)
                return
            self._close(self.cards[-1], parts[len(self.cards) - 1])
            self._create()

    def show(self, text: str) -> None:
        """Show the answer so far, if an update is due; raises ``CardError``."""
        parts = self._parts(text)
        self._advance(parts)
        card = self.cards[-1]
        visible = parts[len(self.cards) - 1]
        now = self.clock()
        due = now >= self.next_update_at and len(visible) - len(card.shown) >= (MIN_NEW_CHARS if card.shown else 1)
        # Always keep the calls that finish this card; once it is half full, also what a next card costs.
        reserve = self._cost_of_closing() + (self._cost_of_a_card() if len(visible) > self.settings.max_chars // 2
                                             else 0)
        affordable = self._left() - self._cost_of_update(card) >= reserve
        if visible != card.shown and due and affordable:
            self._raise_if_stopped()
            self._stream(card, visible)
            interval = min(MAX_INTERVAL_SECONDS, self.settings.update_interval_seconds * GROWTH ** self.updates)
            self.updates += 1
            self.next_update_at = now + interval

    def _raise_if_stopped(self) -> None:
        """Between two updates: ``Stopped`` when someone of this conversation pressed 停止 on one of its cards."""
        if self.stop_requested is None:
            return
        for card in self.cards:
            space = self.stop_requested(card.out_track_id)
            if space is not None and same_conversation(space, self.address.conversation_id):
                raise Stopped()

    def stop(self, text: str) -> str:
        """End the answer where it was stopped: the card keeps what it shows and says 已停止; returns what the
        card holds (for history)."""
        parts = self._parts(text) if text.strip() else [""]
        shown = parts[min(len(self.cards), len(parts)) - 1]
        kept = f"{shown}\n\n{STOPPED_NOTE}" if shown.strip() else STOPPED_NOTE
        self._close(self.cards[-1], kept, status=STOPPED)
        self.closed = True
        return "".join(parts[:len(self.cards)])

    def finish(self, text: str) -> str:
        """Finish the answer; return the part of it no card holds (empty when the cards hold it all)."""
        parts = self._parts(text)
        self._advance(parts)
        self._close(self.cards[-1], parts[len(self.cards) - 1])
        self.closed = True
        return "".join(parts[len(self.cards):])

    def fail(self, text: str, reason: str) -> None:
        """Close the current card in the failed state: what of ``text`` it holds, then the ``reason``."""
        parts = self._parts(text) if text else []
        current = parts[len(self.cards) - 1] if len(parts) >= len(self.cards) else ""
        room = self.settings.max_chars - len(reason) - 3
        if current and len(current) > room:
            current = current[:room] + "…"
        self._close(self.cards[-1], f"{current}\n\n{reason}" if current else reason, error=True)
        self.closed = True


CardFactory = Callable[[ChatAddress], Optional[CardStream]]


def card_factory(settings: Optional[CardSettings], app: Optional[DingTalkApp]) -> CardFactory:
    if settings is None or app is None:
        return lambda address: None
    return lambda address: CardStream(settings, OpenApi(app), address)
