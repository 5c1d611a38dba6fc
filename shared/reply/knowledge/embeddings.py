"""Text into vectors through an OpenAI-compatible ``/v1/embeddings`` (``EMBEDDING_MODEL``).

The same endpoint and key as the chat model unless ``EMBEDDING_ENDPOINT`` names another (DashScope's
``text-embedding-v3`` sits behind the same compatible-mode URL as its chat models). Vectors are
normalised to unit length here, so similarity is a dot product.
"""

from __future__ import annotations

import math
from typing import Any, List, Sequence

from shared.common.errors import DingbotError

BATCH = 10  # DashScope's compatible mode takes at most 10 inputs a request


class EmbeddingError(DingbotError):
    """The embeddings endpoint did not answer; the message says why (for the log)."""


def normalised(vector: Sequence[float]) -> List[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class Embedder:
    def __init__(self, base_url: str, api_key: str, model: str, timeout: float) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=1)
        return self._client

    def embed(self, texts: Sequence[str]) -> List[List[float]]:
        """One unit vector per text, in order; raises ``EmbeddingError``."""
        import openai

        vectors: List[List[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start:start + BATCH])
            try:
                answer = self._get_client().embeddings.create(model=self.model, input=batch)
            except openai.OpenAIError as exc:
                raise EmbeddingError(f"embeddings of {self.model} failed: {type(exc).__name__}: {exc}") from None
            data = sorted(answer.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbeddingError(f"embeddings of {self.model}: {len(data)} vectors for {len(batch)} inputs")
            vectors += [normalised(item.embedding) for item in data]
        return vectors
