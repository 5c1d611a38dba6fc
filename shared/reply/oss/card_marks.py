"""What the buttons on an answer's card leave on the storage (``CARD_BUTTONS=on``).

- ``cards/stop/<card>.json``: someone pressed 停止. The instance streaming into that card looks for it between
  two updates (``dingtalk/cards.py``); it holds the conversation the click came from, so a click that names
  another conversation is not obeyed.
- ``cards/answer/<card>.json``: what a finished answer needs for 重新回答 and 👍/👎: the message it answered
  (without its session webhook, which has expired by then), the conversation, the robot and the model.
- ``cards/again/<card>.json``: the one regeneration of a card, taken create-if-absent, so a double click or
  a redelivered callback regenerates once.
- ``cards/signed/<signature>.json``: each signed callback, taken create-if-absent, so a replayed click is
  refused as a replayed message is.
- ``usage/feedback/<day>/<card>-<person>.json``: one person's 👍 or 👎 on one answer, written over by their
  next click; ``\\usage`` and ``make report`` count them. Ids are hashed in names, as for usage records.

Marks and claims go where the message claims go (the OSS API when ``OSS_BUCKET`` is set, so they are atomic
across instances); answers and feedback on the mount.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from shared.common.card_actions import BAD, GOOD
from shared.reply.oss.blobs import Blobs, decode, encode
from shared.reply.oss.history import digest
from shared.reply.oss.usage import FOLDER as USAGE_FOLDER
from shared.reply.oss.usage import Calendar, short

STOPS, ANSWERS, AGAINS, SIGNED = "cards/stop/", "cards/answer/", "cards/again/", "cards/signed/"
FEEDBACK = USAGE_FOLDER + "feedback/"


def card_name(out_track_id: str) -> str:
    return digest(out_track_id, 24)


class CardMarks:
    def __init__(self, files: Blobs, marks: Blobs, calendar: Calendar, clock: Callable[[], float] = time.time) -> None:
        self.files = files
        self.marks = marks
        self.calendar = calendar
        self.clock = clock

    def first_use(self, signature: str) -> bool:
        """Whether this signed callback is seen for the first time: a replayed click (the same timestamp and
        sign, within DingTalk's hour) changes nothing."""
        return self.marks.create(f"{SIGNED}{digest(signature, 32)}.json", encode({"at": int(self.clock() * 1000)}))

    def stop(self, out_track_id: str, space: str) -> bool:
        """Ask the instance streaming into the card to stop; False when someone already did."""
        return self.marks.create(f"{STOPS}{card_name(out_track_id)}.json",
                                 encode({"space": space, "at": int(self.clock() * 1000)}))

    def stop_requested(self, out_track_id: str) -> Optional[str]:
        """The space the 停止 click came from ("" when the callback named none), or None: not pressed."""
        found = decode(self.marks.read(f"{STOPS}{card_name(out_track_id)}.json"))
        return str(found.get("space") or "") if isinstance(found, dict) else None

    def remember(self, out_track_id: str, answer: Dict[str, Any]) -> None:
        self.files.write(f"{ANSWERS}{card_name(out_track_id)}.json", encode(answer))

    def recall(self, out_track_id: str) -> Optional[Dict[str, Any]]:
        found = decode(self.files.read(f"{ANSWERS}{card_name(out_track_id)}.json"))
        return found if isinstance(found, dict) else None

    def take_again(self, out_track_id: str) -> bool:
        """The card's one regeneration; False when it was taken."""
        return self.marks.create(f"{AGAINS}{card_name(out_track_id)}.json",
                                 encode({"at": int(self.clock() * 1000)}))

    def give_again_back(self, out_track_id: str) -> None:
        """The regeneration reached nobody: a later click may try again."""
        self.marks.delete(f"{AGAINS}{card_name(out_track_id)}.json")

    def feedback(self, out_track_id: str, user: str, value: str, answer: Dict[str, Any]) -> None:
        day = self.calendar.day(self.clock())
        self.files.write(f"{FEEDBACK}{day}/{card_name(out_track_id)}-{short(user)}.json", encode({
            "value": value, "model": answer.get("model", ""), "conversation": short(answer.get("conversation", "")),
            "robot": answer.get("robot", ""), "at": int(self.clock() * 1000)}))

    def feedback_on(self, day: str) -> List[Dict[str, Any]]:
        """Every person's latest 👍/👎 given on ``day`` (in ``TZ``)."""
        found = (decode(self.files.read(name)) for name in self.files.list(f"{FEEDBACK}{day}/"))
        return [record for record in found if isinstance(record, dict) and record.get("value") in (GOOD, BAD)]
