"""A small threaded HTTP server on 127.0.0.1 with JSON helpers, the base of every fake."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit


class PortInUse(RuntimeError):
    """Raised with a message that says which port and how to pick another."""


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes headers and body separately; with Nagle on, a keep-alive client waits for
    # the delayed ACK (about 40 ms) before seeing the body. Real HTTP servers do not stall like that.
    disable_nagle_algorithm = True
    server: "LoopbackServer"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the stack prints what matters itself."""

    def parse_request(self) -> bool:
        """As the standard handler, then the server's ``latency``: the round trip and the service's own time,
        spent before the request is handled (what it records is stamped when it is handled)."""
        parsed = super().parse_request()
        if parsed and self.server.latency:
            time.sleep(self.server.latency)
        return parsed

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def query(self) -> Dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def send_json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Seconds each request waits before it is handled: the benchmarks' latency model (bench/latency.py).
    latency = 0.0
    # The listen backlog: the default of 5 resets connections when many clients arrive at once.
    request_queue_size = 256

    def __init__(self, handler: type, port: int = 0, host: str = "127.0.0.1") -> None:
        try:
            super().__init__((host, port), handler)
        except OSError as exc:
            raise PortInUse(_port_message(port, host, exc)) from None
        self._thread: Optional[threading.Thread] = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer (a stopped stream, a cut connection) is no error of the server's: a
        real service carries on quietly; anything else is printed as the standard server does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @staticmethod
    def ensure_free(port: int, option: str, host: str = "127.0.0.1") -> None:
        """Fail with a clear message before a server or a child process finds the port taken.

        ``SO_REUSEADDR``, as every server here sets it: connections a previous run left in TIME_WAIT
        do not block the port, so only a live listener makes it "in use"."""
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise PortInUse(_port_message(port, host, exc, option)) from None

    @property
    def address(self) -> Tuple[str, int]:
        return self.server_address[0], self.server_address[1]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def serve_as_process(self) -> None:
        """In a child process: announce the URL as one JSON line on stdout, serve until interrupted."""
        print(json.dumps({"ready": True, "url": self.url}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            self.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _port_message(port: int, host: str, exc: OSError, option: str = "对应的 --...-port 选项") -> str:
    """One sentence for the person at the terminal (Chinese, as ``make run`` speaks)."""
    if exc.errno == errno.EADDRINUSE:
        what = f"端口 {port}（{host}）已被正在运行的程序占用（另一个 make run？）：停掉它，或"
    else:
        what = f"端口 {port}（{host}）不能使用（{exc.strerror}）："
    return f"{what}用 {option} 换一个端口，例如 make run ARGS=\"{option} {port + 1 if port < 65535 else 8001}\""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
