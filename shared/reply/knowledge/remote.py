"""The knowledge folder kept in an external engine (``KB_BACKEND=dashvector``), with no index in memory.

What the embedded index keeps in ``index.json`` and the vector file, the engine keeps here; the folder keeps
only a ledger, ``.index/remote.json``: each document's size, time, content hash and the ids of its chunks in
the engine. A look at the folder (at most every ``CHECK_SECONDS``, as for the embedded index) embeds what
changed within ``KB_REFRESH_SECONDS``, upserts its chunks and deletes the chunks of what changed or went;
the ledger is written after the engine accepted them, so a failure is retried at the next look. A chunk's
id is its document's content hash and its number, so an unchanged document is never sent again, whichever
instance looks.

An answer embeds the question and asks the engine for ``CANDIDATES`` chunks; the keyword, code and name
rules of ``retrieve.py`` decide among them. A code or a name in a chunk that is not among them is not found:
the engine is asked by vector only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Dict, List

from shared.common import log
from shared.common.random_ids import random_id
from shared.reply.knowledge.dashvector import DashVector
from shared.reply.knowledge.embeddings import Embedder
from shared.reply.knowledge.index import (
    INDEX_FOLDER,
    MAX_FILE_BYTES,
    documents_in,
    embedded_texts,
    folder_changed,
    readable_chunks,
    unchanged,
)

LEDGER = "remote.json"
logger = log.get("knowledge")


def _ledger(folder: Path) -> Dict[str, Dict]:
    try:
        return json.loads((folder / INDEX_FOLDER / LEDGER).read_text("utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}


def _save(folder: Path, files: Dict[str, Dict], model: str) -> None:
    target = folder / INDEX_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    temp = target / f".tmp-{random_id()}-{LEDGER}"
    temp.write_text(json.dumps({"version": 1, "model": model, "files": files}, ensure_ascii=False), "utf-8")
    os.replace(temp, target / LEDGER)


def differs(folder: Path) -> bool:
    """Whether a document was added, changed or removed since the ledger was written (stat only, no reads)."""
    return folder_changed(_ledger(folder), folder)


def sync(folder: Path, engine: DashVector, embedder: Embedder, *, max_chars: int, seconds: float,
         clock: Callable[[], float] = time.monotonic) -> List[str]:
    """Bring the engine up to the folder; what changed (for the log and ``make kb``). Raises ``EmbeddingError``
    (``DashVectorError`` is one) when the embeddings endpoint or the engine fails: the ledger then keeps what
    was done before the failure."""
    deadline = clock() + seconds
    files = _ledger(folder)
    changes: List[str] = []
    ensured = False
    present = documents_in(folder)
    for source, stat in present.items():
        entry = files.get(source)
        if unchanged(entry, stat):
            continue
        if clock() > deadline:
            changes.append(f"later: {source}")
            continue
        data = (folder / source).read_bytes()[:MAX_FILE_BYTES]
        digest = hashlib.sha256(data).hexdigest()[:16]
        fresh = {"size": stat.st_size, "mtime": int(stat.st_mtime), "sha": digest}
        if entry and entry.get("sha") == digest:
            files[source] = {**entry, **fresh}
            continue
        chunks = readable_chunks(source, data, max_chars)
        ids = [f"{digest}-{number}" for number in range(len(chunks))]
        if chunks:
            vectors = embedder.embed(embedded_texts(chunks))
            if not ensured:
                engine.ensure(len(vectors[0]))
                ensured = True
            engine.upsert(list(zip(ids, chunks, vectors)))
        stale = [i for i in (entry or {}).get("ids", []) if i not in ids]
        if stale:
            engine.delete(stale)
        files[source] = {**fresh, "ids": ids}
        _save(folder, files, embedder.model)
        changes.append(f"{'updated' if entry else 'added'}: {source} ({len(chunks)} chunks)")
    gone = [source for source in files if source not in present]
    for source in gone:
        engine.delete(files[source].get("ids", []))
        del files[source]
        changes.append(f"removed: {source}")
    if gone or changes:
        _save(folder, files, embedder.model)
    return changes
