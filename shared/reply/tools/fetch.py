"""GET a URL that came from a chat message or a web page, without letting it into the function's network.

The host is resolved once (``netguard.check_url``: every address public, no user info, http(s)
only) and the connection goes to those very addresses, one after the other until one answers,
with the host name kept for TLS and the Host header, so a second lookup cannot point somewhere
else. A redirect is followed only after its target passes the same check, at most
``MAX_REDIRECTS`` times. The body is bounded in size and the whole exchange in wall-clock time
(``watchdog.py``).
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from typing import Callable, Optional, Sequence
from urllib.parse import urljoin, urlsplit

from shared.reply.bounded import CHUNK, read_bounded
from shared.reply.netguard import Refused, Target, check_url, connect_any, resolve
from shared.reply.tools.base import ToolError
from shared.reply.watchdog import Watchdog

MAX_REDIRECTS = 3
USER_AGENT = "Mozilla/5.0 (compatible; dingbot-fc link reader)"


@dataclass(frozen=True)
class Fetched:
    """A downloaded body, with the URL it finally came from (after redirects)."""

    url: str
    content_type: str
    body: bytes


class _Pinned(http.client.HTTPSConnection):
    """An HTTP(S) connection to one already-checked address, speaking to ``host`` by name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.target = target

    def connect(self) -> None:
        sock = connect_any(self.target, self.timeout)
        if self.target.scheme == "https":
            sock = self._context.wrap_socket(sock, server_hostname=self.target.host)
        self.sock = sock


def fetch(url: str, *, max_bytes: int, seconds: float, allow: Sequence[str] = (),
          resolver: Callable[[str, int], list] = resolve) -> Fetched:
    """The body of ``url`` (after at most ``MAX_REDIRECTS`` checked redirects); raises ``ToolError``."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            target = check_url(url, allow=allow, resolver=resolver)
        except Refused as exc:
            raise ToolError(f"refused to open {url}: {exc}") from None
        status, location, content_type, body = _get(target, max_bytes, seconds)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(target.url, location)
            continue
        if status != 200:
            raise ToolError(f"{urlsplit(target.url).hostname} answered HTTP {status}")
        return Fetched(target.url, content_type, body)
    raise ToolError(f"more than {MAX_REDIRECTS} redirects")


def _get(target: Target, max_bytes: int, seconds: float) -> tuple:
    connection = _Pinned(target, timeout=min(seconds, 10.0))
    parts = urlsplit(target.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    dog: Optional[Watchdog] = None
    try:
        with Watchdog(seconds, connection.close) as dog:
            connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            response = connection.getresponse()
            body = read_bounded(iter(lambda: response.read1(CHUNK), b""), response.getheader("Content-Length"),
                                max_bytes, lambda _: ToolError(f"the page is larger than {max_bytes >> 20} MB"))
            return response.status, response.getheader("Location"), response.getheader("Content-Type") or "", body
    except ToolError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if dog is not None and dog.fired:
            raise ToolError(f"{target.host} took longer than {seconds:.0f} s") from None
        raise ToolError(f"{target.host} could not be read ({type(exc).__name__})") from None
    finally:
        connection.close()

