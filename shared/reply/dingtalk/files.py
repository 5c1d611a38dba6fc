"""Pictures and files from a message, fetched with the app's credentials.

DingTalk gives the robot a ``downloadCode`` per picture or file; ``POST /v1.0/robot/messageFiles/download
{downloadCode, robotCode}`` turns it into a temporary ``downloadUrl``. Each download is bounded in
size (``MAX_FILE_MB``, checked against ``Content-Length`` and again while reading) and in
wall-clock time, its URL checked once (``netguard.py``: https, no user info, public addresses),
and all the pictures and files of one message together by ``MAX_MESSAGE_MEDIA_MB`` (twenty 10 MB
pictures would take a 512 MB function past its memory once encoded for the model), so too much
gets a polite refusal, never half a prompt.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Optional, Tuple
from urllib.parse import urlsplit

import requests

from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.bounded import CHUNK, read_bounded
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError
from shared.reply.netguard import Refused, check_url
from shared.reply.question import DownloadError
from shared.reply.watchdog import Watchdog

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DOWNLOAD_SECONDS = 20.0


def abort(response: requests.Response) -> None:
    """Wake a read blocked on ``response`` from another thread: closing the socket would leave it blocked
    (Linux does not interrupt a pending recv on close), shutting it down ends the read at once."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


class Downloader:
    """Fetches the media of one message; ``max_total_bytes`` bounds them all together."""

    def __init__(self, api: OpenApi, message: IncomingMessage, max_bytes: int, max_total_bytes: int) -> None:
        self.api = api
        self.message = message
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.total = 0

    def _url(self, code: str) -> str:
        body = {"downloadCode": code, "robotCode": self.message.robotCode or self.api.app.robot_code}
        try:
            answer = self.api.call("message file download", "POST", "/v1.0/robot/messageFiles/download", body)
        except OpenApiError as exc:
            raise DownloadError(texts.DOWNLOAD_FAILED, str(exc), quota_spent=exc.quota_spent, code=exc.code) from None
        url = answer.get("downloadUrl")
        if not isinstance(url, str):
            raise DownloadError(texts.DOWNLOAD_FAILED, "the download answer had no downloadUrl")
        try:
            target = check_url(url, allow=self._loopback_api())
        except Refused as exc:
            raise DownloadError(texts.DOWNLOAD_FAILED, f"downloadUrl refused: {exc}") from None
        if target.scheme != "https" and target.host not in self._loopback_api():
            raise DownloadError(texts.DOWNLOAD_FAILED, "downloadUrl refused: not https")
        return target.url

    def _loopback_api(self) -> Tuple[str, ...]:
        """The local stack's and the tests' DingTalk serves its files over plain HTTP on loopback; only
        that host is exempt, and only when ``DINGTALK_API_ENDPOINT`` is itself on loopback."""
        host = (urlsplit(self.api.app.api_endpoint).hostname or "").lower()
        return (host,) if host in LOOPBACK_HOSTS else ()

    def fetch(self, code: str, what: str) -> bytes:
        """The bytes behind ``code``; raises ``DownloadError`` (too large, failed, too slow)."""
        left = self.max_total_bytes - self.total
        if self.max_bytes <= left:
            limit, too_large = self.max_bytes, texts.FILE_TOO_LARGE.format(what=what, limit=self.max_bytes >> 20)
        else:
            limit, too_large = left, texts.MEDIA_TOO_MUCH.format(limit=self.max_total_bytes >> 20)
        if limit <= 0:
            raise DownloadError(too_large, "the message's media budget is spent")
        data = self._download(self._url(code), limit, too_large)
        self.total += len(data)
        return data

    def _download(self, url: str, limit: int, too_large: str) -> bytes:
        """``DOWNLOAD_SECONDS`` of wall-clock time in all: a watchdog closes a response that drips."""
        slow = DownloadError(texts.DOWNLOAD_FAILED, f"download took over {DOWNLOAD_SECONDS:.0f} s")
        dog: Optional[Watchdog] = None
        try:
            with self.api.session.get(url, stream=True, timeout=(5, 10), allow_redirects=False) as response, \
                    Watchdog(DOWNLOAD_SECONDS, lambda: abort(response)) as dog:
                if response.status_code != 200:
                    raise DownloadError(texts.DOWNLOAD_FAILED, f"download answered HTTP {response.status_code}")
                data = read_bounded(response.iter_content(CHUNK), response.headers.get("Content-Length"), limit,
                                    lambda detail: DownloadError(too_large, detail))
                if dog.fired:
                    raise slow
        except DownloadError:
            raise
        except Exception as exc:  # requests' errors, or whatever reading a response closed under it raises
            if dog is not None and dog.fired:
                raise slow from None
            raise DownloadError(texts.DOWNLOAD_FAILED, f"download failed: {type(exc).__name__}") from None
        return data
