"""Per-conversation history as one JSON file per key under the OSS mount.

File names are a hash of the key: conversation and sender ids are attacker-controlled strings
and must never become a path. Writes go to a temporary file that replaces the old one, so a
reader sees the old or the new file, never half of one. Appending re-reads under a lock, so
two messages of one conversation that finish together both keep their turn (the lock holds
between processes of one machine; see the README for what the OSS mount adds). A file that
does not parse is moved aside and the conversation starts empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Protocol

from shared.common import log

FORMAT_VERSION = 1
HANDLED_KEEP = 200
HANDLED_TTL_MS = 24 * 3600 * 1000

logger = log.get("history")


@dataclass
class Conversation:
    """The stored turns (oldest first), the msgIds answered, and those being answered now.

    A msgId goes from ``in_progress`` (claimed, with the time of the claim) to ``handled``, like an
    idempotency record: a second delivery of the same message finds it in either and is skipped.
    """

    key: str
    turns: List[Dict[str, str]] = field(default_factory=list)
    handled: Dict[str, int] = field(default_factory=dict)
    in_progress: Dict[str, int] = field(default_factory=dict)
    persona: Optional[str] = None

    def messages(self, length: int) -> List[Dict[str, str]]:
        """The last ``length`` question/answer pairs as chat messages."""
        recent = self.turns[-length:] if length > 0 else []
        out: List[Dict[str, str]] = []
        for turn in recent:
            out.append({"role": "user", "content": turn["question"]})
            out.append({"role": "assistant", "content": turn["answer"]})
        return out

    def to_json(self) -> Dict[str, Any]:
        return {"version": FORMAT_VERSION, "key": self.key, "turns": self.turns, "handled": self.handled,
                "in_progress": self.in_progress, "persona": self.persona}

    @classmethod
    def from_json(cls, key: str, data: Any) -> "Conversation":
        if not isinstance(data, dict) or not isinstance(data.get("turns", []), list):
            raise ValueError("not a history document")
        turns = [t for t in data.get("turns", []) if isinstance(t, dict)
                 and isinstance(t.get("question"), str) and isinstance(t.get("answer"), str)]
        persona = data.get("persona") if isinstance(data.get("persona"), str) else None
        return cls(key, turns, _timestamps(data.get("handled")), _timestamps(data.get("in_progress")), persona)


def _timestamps(value: Any) -> Dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class HistoryStore(Protocol):
    def read(self, key: str) -> Conversation: ...

    def claim(self, key: str, msg_id: str, ttl_ms: int) -> Optional[Conversation]: ...

    def release(self, key: str, msg_id: str) -> None: ...

    def record_turn(self, key: str, msg_id: str, question: str, answer: str, keep: int) -> None: ...

    def record_handled(self, key: str, msg_id: str) -> None: ...

    def clear(self, key: str, msg_id: str) -> None: ...

    def set_persona(self, key: str, msg_id: str, persona: Optional[str]) -> None: ...


class _Unchanged(Exception):
    """Raised inside ``_locked`` to leave the file as it is."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class FileHistoryStore:
    """The OSS-mount backend: ``<root>/dingbot/history/<sha256(key)>.json``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.directory = Path(root) / "dingbot" / "history"

    def path_for(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json")

    def read(self, key: str) -> Conversation:
        path = self.path_for(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return Conversation(key)
        except OSError as exc:
            logger.error("history unreadable, answering without it: %s", exc)
            return Conversation(key)
        try:
            return Conversation.from_json(key, json.loads(raw))
        except (ValueError, TypeError) as exc:
            self._move_aside(path, exc)
            return Conversation(key)

    def _move_aside(self, path: Path, reason: Exception) -> None:
        aside = path.with_name(f"{path.stem}.corrupt-{_now_ms()}.json")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        logger.error("history file %s is corrupt (%s); moved to %s, starting empty", path.name, reason, aside.name)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Conversation]:
        """Re-read under an exclusive lock, yield for changes, write back atomically (not when the
        block raises ``_Unchanged``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(key)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                conversation = self.read(key)
                try:
                    yield conversation
                except _Unchanged:
                    return
                self._write(path, conversation)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, path: Path, conversation: Conversation) -> None:
        # Compact: ``indent`` switches json to its pure-Python encoder, several times slower on this hot path.
        data = json.dumps(conversation.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            # No fsync: on the OSS mount close() already uploads the whole object, and FC's local disk
            # does not outlive the instance. The rename alone keeps readers from a half-written file.
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    @staticmethod
    def _mark(conversation: Conversation, msg_id: str) -> None:
        now = _now_ms()
        handled = {k: v for k, v in conversation.handled.items() if now - v < HANDLED_TTL_MS}
        handled[msg_id] = now
        conversation.handled = dict(sorted(handled.items(), key=lambda kv: kv[1])[-HANDLED_KEEP:])
        conversation.in_progress.pop(msg_id, None)

    def claim(self, key: str, msg_id: str, ttl_ms: int) -> Optional[Conversation]:
        """Mark ``msg_id`` as being answered and return the conversation, or None when it was
        answered already or another invocation claimed it less than ``ttl_ms`` ago."""
        with self._locked(key) as conversation:
            now = _now_ms()
            claimed_at = conversation.in_progress.get(msg_id)
            if msg_id in conversation.handled or (claimed_at is not None and now - claimed_at < ttl_ms):
                raise _Unchanged
            conversation.in_progress = {k: v for k, v in conversation.in_progress.items() if now - v < ttl_ms}
            conversation.in_progress[msg_id] = now
            return conversation
        return None

    def release(self, key: str, msg_id: str) -> None:
        """Give a claim back when nothing reached the user, so a later delivery can answer."""
        with self._locked(key) as conversation:
            if conversation.in_progress.pop(msg_id, None) is None:
                raise _Unchanged

    def record_turn(self, key: str, msg_id: str, question: str, answer: str, keep: int) -> None:
        with self._locked(key) as conversation:
            conversation.turns.append({"question": question, "answer": answer, "msgId": msg_id})
            conversation.turns = conversation.turns[-keep:] if keep > 0 else []
            self._mark(conversation, msg_id)

    def record_handled(self, key: str, msg_id: str) -> None:
        with self._locked(key) as conversation:
            self._mark(conversation, msg_id)

    def clear(self, key: str, msg_id: str) -> None:
        with self._locked(key) as conversation:
            conversation.turns = []
            self._mark(conversation, msg_id)

    def set_persona(self, key: str, msg_id: str, persona: Optional[str]) -> None:
        """The conversation's own system prompt (``\\system``); None returns to ``SYSTEM_PROMPT``."""
        with self._locked(key) as conversation:
            conversation.persona = persona
            self._mark(conversation, msg_id)


def conversation_key(conversation_id: str, sender: Optional[str], per_sender: bool) -> str:
    """Group history is shared by default; ``HISTORY_SCOPE=sender`` gives each member their own."""
    return f"{conversation_id}|{sender}" if per_sender and sender else conversation_id
