"""What the bot has read while answering, and who could have written it: the guard against a model that
follows instructions it found in a web page, a search result, a tool's output or a document.

Such an instruction cannot make the bot do anything but answer, so what it can do is make the answer
(or a tool call) carry the conversation to a host of the attacker's: a picture whose URL holds the
chat, which DingTalk's client fetches by itself, a link to click, a page to "read". Two questions
decide whether a URL may leave:

- ``known_url``: does it come from what the bot read, the question, the conversation, a tool's result
  or a search (the URL, or a shorter prefix of it, appears there)? Such a URL holds nothing its author
  did not already know, so a page can only point the bot back at addresses it could write itself.
- ``carries_secret``: does it hold text of the conversation? The conversation (question, turns,
  persona, the team's documents, files, the output of the operator's own tools) is matched against
  the URL's path, query, fragment and sub-domain labels, percent-decoded, and base64 or hex decoded
  where a part looks like it: any four characters of Chinese text, or ten letters or digits in a row.
  A model that only writes an address it knows (a documentation page) matches nothing.

Web pages and search results are public (their text is not a secret); everything else the bot reads is.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from typing import Iterable, List, Set
from urllib.parse import unquote, unquote_plus, urlsplit

URL_IN_TEXT = re.compile(r"(?:https?://|\b(?:[a-z0-9-]+\.)+[a-z]{2,}/)[^\s<>\"'`）)\]}，。、；！？]*", re.I)
TRAILING = ".,;:!?'\"*_~"
CJK_WINDOW, ASCII_WINDOW = 4, 10
# Runs that may be base64 (standard or URL-safe, padded or not) or hex; a "/" may belong to base64 or split a path.
ENCODED_TOKENS = (re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}"), re.compile(r"[A-Za-z0-9+_-]{12,}={0,2}"))


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F


def _folded(text: str) -> str:
    """Letters, digits and CJK only, lower-cased: what survives any spelling of the same words in a URL."""
    return "".join(char for char in text.lower() if char.isalnum())


def url_key(url: str) -> str:
    """A URL as compared here: no scheme, the host lower-cased, no fragment, no trailing slash."""
    url = url.strip().rstrip(TRAILING)
    if "://" not in url[:12]:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.lower()
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{port}{parts.path}{query}".rstrip("/")


def _decodings(part: str) -> List[str]:
    """``part`` as it is, percent-decoded (twice, for a doubly encoded one) and, where a token looks like it,
    base64- or hex-decoded."""
    once = unquote_plus(part)
    found = [part, once, unquote(once)]
    tokens = {token for pattern in ENCODED_TOKENS for text in (part, unquote(part)) for token in pattern.findall(text)}
    for token in tokens:
        for text in (_base64_text(token), _hex_text(token)):
            if text:
                found.append(text)
    return found


def _base64_text(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(padded).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return ""


def _hex_text(token: str) -> str:
    if len(token) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", token):
        return ""
    try:
        return bytes.fromhex(token).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""


def _revealing_parts(url: str) -> List[str]:
    """Where a URL can carry data to its host: path, query, fragment, user info and sub-domain labels."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return [url]
    labels = (parts.hostname or "").split(".")[:-2]
    return [parts.path, parts.query, parts.fragment, parts.username or "", *labels]


class Provenance:
    """The texts of one answer's conversation (secret) and what its URLs may come from (sources)."""

    def __init__(self) -> None:
        self._sources: Set[str] = set()
        self._windows: Set[str] = set()
        self._lock = threading.Lock()  # the tool loop runs a round's calls at once

    def add_source(self, text: str) -> None:
        """Text whose URLs the bot may open or link: the question, the conversation, tool results."""
        keys = {url_key(url) for url in URL_IN_TEXT.findall(text or "")}
        with self._lock:
            self._sources |= keys

    def add_secret(self, text: str) -> None:
        """Text that must not leave through a URL."""
        folded = _folded(text or "")
        # How many CJK characters come before each position: a window's count is one subtraction, not a rescan
        # of its characters (every message's prompt passes through here).
        before = [0]
        for char in folded:
            before.append(before[-1] + _is_cjk(char))
        windows = set()
        for start in range(len(folded)):
            end = start + CJK_WINDOW
            if end <= len(folded) and before[end] - before[start] >= 2:
                windows.add(folded[start:end])
            end = start + ASCII_WINDOW
            if end <= len(folded) and before[end] == before[start]:
                windows.add(folded[start:end])
        with self._lock:
            self._windows |= windows

    def add(self, text: str, *, secret: bool = True) -> None:
        self.add_source(text)
        if secret:
            self.add_secret(text)

    def known_url(self, url: str) -> bool:
        key = url_key(url)
        with self._lock:
            sources = tuple(self._sources)
        return bool(key) and any(source.startswith(key) for source in sources)

    def carries_secret(self, url: str) -> bool:
        for part in _revealing_parts(url):
            for text in _decodings(part):
                folded = _folded(text)
                for size in (CJK_WINDOW, ASCII_WINDOW):
                    if any(folded[i:i + size] in self._windows for i in range(len(folded) - size + 1)):
                        return True
        return False

    def may_leave(self, url: str) -> bool:
        """Whether a link to ``url`` (or a request to it) gives away nothing of the conversation."""
        return self.known_url(url) or not self.carries_secret(url)


def of_texts(secrets: Iterable[str]) -> Provenance:
    """What the bot read before any tool ran: the prompt's texts (persona, documents, turns, the question
    with its files), every one a secret and a source."""
    provenance = Provenance()
    for text in secrets:
        provenance.add(text)
    return provenance
