"""The chat model (``BRAIN=chat``): the tutorial's ``ENDPOINT`` and keys, the model and how long it may take."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

from shared.common.settings import EnvReader

DEFAULT_LLM_ENDPOINT = "https://api.openai.com"
COMPLETIONS_PATH = "/chat/completions"
DEFAULT_MODEL = "gpt-4.1-mini"


def llm_base_url(endpoint: str) -> str:
    """The tutorial's ``ENDPOINT`` is a service root; the SDK wants the ``/v1`` base URL.

    A bare root gets ``/v1``; a URL that already has a path (DashScope's
    ``.../compatible-mode/v1``, a proxy prefix) is used as given. The full
    ``.../v1/chat/completions`` URL that providers' pages show is accepted too: the SDK adds
    ``/chat/completions`` itself, so it is taken off.
    """
    endpoint = endpoint.strip().rstrip("/")
    if endpoint.endswith(COMPLETIONS_PATH):
        endpoint = endpoint[:-len(COMPLETIONS_PATH)]
    return endpoint if urlsplit(endpoint).path else endpoint + "/v1"


def model_base_url(read: EnvReader) -> str:
    return llm_base_url(read.url("ENDPOINT", DEFAULT_LLM_ENDPOINT))


def api_key(read: EnvReader, base_url: str, *, needed: bool = True) -> str:
    """The tutorial's rule: ``CHATGPT_API_KEY`` for OpenAI, ``USER_API_KEY`` for other endpoints when set.
    Not ``needed`` when another brain answers (the chat model then serves only embeddings and drawing)."""
    is_openai = urlsplit(base_url).hostname == "api.openai.com"
    user_key = read.text("USER_API_KEY")
    key = read.text("CHATGPT_API_KEY") if is_openai else (user_key or read.text("CHATGPT_API_KEY"))
    if key is None and not needed:
        return ""
    if key is None:
        read.fail("CHATGPT_API_KEY" if is_openai else "USER_API_KEY", "not set: the model service's API key",
                  "没有设置：模型服务的 API Key")
        return ""
    return key


def timeout_seconds(read: EnvReader) -> float:
    """``TIMEOUT``: how long one answer may take, whichever brain gives it."""
    return read.number("TIMEOUT", 55.0, float, 1.0, 86400.0)


class ModelSettings(NamedTuple):
    """What ``ChatModel`` sends where: ``base_url`` is the SDK's (``llm_base_url``), ``vision_model`` answers
    questions with pictures, ``timeout_seconds`` bounds one answer with its retries (``max_retries``), and
    ``max_context_tokens`` drops the oldest turns of a prompt that would not fit. ``allowed`` are the models a
    conversation may choose instead (``ALLOWED_MODELS``; ``model`` always is)."""

    api_key: str
    base_url: str
    model: str
    vision_model: str
    temperature: Optional[float]
    timeout_seconds: float
    max_retries: int
    max_context_tokens: Optional[int]
    allowed: Tuple[str, ...] = ()

    def __repr__(self) -> str:  # never the key
        return f"ModelSettings(model={self.model!r}, base_url={self.base_url!r})"

    @classmethod
    def read(cls, read: EnvReader, timeout: float, *, needed: bool) -> "ModelSettings":
        """``needed``: the chat model answers (``BRAIN=chat``), so its key must be set."""
        base_url = model_base_url(read)
        temperature = read.text("TEMPERATURE")
        model = read.text("MODEL") or DEFAULT_MODEL
        return cls(api_key(read, base_url, needed=needed), base_url, model, read.text("VISION_MODEL") or model,
                   None if temperature is None else read.number("TEMPERATURE", 0.0, float, 0.0, 2.0),
                   timeout, read.number("LLM_MAX_RETRIES", 2, int, 0, 5),
                   read.number("MAX_CONTEXT_TOKENS", None, int, 500, 10_000_000),
                   tuple(dict.fromkeys((model, *read.id_list("ALLOWED_MODELS")))))
