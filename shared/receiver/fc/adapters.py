"""Adapters at the edge: FC 2.0's WSGI call and FC 3.0's HTTP-trigger event, over one request type.

FC 2.0 calls an HTTP function as ``handler(environ, start_response)``; FC 3.0 calls every
function as ``handler(event_bytes, context)`` and expects ``{"statusCode", "headers", "body"}``
back. ``http_function`` tells the two apart by their arguments, so one ``index.handler``
deploys on either generation.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from shared.common import log
from shared.common.errors import MalformedRequest

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
READ_CAP = 6 * 1024 * 1024
logger = log.get("receiver")
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error", 502: "Bad Gateway"}


class Headers:
    """Case-insensitive header lookup: FC 3.0 capitalises names (``Sign``), WSGI upper-cases them."""

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = {str(k).lower(): str(v) for k, v in items.items()}

    def get(self, name: str) -> Optional[str]:
        return self._items.get(name.lower())


@dataclass
class HttpRequest:
    """An HTTP request in the same shape for FC 2.0's WSGI and FC 3.0's event form."""

    method: str
    headers: Headers
    body: bytes
    context: Any = None
    declared_length: Optional[int] = None
    path: str = "/"


@dataclass
class HttpResponse:
    """What the receiver answers, whichever form FC called it in."""

    status: int
    payload: Dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> str:
        return json.dumps(self.payload, ensure_ascii=False)


Core = Callable[[HttpRequest], HttpResponse]


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, {"error": message})


def _wsgi_headers(environ: Mapping[str, Any]) -> Headers:
    items = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            items[key.replace("_", "-")] = environ[key]
    return Headers(items)


def _read_wsgi_body(environ: Mapping[str, Any], limit: int) -> Tuple[bytes, Optional[int]]:
    """Never buffer more than ``limit + 1`` bytes; the core refuses what is over its own limit."""
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    declared = max(declared, 0)
    if declared > limit:
        return b"", declared
    stream = environ.get("wsgi.input")
    if stream is None:
        return b"", declared
    body = stream.read(declared) if declared else stream.read(limit + 1)
    return body, declared or len(body)


def serve_wsgi(core: Core, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body, declared = _read_wsgi_body(environ, READ_CAP)
    request = HttpRequest(str(environ.get("REQUEST_METHOD", "POST")).upper(), _wsgi_headers(environ), body,
                          environ.get("fc.context"), declared, str(environ.get("PATH_INFO") or "/"))
    response = _guarded(core, request)
    encoded = response.body.encode("utf-8")
    status = f"{response.status} {REASONS.get(response.status, '')}".strip()
    start_response(status, [*JSON_HEADERS.items(), ("Content-Length", str(len(encoded)))])
    return [encoded]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def request_from_event(event: bytes | str | Mapping[str, Any], context: Any) -> HttpRequest:
    """Turn the FC 3.0 HTTP-trigger event into a request; raise ``MalformedRequest`` if it is not one."""
    if isinstance(event, (bytes, bytearray, str)):
        try:
            event = json.loads(event)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedRequest("FC event is not JSON") from None
    if not isinstance(event, Mapping):
        raise MalformedRequest("FC event is not an HTTP-trigger event")
    raw_body = event.get("body")
    if raw_body is None:
        raw_body = ""
    if not isinstance(raw_body, str):
        raise MalformedRequest("FC event body is not a string")
    try:
        body = base64.b64decode(raw_body, validate=True) if event.get("isBase64Encoded") is True \
            else raw_body.encode("utf-8", "surrogatepass")
    except (ValueError, UnicodeError):
        raise MalformedRequest("FC event body is not valid base64") from None
    http = _mapping(_mapping(event.get("requestContext")).get("http"))
    return HttpRequest(str(http.get("method") or "POST").upper(), Headers(_mapping(event.get("headers"))), body,
                       context, len(body), str(event.get("rawPath") or http.get("path") or "/"))


def serve_event(core: Core, event: bytes | str | Mapping[str, Any], context: Any) -> Dict[str, Any]:
    try:
        request = request_from_event(event, context)
    except MalformedRequest as exc:
        logger.warning("not an HTTP-trigger event: %s", exc)
        response = _error(400, "bad request")
    else:
        response = _guarded(core, request)
    return {"statusCode": response.status, "headers": dict(JSON_HEADERS), "body": response.body}


def _guarded(core: Core, request: HttpRequest) -> HttpResponse:
    """FC hands an unhandled exception's stack trace to the caller: none may escape to an
    unauthenticated one. The trace goes to the log instead."""
    try:
        return core(request)
    except Exception:
        logger.exception("unexpected failure while handling a request")
        return _error(500, "internal error")


def http_function(core: Core) -> Callable[[Any, Any], Any]:
    """One handler for both generations: WSGI when called with ``(environ dict, start_response)``."""

    def handler(first: Any, second: Any) -> Any:
        if isinstance(first, dict) and callable(second) and "REQUEST_METHOD" in first:
            return serve_wsgi(core, first, second)
        return serve_event(core, first, second)

    return handler


def error_response(status: int, message: str) -> HttpResponse:
    return _error(status, message)


def ok_response(**payload: Any) -> HttpResponse:
    return HttpResponse(200, dict(payload))


__all__: List[str] = ["Headers", "HttpRequest", "HttpResponse", "http_function", "error_response",
                      "ok_response", "request_from_event", "serve_event", "serve_wsgi"]
