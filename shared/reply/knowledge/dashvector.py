"""DashVector (Alibaba Cloud's vector search service) as the knowledge index: ``KB_BACKEND=dashvector``.

For a folder beyond what one instance should hold in memory. The chunks and their vectors live in a
DashVector collection; an answer embeds the question and asks the collection for its nearest chunks, and
the same keyword, code and name rules as the embedded index decide among them (``retrieve.py``).

The HTTP API as documented ("HTTP API" of DashVector: create and describe a collection, upsert, delete and
query docs): every call carries ``dashvector-auth-token``, and every answer is ``{code, message, request_id,
output}`` with ``code`` 0 on success. The collection is created with ``metric: dotproduct``: the vectors are
unit length (``embeddings.py``), so the score is the cosine similarity, larger is nearer, and
``KB_MIN_SCORE`` means what it means for the embedded index. A chunk is a doc whose fields are the chunk's
``source``, ``page``, ``heading`` and ``text``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import requests

from shared.reply.knowledge.chunking import Chunk
from shared.reply.knowledge.embeddings import EmbeddingError

# Docs per upsert: a 1,536-dimension doc is about 20 KB of JSON, and a request must stay well under 2 MB.
UPSERT_BATCH = 32
# Ids per delete request.
DELETE_BATCH = 512
FIELDS = {"source": "STRING", "page": "INT", "heading": "STRING", "text": "STRING"}
INEXISTENT_COLLECTION = -2021


class DashVectorError(EmbeddingError):
    """The collection could not be read or written; like a failing embeddings endpoint, it costs the answer its
    knowledge, never the answer."""


class Missing(DashVectorError):
    """The collection does not exist (``InexistentCollection``)."""


class DashVector:
    """One collection of a DashVector cluster (``DASHVECTOR_ENDPOINT``, ``DASHVECTOR_API_KEY``,
    ``DASHVECTOR_COLLECTION``)."""

    def __init__(self, endpoint: str, api_key: str, collection: str, timeout: float) -> None:
        self.base = endpoint if "://" in endpoint else f"https://{endpoint}"
        self.api_key = api_key
        self.collection = collection
        self.timeout = timeout

    def __repr__(self) -> str:  # never the key
        return f"DashVector({self.base!r}, collection={self.collection!r})"

    def _call(self, method: str, path: str, body: Dict[str, Any] | None = None) -> Any:
        try:
            response = requests.request(method, self.base.rstrip("/") + path, json=body, timeout=self.timeout,
                                        headers={"dashvector-auth-token": self.api_key})
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise DashVectorError(f"DashVector {method} {path}: {type(exc).__name__}") from None
        code = answer.get("code") if isinstance(answer, dict) else None
        if response.status_code != 200 or code != 0:
            if code == INEXISTENT_COLLECTION:
                raise Missing(f"DashVector collection {self.collection} does not exist")
            message = str(answer.get("message", ""))[:200] if isinstance(answer, dict) else ""
            raise DashVectorError(f"DashVector {method} {path}: HTTP {response.status_code}, code {code}, {message}")
        return answer.get("output")

    def ensure(self, dimension: int) -> None:
        """The collection, created (``dotproduct``, the chunk fields) unless it exists; a collection of another
        dimension is an error that names both."""
        try:
            meta = self._call("GET", f"/v1/collections/{self.collection}") or {}
        except Missing:
            self._call("POST", "/v1/collections", {"name": self.collection, "dimension": dimension,
                                                   "metric": "dotproduct", "fields_schema": FIELDS})
            return
        if meta.get("dimension") != dimension or meta.get("metric") != "dotproduct":
            raise DashVectorError(f"DashVector collection {self.collection} has dimension {meta.get('dimension')} "
                                  f"and metric {meta.get('metric')}; the embeddings need {dimension} and dotproduct")

    def upsert(self, docs: Sequence[Tuple[str, Chunk, Sequence[float]]]) -> None:
        for start in range(0, len(docs), UPSERT_BATCH):
            batch = [{"id": doc_id, "vector": list(vector),
                      "fields": {"source": chunk.source, "page": chunk.page or 0, "heading": chunk.heading,
                                 "text": chunk.text}} for doc_id, chunk, vector in docs[start:start + UPSERT_BATCH]]
            self._call("POST", f"/v1/collections/{self.collection}/docs/upsert", {"docs": batch})

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), DELETE_BATCH):
            self._call("DELETE", f"/v1/collections/{self.collection}/docs",
                       {"ids": list(ids[start:start + DELETE_BATCH])})

    def query(self, vector: Sequence[float], topk: int) -> List[Tuple[Chunk, float]]:
        """The ``topk`` nearest chunks and their similarity, nearest first."""
        output = self._call("POST", f"/v1/collections/{self.collection}/query",
                            {"vector": list(vector), "topk": topk, "include_vector": False,
                             "output_fields": list(FIELDS)}) or []
        found = []
        for doc in output:
            fields = doc.get("fields") or {}
            chunk = Chunk(str(fields.get("source", "")), int(fields.get("page") or 0) or None,
                          str(fields.get("heading") or ""), str(fields.get("text") or ""))
            found.append((chunk, float(doc.get("score") or 0.0)))
        return found
