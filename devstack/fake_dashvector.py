"""DashVector on loopback: one cluster's collections, as its HTTP API documents them.

Built from DashVector's "HTTP API" pages (create and describe a collection, upsert, delete and query docs):
the ``dashvector-auth-token`` header, answers ``{code, message, request_id, output}``, the error codes of the
official SDK's ``DashVectorCode`` (``dashvector/common/error.py``). It refuses what the service refuses as far
as those sources say: a wrong key, an unknown collection, a vector of the wrong dimension, more than 1,024
docs or ids in one request, a ``topk`` above 1,024. Scores follow the collection's metric: ``dotproduct`` is
the inner product (larger is nearer), ``cosine`` and ``euclidean`` distances (smaller is nearer).
"""

from __future__ import annotations

import math
import threading
import uuid
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from devstack.loopback import JsonHandler, LoopbackServer

SUCCESS, INVALID_ARGUMENT, INVALID_TOPK, MISMATCHED_DIMENSION = 0, -2999, -2041, -2019
INEXISTENT_COLLECTION, DUPLICATE_COLLECTION, EXCEED_IDS_LIMIT = -2021, -2025, -2967
MAX_BATCH, MAX_TOPK = 1024, 1024
INVALID_API_KEY = 10002


class FakeDashVector(LoopbackServer):
    def __init__(self, api_key: str = "sk-dashvector-local", port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.api_key = api_key
        self.collections: Dict[str, Dict[str, Any]] = {}
        self.queries = 0
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.url

    def docs(self, collection: str) -> Dict[str, Dict[str, Any]]:
        return self.collections[collection]["docs"]


def _score(metric: str, a: List[float], b: List[float]) -> float:
    if metric == "dotproduct":
        return sum(x * y for x, y in zip(a, b))
    if metric == "euclidean":
        return sum((x - y) ** 2 for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0
    return 1.0 - sum(x * y for x, y in zip(a, b)) / norm


class _Handler(JsonHandler):
    server: FakeDashVector

    def _answer(self, code: int, output: Any = None, message: str = "Success", status: int = 200) -> None:
        self.send_json(status, {"code": code, "message": message, "request_id": uuid.uuid4().hex,
                                **({"output": output} if output is not None else {})})

    def _admitted(self) -> bool:
        if self.headers.get("dashvector-auth-token") != self.server.api_key:
            self._answer(INVALID_API_KEY, message="Invalid api key", status=401)
            return False
        return True

    def _collection(self, name: str) -> Optional[Dict[str, Any]]:
        found = self.server.collections.get(name)
        if found is None:
            self._answer(INEXISTENT_COLLECTION, message=f"collection {name} does not exist")
        return found

    def _parts(self) -> List[str]:
        return [p for p in urlsplit(self.path).path.split("/") if p]

    def do_GET(self) -> None:
        parts = self._parts()
        if not self._admitted():
            return
        if len(parts) == 3 and parts[:2] == ["v1", "collections"]:
            collection = self._collection(parts[2])
            if collection is not None:
                self._answer(SUCCESS, {k: v for k, v in collection.items() if k != "docs"})
            return
        self._answer(INVALID_ARGUMENT, message="no such route", status=404)

    def do_POST(self) -> None:
        parts, body = self._parts(), self._json()
        if not self._admitted() or body is None:
            return
        if parts == ["v1", "collections"]:
            return self._create(body)
        if len(parts) >= 4 and parts[:2] == ["v1", "collections"]:
            collection = self._collection(parts[2])
            if collection is None:
                return
            if parts[3:] == ["docs", "upsert"]:
                return self._upsert(collection, body)
            if parts[3:] == ["query"]:
                return self._query(collection, body)
        self._answer(INVALID_ARGUMENT, message="no such route", status=404)

    def do_DELETE(self) -> None:
        parts, body = self._parts(), self._json()
        if not self._admitted() or body is None:
            return
        if len(parts) == 4 and parts[:2] == ["v1", "collections"] and parts[3] == "docs":
            collection = self._collection(parts[2])
            if collection is None:
                return
            ids = body.get("ids")
            if not isinstance(ids, list) or len(ids) > MAX_BATCH:
                return self._answer(EXCEED_IDS_LIMIT if isinstance(ids, list) else INVALID_ARGUMENT,
                                    message="ids must be a list of at most 1024")
            with self.server.lock:
                for doc_id in ids:
                    collection["docs"].pop(doc_id, None)
            return self._answer(SUCCESS, [{"doc_op": "delete", "id": i, "code": 0, "message": ""} for i in ids])
        self._answer(INVALID_ARGUMENT, message="no such route", status=404)

    def _json(self) -> Optional[Dict[str, Any]]:
        import json

        try:
            body = json.loads(self.read_body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._answer(-2047, message="invalid json")  # InvalidJson
            return None
        return body

    def _create(self, body: Dict[str, Any]) -> None:
        name, dimension = body.get("name"), body.get("dimension")
        if not isinstance(name, str) or not isinstance(dimension, int) or not 1 <= dimension <= 20000:
            return self._answer(INVALID_ARGUMENT, message="name and dimension are required")
        with self.server.lock:
            if name in self.server.collections:
                return self._answer(DUPLICATE_COLLECTION, message=f"collection {name} exists")
            self.server.collections[name] = {"name": name, "dimension": dimension, "dtype": "FLOAT",
                                             "metric": body.get("metric", "cosine"), "status": "SERVING",
                                             "fields_schema": body.get("fields_schema") or {},
                                             "partitions": {"default": "SERVING"}, "docs": {}}
        self._answer(SUCCESS)

    def _upsert(self, collection: Dict[str, Any], body: Dict[str, Any]) -> None:
        docs = body.get("docs")
        if not isinstance(docs, list) or not docs or len(docs) > MAX_BATCH:
            return self._answer(INVALID_ARGUMENT, message="docs must hold 1 to 1024 docs")
        for doc in docs:
            vector = doc.get("vector") if isinstance(doc, dict) else None
            if not isinstance(vector, list) or len(vector) != collection["dimension"]:
                return self._answer(MISMATCHED_DIMENSION, message="vector dimension mismatch")
            if not isinstance(doc.get("id"), str) or not doc["id"]:
                return self._answer(INVALID_ARGUMENT, message="a doc needs a string id")
        with self.server.lock:
            for doc in docs:
                collection["docs"][doc["id"]] = {"id": doc["id"], "vector": doc["vector"],
                                                 "fields": dict(doc.get("fields") or {})}
        self._answer(SUCCESS, [{"doc_op": "upsert", "id": d["id"], "code": 0, "message": ""} for d in docs])

    def _query(self, collection: Dict[str, Any], body: Dict[str, Any]) -> None:
        vector, topk = body.get("vector"), body.get("topk", 10)
        if not isinstance(topk, int) or not 1 <= topk <= MAX_TOPK:
            return self._answer(INVALID_TOPK, message="topk must be 1 to 1024")
        if not isinstance(vector, list) or len(vector) != collection["dimension"]:
            return self._answer(MISMATCHED_DIMENSION, message="vector dimension mismatch")
        metric = collection["metric"]
        with self.server.lock:
            self.server.queries += 1
            docs = list(collection["docs"].values())
        scored = sorted(((_score(metric, vector, d["vector"]), d) for d in docs),
                        key=lambda pair: -pair[0] if metric == "dotproduct" else pair[0])[:topk]
        wanted = body.get("output_fields")
        output = [{"id": d["id"], "score": score,
                   "fields": {k: v for k, v in d["fields"].items() if wanted is None or k in wanted},
                   **({"vector": d["vector"]} if body.get("include_vector") else {})} for score, d in scored]
        self._answer(SUCCESS, output)
