"""The operator's settings for conversations: JSON files on the bucket, read at most once a minute per instance.

``dingbot/settings/groups.json`` maps conversation ids to settings; ``dingbot/settings/<file>.json`` holds one
conversation's (its name is ``file_name`` of the id, which ``\\设置`` shows in that conversation) and wins over
``groups.json`` item by item. Both are written by hand, so a file that is not a JSON object is logged and left
out, never a failure of the answer; the items themselves are checked where they are used
(``conversation_settings.py``). A file edited on the bucket is in force on every instance within
``REFRESH_SECONDS``: each instance keeps what it read for that long.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, Optional, Tuple

from shared.common import log
from shared.reply.oss.blobs import MountBlobs, decode

FOLDER = "settings/"
GROUPS_FILE = FOLDER + "groups.json"
REFRESH_SECONDS = 60.0
UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")

logger = log.get("operator")
# Per instance: (folder, file) -> (when it was read, its settings).
_READ: Dict[Tuple[str, str], Tuple[float, Dict[str, Any]]] = {}


def file_name(conversation_id: str) -> str:
    """The file of one conversation: its id with what a file name cannot hold (``/``, spaces…) as ``_``."""
    return UNSAFE.sub("_", conversation_id)[:200] + ".json"


class OperatorSettings:
    def __init__(self, blobs: MountBlobs, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.blobs = blobs
        self.clock = clock

    def for_conversation(self, conversation_id: str) -> Dict[str, Any]:
        """What the operator set for this conversation (``{}``: nothing). Raises ``OSError`` when the bucket
        cannot be read."""
        listed = self._file(GROUPS_FILE).get(conversation_id)
        return {**(listed if isinstance(listed, dict) else {}), **self._file(FOLDER + file_name(conversation_id))}

    def known(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """What ``for_conversation`` would answer without reading anything, or None when a file is due a read."""
        now = self.clock()
        names = (GROUPS_FILE, FOLDER + file_name(conversation_id))
        kept = [_READ.get((str(self.blobs.root), name)) for name in names]
        if any(entry is None or now - entry[0] >= REFRESH_SECONDS for entry in kept):
            return None
        listed = kept[0][1].get(conversation_id)  # type: ignore[index]
        return {**(listed if isinstance(listed, dict) else {}), **kept[1][1]}  # type: ignore[index]

    def _file(self, name: str) -> Dict[str, Any]:
        key = (str(self.blobs.root), name)
        kept = _READ.get(key)
        now = self.clock()
        if kept is not None and now - kept[0] < REFRESH_SECONDS:
            return kept[1]
        raw = self.blobs.read(name)
        document = decode(raw) or {}
        if raw and not document:
            logger.error("dingbot/%s is not a JSON object and is ignored: fix it in the OSS console", name)
        _READ[key] = (now, document)
        return document
