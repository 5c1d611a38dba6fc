"""The knowledge folder (``KNOWLEDGE_DIR``), the embeddings endpoint its index is built with, and where the index
is kept: in the folder and the instance's memory (``KB_BACKEND=embedded``, the default), or in a DashVector
collection (``KB_BACKEND=dashvector``, for folders beyond one instance's memory)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from shared.common.settings import EnvReader
from shared.reply.config.model import ModelSettings, llm_base_url

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
# A document is indexed up to this many times FILE_TEXT_CHARS.
DOCUMENT_CHARS_PER_FILE_TEXT_CHAR = 10
MAX_EMBEDDING_SECONDS = 30.0
BACKENDS = ("embedded", "dashvector")
DEFAULT_DASHVECTOR_COLLECTION = "dingbot_knowledge"


class KnowledgeSettings(NamedTuple):
    """Where the team's documents are, how they are embedded (the chat model's endpoint and key unless
    ``EMBEDDING_ENDPOINT``/``EMBEDDING_API_KEY`` say otherwise), and how many excerpts an answer gets."""

    folder: str
    embedding_model: str
    embedding_base_url: str
    embedding_api_key: str
    top_k: int
    min_score: float
    refresh_seconds: float
    max_document_chars: int
    timeout_seconds: float
    backend: str = "embedded"
    dashvector_endpoint: str = ""
    dashvector_api_key: str = ""
    dashvector_collection: str = DEFAULT_DASHVECTOR_COLLECTION

    def __repr__(self) -> str:  # never the key
        return (f"KnowledgeSettings(folder={self.folder!r}, embedding_model={self.embedding_model!r}, "
                f"backend={self.backend!r})")

    @classmethod
    def read(cls, read: EnvReader, model: ModelSettings, file_text_chars: int) -> "KnowledgeSettings":
        mount = read.text("OSS_MOUNT_POINT") or "/mnt/oss"
        backend = read.choice("KB_BACKEND", "embedded", BACKENDS)
        remote = backend == "dashvector"
        endpoint = read.required("DASHVECTOR_ENDPOINT", "the DashVector cluster's endpoint (its console, cluster "
                                 "details)", "DashVector 集群的 Endpoint（控制台 → 集群详情）") if remote else ""
        key = read.required("DASHVECTOR_API_KEY", "a DashVector API key (its console, API-KEY 管理)",
                            "DashVector 的 API Key（控制台 → API-KEY 管理）") if remote else ""
        return cls(read.text("KNOWLEDGE_DIR") or str(Path(mount) / "dingbot" / "knowledge"),
                   read.text("EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL,
                   llm_base_url(read.url("EMBEDDING_ENDPOINT", "")) if read.text("EMBEDDING_ENDPOINT")
                   else model.base_url,
                   read.text("EMBEDDING_API_KEY") or model.api_key,
                   read.number("KB_TOP_K", 4, int, 1, 20),
                   read.number("KB_MIN_SCORE", 0.3, float, 0.0, 1.0),
                   read.number("KB_REFRESH_SECONDS", 10.0, float, 1.0, 600.0),
                   file_text_chars * DOCUMENT_CHARS_PER_FILE_TEXT_CHAR,
                   min(model.timeout_seconds, MAX_EMBEDDING_SECONDS),
                   backend, endpoint, key, read.text("DASHVECTOR_COLLECTION") or DEFAULT_DASHVECTOR_COLLECTION)
