"""Per-conversation history as append-only JSON records, safe for instances that share no locks.

FC 3.0 runs one request per instance, so two messages of one conversation answered together
run on two machines that share the OSS mount and nothing else. Rewriting one history file
would lose a turn whenever they overlap. Instead every event is a record of its own, named
``history/<sha256(key)>/<at>-<kind>-<id>.json``: a question and its answer (``turn``), a
``\\clear`` (``clear``: earlier turns no longer count), a persona set or reset (``persona``), the
conversation's own settings (``settings``, all of them, as ``\\设置`` left them).

Writers only create records; readers list the folder once, and the names alone say which
records matter (the turns after the latest clear, the latest persona and settings), so a read costs one
listing and a few small files. Records no reader will need again are deleted now and then.

Names hash the conversation key (ids are attacker-controlled strings and never become a path)
and the msgId (so writing the same event twice, e.g. on a redelivery, is idempotent). ``at``
is when the user asked (DingTalk's ``createAt``), so the order follows the chat, not the
order in which answers finished.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from shared.common import log
from shared.reply.oss.blobs import Blobs, decode, encode

FOLDER = "history/"
TURN, CLEAR, PERSONA, SETTINGS = "turn", "clear", "persona", "settings"
# Turn records beyond HISTORY_LENGTH that may pile up before a compaction deletes them.
COMPACT_SLACK = 10

logger = log.get("history")


def digest(text: str, length: int = 64) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def record_name(at_ms: int, kind: str, msg_id: str) -> str:
    return f"{max(at_ms, 0):013d}-{kind}-{digest(msg_id, 24)}.json"


def _parse_name(name: str) -> Optional[Tuple[int, str]]:
    """``(at, kind)`` of a record file name, or None for anything else in the folder."""
    stem = name.rsplit("/", 1)[-1]
    parts = stem.split("-")
    if len(parts) != 3 or not stem.endswith(".json") or not parts[0].isdigit() or len(parts[0]) != 13:
        return None
    return (int(parts[0]), parts[1]) if parts[1] in (TURN, CLEAR, PERSONA, SETTINGS) else None


class Session(NamedTuple):
    """A Bailian session or a Dify conversation that a conversation goes on with (``brains/``), kept in the
    turn record it answered, so it costs no read of its own and a ``\\clear`` ends it with the turns.
    ``at_ms`` is when it was last used: the time of that turn."""

    brain: str
    id: str
    at_ms: int = 0


class Conversation:
    """What the next answer needs: recent turns (oldest first), the conversation's persona, its own settings
    (``conversation_settings.py``) and the platform session of its latest turn."""

    __slots__ = ("key", "turns", "persona", "turn_records", "session", "settings")

    def __init__(self, key: str, turns: Optional[List[Dict[str, str]]] = None, persona: Optional[str] = None,
                 turn_records: int = 0, session: Optional[Session] = None,
                 settings: Optional[Dict[str, Any]] = None) -> None:
        self.key = key
        self.turns: List[Dict[str, str]] = turns if turns is not None else []
        self.persona = persona
        self.turn_records = turn_records
        self.session = session
        self.settings: Dict[str, Any] = settings if settings is not None else {}

    def messages(self, length: int) -> List[Dict[str, str]]:
        """The last ``length`` question/answer pairs as chat messages."""
        recent = self.turns[-length:] if length > 0 else []
        out: List[Dict[str, str]] = []
        for turn in recent:
            out.append({"role": "user", "content": turn["question"]})
            out.append({"role": "assistant", "content": turn["answer"]})
        return out


class _Listing(NamedTuple):
    """The record names of one folder, sorted by time, split by what they mean to a reader."""

    turns: List[str]
    clears: List[str]
    personas: List[str]
    settings: List[str]

    @classmethod
    def of(cls, names: List[str]) -> "_Listing":
        parsed = [(name, _parse_name(name)) for name in names]
        by_kind: Dict[str, List[str]] = {TURN: [], CLEAR: [], PERSONA: [], SETTINGS: []}
        for name, meaning in sorted(parsed, key=lambda item: item[1] or (0, "")):
            if meaning:
                by_kind[meaning[1]].append(name)
        return cls(by_kind[TURN], by_kind[CLEAR], by_kind[PERSONA], by_kind[SETTINGS])

    def live_turns(self) -> List[str]:
        """Turns asked after the latest ``\\clear``."""
        cut = _parse_name(self.clears[-1])[0] if self.clears else -1
        return [name for name in self.turns if _parse_name(name)[0] >= cut]


class HistoryStore:
    """Records under ``history/`` of ``blobs`` (the OSS mount by default)."""

    def __init__(self, blobs: Blobs, *, clock: Callable[[], float] = time.time) -> None:
        self.blobs = blobs
        self.clock = clock

    def folder(self, key: str) -> str:
        return f"{FOLDER}{digest(key)}/"

    def load(self, key: str, length: int) -> Conversation:
        """The conversation's last ``length`` turns and its persona. Raises ``OSError`` when the
        storage cannot be read."""
        folder = self.folder(key)
        names = self.blobs.list(folder)
        if not names:
            names = self._migrate_legacy(key, folder)
        listing = _Listing.of(names)
        turns, session = [], None
        for name in listing.live_turns()[-length:] if length > 0 else []:
            record = decode(self.blobs.read(name))
            if record and isinstance(record.get("question"), str) and isinstance(record.get("answer"), str):
                turns.append({"question": record["question"], "answer": record["answer"]})
                session = _session_of(record)
        persona = None
        if listing.personas:
            record = decode(self.blobs.read(listing.personas[-1])) or {}
            persona = record.get("persona") if isinstance(record.get("persona"), str) else None
        settings: Dict[str, Any] = {}
        if listing.settings:
            record = decode(self.blobs.read(listing.settings[-1])) or {}
            settings = record["settings"] if isinstance(record.get("settings"), dict) else {}
        return Conversation(key, turns, persona, len(listing.turns), session, settings)

    def _write(self, key: str, kind: str, msg_id: str, at_ms: int, body: Dict[str, Any]) -> str:
        name = self.folder(key) + record_name(at_ms, kind, msg_id)
        self.blobs.write(name, encode({"kind": kind, "msgId": msg_id, "at": at_ms, **body}))
        return name

    def add_turn(self, key: str, msg_id: str, at_ms: int, question: str, answer: str,
                 session: Optional[Session] = None) -> str:
        body: Dict[str, Any] = {"question": question, "answer": answer}
        if session is not None:
            body["session"] = {"brain": session.brain, "id": session.id}
        return self._write(key, TURN, msg_id, at_ms, body)

    def add_clear(self, key: str, msg_id: str, at_ms: int) -> str:
        return self._write(key, CLEAR, msg_id, at_ms, {})

    def set_persona(self, key: str, msg_id: str, at_ms: int, persona: Optional[str]) -> str:
        """The conversation's own system prompt (``\\system``); None returns to ``SYSTEM_PROMPT``."""
        return self._write(key, PERSONA, msg_id, at_ms, {"persona": persona})

    def set_settings(self, key: str, msg_id: str, at_ms: int, settings: Dict[str, Any]) -> str:
        """The conversation's own settings, all of them (``{}``: back to the defaults)."""
        return self._write(key, SETTINGS, msg_id, at_ms, {"settings": settings})

    def remove(self, name: str) -> None:
        """Take back a record whose confirmation reached nobody."""
        self.blobs.delete(name)

    def needs_compaction(self, conversation: Conversation, keep: int) -> bool:
        return conversation.turn_records > keep + COMPACT_SLACK

    def compact(self, key: str, keep: int) -> int:
        """Delete what no reader will need: turns before the latest clear or beyond the newest
        ``keep``, and every clear, persona and settings record but the latest. Safe while others write: they only
        add records newer than what is deleted here. Returns how many records were deleted."""
        listing = _Listing.of(self.blobs.list(self.folder(key)))
        live = listing.live_turns()
        kept = set(live[-keep:] if keep > 0 else [])
        stale = [n for n in listing.turns if n not in kept] + listing.clears[:-1] + listing.personas[:-1] + \
            listing.settings[:-1]
        for name in stale:
            self.blobs.delete(name)
        return len(stale)

    def _migrate_legacy(self, key: str, folder: str) -> List[str]:
        """A conversation first seen by this version may have the previous version's single file
        (``history/<sha256>.json``): its turns and persona become records, then it is removed.
        Record names come from its content, so two instances migrating at once write the same."""
        legacy = self.folder(key).rstrip("/") + ".json"
        document = decode(self.blobs.read(legacy))
        if document is None:
            return []
        turns = [t for t in document.get("turns") or [] if isinstance(t, dict)
                 and isinstance(t.get("question"), str) and isinstance(t.get("answer"), str)]
        for index, turn in enumerate(turns):
            self.add_turn(key, str(turn.get("msgId") or f"legacy-{index}"), index, turn["question"], turn["answer"])
        if isinstance(document.get("persona"), str):
            self.set_persona(key, "legacy-persona", 0, document["persona"])
        self.blobs.delete(legacy)
        logger.info("moved %d turn(s) of the previous history format into records", len(turns))
        return self.blobs.list(folder)


def _session_of(record: Dict[str, Any]) -> Optional[Session]:
    kept = record.get("session")
    if not isinstance(kept, dict) or not isinstance(kept.get("brain"), str) or not isinstance(kept.get("id"), str):
        return None
    at = record.get("at")
    return Session(kept["brain"], kept["id"], at if isinstance(at, int) else 0)


def conversation_key(conversation_id: str, sender: Optional[str], per_sender: bool, robot: str = "") -> str:
    """Group history is shared by default; ``HISTORY_SCOPE=sender`` gives each member their own. The
    parts are encoded as a JSON array, so no two (conversation, sender) pairs make the same key whatever
    characters the ids hold. Each of ``BOTS`` keeps its own history, claims and settings in a group (a
    longer array, which no key of the deployment's own robot can be); the deployment's own robot keeps the
    keys it always had."""
    if robot:
        return json.dumps(["robot", robot, conversation_id, *([sender] if per_sender and sender else [])],
                          ensure_ascii=False, separators=(",", ":"))
    if per_sender and sender:
        return json.dumps([conversation_id, sender], ensure_ascii=False, separators=(",", ":"))
    return conversation_id
