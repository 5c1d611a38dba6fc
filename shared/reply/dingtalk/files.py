"""Pictures and files from a message, fetched with the app's credentials.

DingTalk gives the robot a ``downloadCode`` per picture or file; ``POST /v1.0/robot/messageFiles/download
{downloadCode, robotCode}`` turns it into a temporary ``downloadUrl``. The download is bounded in
size (``MAX_FILE_MB``, checked against ``Content-Length`` and again while reading) and in time, so
a large file gets a polite refusal, never half a prompt.
"""

from __future__ import annotations

import time
from typing import Callable

import requests

from shared.common.errors import DingbotError
from shared.common.message import IncomingMessage
from shared.reply import texts
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError

CHUNK = 64 * 1024
DOWNLOAD_SECONDS = 20.0


class DownloadError(DingbotError):
    """The medium could not be fetched; ``user_message`` is the chat's sentence."""

    def __init__(self, user_message: str, detail: str = "", *, quota_spent: bool = False, code: str = "") -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message
        self.quota_spent = quota_spent
        self.code = code


class Downloader:
    def __init__(self, api: OpenApi, message: IncomingMessage, max_bytes: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.message = message
        self.max_bytes = max_bytes
        self.clock = clock

    def _url(self, code: str) -> str:
        body = {"downloadCode": code, "robotCode": self.message.robotCode or self.api.app.robot_code}
        try:
            answer = self.api.call("message file download", "POST", "/v1.0/robot/messageFiles/download", body)
        except OpenApiError as exc:
            raise DownloadError(texts.DOWNLOAD_FAILED, str(exc), quota_spent=exc.quota_spent, code=exc.code) from None
        url = answer.get("downloadUrl")
        if not isinstance(url, str) or not url.startswith(("https://", "http://127.0.0.1")):
            raise DownloadError(texts.DOWNLOAD_FAILED, "the download answer had no https downloadUrl")
        return url

    def fetch(self, code: str, what: str) -> bytes:
        """The bytes behind ``code``; raises ``DownloadError`` (too large, failed, too slow)."""
        too_large = texts.FILE_TOO_LARGE.format(what=what, limit=self.max_bytes // (1024 * 1024))
        url = self._url(code)
        deadline = self.clock() + DOWNLOAD_SECONDS
        try:
            with self.api.session.get(url, stream=True, timeout=(5, 10), allow_redirects=False) as response:
                if response.status_code != 200:
                    raise DownloadError(texts.DOWNLOAD_FAILED, f"download answered HTTP {response.status_code}")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise DownloadError(too_large, f"{declared} bytes declared")
                data = bytearray()
                for chunk in response.iter_content(CHUNK):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise DownloadError(too_large, "more than the limit arrived")
                    if self.clock() > deadline:
                        raise DownloadError(texts.DOWNLOAD_FAILED, f"download took over {DOWNLOAD_SECONDS:.0f} s")
        except requests.RequestException as exc:
            raise DownloadError(texts.DOWNLOAD_FAILED, f"download failed: {type(exc).__name__}") from None
        return bytes(data)
