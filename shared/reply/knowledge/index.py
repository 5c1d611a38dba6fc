"""The knowledge folder's index: chunks and their vectors, next to the documents, rebuilt incrementally.

``<folder>/.index/index.json`` lists each indexed file (size, modified time, content hash, its
chunks) and names the vector file it goes with (``vectors-<hash>.f32``: float32, one row per chunk).
A file whose size and time, or else whose content hash, did not change keeps its chunks and vectors:
only changed files are embedded again, removed files drop out. The vector file is written first and
``index.json`` last, each whole under a temporary name then renamed, so a reader always finds a
matching pair; two instances refreshing at once each write a consistent pair and the later one wins.
Vector files no index names are deleted once they are old enough that no reader can still be on one.

In memory each vector also has a sign code: one bit per dimension, set where the value is negative,
packed into an int. Two unit vectors' angle is about the share of the bits their codes differ in, so a
pass of XOR and bit counts over 10,000 codes (a few milliseconds in pure Python) finds the candidates
that the exact dot products then rank; see ``retrieve.py``.
"""

from __future__ import annotations

import array
import functools
import hashlib
import json
import os
import sys
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from shared.common import log
from shared.common.random_ids import random_id
from shared.reply.documents import Unreadable
from shared.reply.knowledge.chunking import SUFFIXES, Chunk, chunk_document
from shared.reply.knowledge.embeddings import Embedder

INDEX_FOLDER = ".index"
INDEX_FILE = "index.json"
STALE_VECTORS_SECONDS = 600
MAX_FILE_BYTES = 20 * 1024 * 1024

logger = log.get("knowledge")


@dataclass
class Index:
    """What an instance holds in memory: the chunks, one vector per chunk, and what was indexed when."""

    chunks: List[Chunk] = field(default_factory=list)
    vectors: List[array.array] = field(default_factory=list)
    files: Dict[str, Dict] = field(default_factory=dict)
    built_at: int = 0
    model: str = ""

    @functools.cached_property
    def bodies(self) -> List[str]:
        """Each chunk's heading and text, lower-cased, for keyword matching: made once per index, not per question."""
        return [f"{c.heading}\n{c.text}".lower() for c in self.chunks]

    @functools.cached_property
    def _text(self) -> Tuple[str, List[int]]:
        """All bodies in one string (NUL between them) and where each starts: one C-speed scan finds a word."""
        starts, offset = [], 0
        for body in self.bodies:
            starts.append(offset)
            offset += len(body) + 1
        return "\0".join(self.bodies), starts

    def holding(self, needle: str, most: int) -> List[int]:
        """The numbers of the chunks whose body holds ``needle`` (lower-case), at most ``most`` of them."""
        text, starts = self._text
        found: List[int] = []
        at = text.find(needle)
        while at >= 0 and len(found) < most:
            number = bisect_right(starts, at) - 1
            found.append(number)
            at = text.find(needle, starts[number + 1] if number + 1 < len(starts) else len(text))
        return found

    @functools.cached_property
    def codes(self) -> List[int]:
        """Each vector's sign code (see the module's docstring), made once per index: ~5 µs a vector."""
        return [sign_code(vector) for vector in self.vectors]

    def ready(self) -> "Index":
        """Make what search reads per question (bodies, codes) now, while loading, rather than in an answer."""
        _ = self._text, self.codes
        return self

    def file_chunks(self, source: str) -> List[Tuple[Chunk, array.array]]:
        return [(c, v) for c, v in zip(self.chunks, self.vectors) if c.source == source]


# float32's sign is the top bit of its last byte (little-endian) or of its first; this table maps that byte
# to the digit "1" when the sign is set and "0" otherwise, so int(..., 2) packs the bits in C.
_SIGN_BYTE = 3 if sys.byteorder == "little" else 0
_SIGN_DIGITS = bytes(b"1"[0] if value >= 128 else b"0"[0] for value in range(256))


def sign_code(vector: array.array) -> int:
    """One bit per dimension of a float32 vector, set where the value is negative."""
    return int(vector.tobytes()[_SIGN_BYTE::4].translate(_SIGN_DIGITS), 2)


def documents_in(folder: Path) -> Dict[str, os.stat_result]:
    """Supported files under ``folder`` (sub-folders too, the index folder and hidden files aside)."""
    found: Dict[str, os.stat_result] = {}
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.lower().endswith(SUFFIXES):
                continue
            path = Path(directory) / name
            found[path.relative_to(folder).as_posix()] = path.stat()
    return found


def load(folder: Path) -> Optional[Index]:
    """The index on disk, or None when there is none (or it is half there)."""
    try:
        meta = json.loads((folder / INDEX_FOLDER / INDEX_FILE).read_text("utf-8"))
        raw = (folder / INDEX_FOLDER / meta["vectors"]).read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    flat = array.array("f")
    flat.frombytes(raw)
    dims = int(meta.get("dims") or 0)
    chunks = [Chunk(c["source"], c.get("page"), c.get("heading", ""), c["text"]) for c in meta.get("chunks", [])]
    if dims <= 0 or len(flat) != dims * len(chunks):
        return None
    vectors = [flat[i * dims:(i + 1) * dims] for i in range(len(chunks))]
    return Index(chunks, vectors, meta.get("files", {}), int(meta.get("built_at") or 0), meta.get("model", "")).ready()


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".tmp-{random_id()}-{path.name}")
    temp.write_bytes(data)
    os.replace(temp, path)


def save(folder: Path, index: Index) -> None:
    target = folder / INDEX_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    flat = array.array("f")
    for vector in index.vectors:
        flat.extend(vector)
    raw = flat.tobytes()
    vectors_name = f"vectors-{hashlib.sha256(raw).hexdigest()[:16]}.f32"
    _write_atomically(target / vectors_name, raw)
    meta = {"version": 1, "model": index.model, "built_at": index.built_at, "vectors": vectors_name,
            "dims": len(index.vectors[0]) if index.vectors else 1, "files": index.files,
            "chunks": [{"source": c.source, "page": c.page, "heading": c.heading, "text": c.text}
                       for c in index.chunks]}
    _write_atomically(target / INDEX_FILE, json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    for old in target.glob("vectors-*.f32"):
        if old.name != vectors_name and time.time() - old.stat().st_mtime > STALE_VECTORS_SECONDS:
            old.unlink(missing_ok=True)


def readable_chunks(source: str, data: bytes, max_chars: int) -> List[Chunk]:
    """The document's chunks; none (and a line in the log) when it cannot be read, so one bad file costs itself."""
    try:
        return chunk_document(source, data, max_chars)
    except Unreadable as exc:
        logger.warning("knowledge: %s skipped: %s", source, exc)
        return []


def embedded_texts(chunks: List[Chunk]) -> List[str]:
    """What is embedded of each chunk: its heading and its text (the question is matched against both)."""
    return [f"{c.heading}\n{c.text}" for c in chunks]


def unchanged(entry: Optional[Dict], stat: os.stat_result) -> bool:
    """Whether a file's size and time are those an index recorded (``files`` entries: ``size``, ``mtime``)."""
    return bool(entry) and entry.get("size") == stat.st_size and entry.get("mtime") == int(stat.st_mtime)


def folder_changed(files: Dict[str, Dict], folder: Path) -> bool:
    """Whether a document was added, changed or removed since ``files`` was recorded (stat only, no reads)."""
    stats = documents_in(folder)
    return set(stats) != set(files) or not all(unchanged(files[s], st) for s, st in stats.items())


def refresh(folder: Path, previous: Optional[Index], embedder: Embedder, *, max_chars: int, seconds: float,
            clock: Callable[[], float] = time.monotonic) -> Tuple[Index, List[str]]:
    """The index for the folder as it is now, reusing what did not change; stops embedding new files once
    ``seconds`` have passed (they are picked up next time). Returns the index and what changed (for the
    log and ``make kb``). Raises ``EmbeddingError`` when the embeddings endpoint fails."""
    deadline = clock() + seconds
    previous = previous or Index()
    fresh = Index(model=embedder.model)
    changes: List[str] = []
    for source, stat in documents_in(folder).items():
        entry = previous.files.get(source)
        kept = previous.file_chunks(source) if previous.model == embedder.model else []
        if unchanged(entry, stat) and (kept or entry.get("chunks") == 0):
            _keep(fresh, source, entry, kept)
            continue
        if clock() > deadline:
            if kept:
                _keep(fresh, source, entry, kept)
            changes.append(f"later: {source}")
            continue
        data = (folder / source).read_bytes()[:MAX_FILE_BYTES]
        digest = hashlib.sha256(data).hexdigest()[:16]
        if entry and entry.get("sha") == digest and kept:
            _keep(fresh, source, {**entry, "size": stat.st_size, "mtime": int(stat.st_mtime)}, kept)
            continue
        chunks = readable_chunks(source, data, max_chars)
        vectors = [array.array("f", v) for v in embedder.embed(embedded_texts(chunks))]
        _keep(fresh, source, {"size": stat.st_size, "mtime": int(stat.st_mtime), "sha": digest},
              list(zip(chunks, vectors)))
        changes.append(f"{'updated' if entry else 'added'}: {source} ({len(chunks)} chunks)")
    changes += [f"removed: {source}" for source in previous.files if source not in fresh.files]
    fresh.built_at = int(time.time() * 1000) if changes else previous.built_at
    return fresh.ready(), changes


def _keep(index: Index, source: str, entry: Dict, pairs: List[Tuple[Chunk, array.array]]) -> None:
    index.files[source] = {**entry, "chunks": len(pairs)}
    index.chunks += [chunk for chunk, _ in pairs]
    index.vectors += [vector for _, vector in pairs]
