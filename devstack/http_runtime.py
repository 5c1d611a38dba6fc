"""Serve an HTTP function the way FC does: ``python -m devstack.http_runtime <function_dir> --port N``.

FC 3.0 form (default): each request becomes the HTTP-trigger event JSON and the handler's
``{"statusCode", "headers", "body"}`` becomes the response. ``--fc2``: the handler is called as
a WSGI app with ``environ["fc.context"]``, as FC 2.0 does.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from devstack.fc_context import FCContext, FunctionMeta
from devstack.loopback import JsonHandler, LoopbackServer
from devstack.worker import load_handler


def fc3_event(method: str, path: str, headers: Dict[str, str], body: bytes) -> bytes:
    """The FC 3.0 HTTP-trigger event; header names capitalised as FC delivers them."""
    return json.dumps({
        "version": "v1", "rawPath": path, "body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True,
        "headers": {"-".join(p.capitalize() for p in k.split("-")): v for k, v in headers.items()},
        "queryParameters": {},
        "requestContext": {"accountId": "1234567890", "domainName": "127.0.0.1", "requestId": str(uuid.uuid4()),
                           "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
                           "timeEpoch": str(int(time.time() * 1000)),
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent", "")}},
    }).encode("utf-8")


def wsgi_environ(method: str, path: str, headers: Dict[str, str], body: bytes, context: FCContext) -> Dict[str, Any]:
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "0", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "CONTENT_LENGTH": str(len(body)), "fc.context": context,
        "fc.request_uri": path,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    return environ


def call_fc3(handler: Callable, method: str, path: str, headers: Dict[str, str], body: bytes,
             context: FCContext) -> Tuple[int, bytes]:
    result = handler(fc3_event(method, path, headers, body), context)
    return int(result["statusCode"]), str(result.get("body", "")).encode("utf-8")


def call_fc2(handler: Callable, method: str, path: str, headers: Dict[str, str], body: bytes,
             context: FCContext) -> Tuple[int, bytes]:
    status: List[str] = []
    chunks = handler(wsgi_environ(method, path, headers, body, context), lambda s, h: status.append(s))
    return int(status[0].split()[0]), b"".join(chunks)


class FunctionHttpServer(LoopbackServer):
    def __init__(self, function_dir: Path, *, fc2: bool = False, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.handler = load_handler(function_dir)
        self.function_name = function_dir.name
        self.call = call_fc2 if fc2 else call_fc3


class _Handler(JsonHandler):
    server: FunctionHttpServer

    def _serve(self) -> None:
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        context = FCContext(FunctionMeta(self.server.function_name))
        try:
            status, payload = self.server.call(self.server.handler, self.command, self.path, headers, body, context)
        except Exception as exc:
            status, payload = 502, json.dumps({"error": f"function raised {type(exc).__name__}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = _serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("function_dir", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fc2", action="store_true", help="call the handler WSGI-style, as FC 2.0 does")
    args = parser.parse_args()
    sys.path.insert(0, str(args.function_dir.resolve()))
    FunctionHttpServer(args.function_dir.resolve(), fc2=args.fc2, port=args.port).serve_as_process()


if __name__ == "__main__":
    main()
