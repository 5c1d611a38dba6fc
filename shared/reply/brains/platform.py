"""One streamed request to an application platform (Bailian, Dify), bounded by ``TIMEOUT``.

``requests`` times out each read, not the answer: a platform that sends a ``ping`` every 10 s (Dify
does) would keep a call alive for ever. So the deadline is checked at every chunk that arrives, a
keep-alive included, and a read that waits the whole ``TIMEOUT`` for a chunk times out by itself.
Errors are ``PlatformError`` with the HTTP status and the platform's own code, which
``platform_error`` turns into one sentence.
"""

from __future__ import annotations

import functools
import http.client
import json
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import requests
import urllib3

from shared.common import log
from shared.common.errors import LLMError
from shared.reply import texts
from shared.reply.sse import ServerEvent, events

logger = log.get("platform")
CONNECT_SECONDS = 10.0


class PlatformError(Exception):
    """``status`` 0: no HTTP answer (unreachable); ``timed_out``: ``TIMEOUT`` passed."""

    def __init__(self, status: int, code: str, message: str, *, timed_out: bool = False) -> None:
        super().__init__(f"HTTP {status} {code}: {message}"[:300])
        self.status = status
        self.code = code
        self.message = message
        self.timed_out = timed_out


@functools.lru_cache(maxsize=1)
def session() -> requests.Session:
    """Kept across warm invocations: the platform's connection stays open."""
    return requests.Session()


def json_object(data: str) -> Dict[str, Any]:
    """An event's data as the object both platforms send; {} for anything else."""
    try:
        document = json.loads(data)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def error_of(status: int, body: bytes) -> PlatformError:
    """A platform's JSON error body (``{"code": …, "message": …}``, as both document), or its first bytes."""
    try:
        document = json.loads(body.decode("utf-8"))
    except ValueError:
        document = None
    if isinstance(document, dict):
        return PlatformError(status, str(document.get("code") or ""), str(document.get("message") or ""))
    return PlatformError(status, "", body[:200].decode("utf-8", "replace"))


def arriving(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as they arrive. ``iter_content(None)`` reads a body without chunked encoding (an
    SSE answer ended by closing the connection) to its end before giving any of it. ``read1`` returns what
    the socket has: urllib3 2 has its own; FC's python3.10 ships urllib3 1.26, whose response wraps an
    ``http.client`` response that has it. The answer is asked for uncompressed, so neither has to decode."""
    read = getattr(response.raw, "read1", None) or response.raw._fp.read1
    while True:
        chunk = read(65536)
        if not chunk:
            return
        yield chunk


class StreamedCall:
    """POST ``body`` to ``url`` and read its SSE answer within ``seconds``."""

    def __init__(self, url: str, api_key: str, body: Dict[str, Any], seconds: float,
                 headers: Optional[Dict[str, str]] = None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                        "Accept": "text/event-stream", "Accept-Encoding": "identity", **(headers or {})}
        self.body = body
        self.seconds = seconds

    def events(self) -> Iterator[ServerEvent]:
        deadline = time.monotonic() + self.seconds

        def in_time(chunks: Iterator[bytes]) -> Iterator[bytes]:
            # Checked at every chunk, a keep-alive comment included: those are what a dripping server sends.
            for chunk in chunks:
                if time.monotonic() > deadline:
                    raise PlatformError(0, "timeout", "TIMEOUT passed", timed_out=True)
                yield chunk

        try:
            response = session().post(self.url, data=json.dumps(self.body, ensure_ascii=False).encode("utf-8"),
                                      headers=self.headers, stream=True,
                                      timeout=(CONNECT_SECONDS, max(self.seconds, 1.0)))
        except requests.Timeout:
            raise PlatformError(0, "timeout", "no answer", timed_out=True) from None
        except requests.RequestException as exc:
            raise PlatformError(0, "unreachable", type(exc).__name__) from None
        with response:
            if response.status_code != 200:
                raise error_of(response.status_code, response.content)
            # ``read1`` is urllib3's or http.client's own: their errors arrive unwrapped by requests.
            try:
                yield from events(in_time(arriving(response)))
            except (urllib3.exceptions.TimeoutError, TimeoutError):  # a read that waited the whole TIMEOUT
                raise PlatformError(0, "timeout", "TIMEOUT passed", timed_out=True) from None
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise PlatformError(0, "interrupted", type(exc).__name__) from None


def question_text(content: Any) -> Tuple[str, List[str]]:
    """The question's words and its pictures (data URLs) from the chat model's content parts."""
    if isinstance(content, str):
        return content, []
    words = "\n".join(part["text"] for part in content if part.get("type") == "text")
    return words, [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


def platform_error(kind: str, exc: PlatformError) -> LLMError:
    """One sentence for the chat, from what both platforms say about a failure."""
    platform = texts.PLATFORM_NAMES[kind]
    code = exc.code.lower()
    if exc.timed_out:
        sentence = texts.TIMEOUT
    elif exc.status == 0:
        sentence = texts.PLATFORM_UNREACHABLE if exc.code == "unreachable" else texts.INTERRUPTED
    elif exc.status in (401, 403) or "apikey" in code or code == "unauthorized":
        sentence = texts.PLATFORM_AUTH
    elif "datainspection" in code:
        sentence = texts.PLATFORM_MODERATED
    elif "arrearage" in code or code in ("provider_quota_exceeded", "allocationquota") or \
            ("quota" in code and "ratequota" not in code):
        sentence = texts.PLATFORM_QUOTA
    elif exc.status == 429 or "throttling" in code:
        sentence = texts.PLATFORM_BUSY
    elif exc.status == 404 or "notfound" in code or code == "app_unavailable":
        sentence = texts.PLATFORM_APP_MISSING
    elif code in ("provider_not_initialize", "model_currently_not_support"):
        sentence = texts.PLATFORM_NOT_READY
    elif exc.status >= 500:
        sentence = texts.PLATFORM_UNAVAILABLE
    else:
        sentence = texts.PLATFORM_REJECTED
    return LLMError(sentence.format(platform=platform, status=exc.status, code=exc.code or f"HTTP {exc.status}"),
                    str(exc))
