"""Files people send, read into text the model can use: plain text and code, PDF, DOCX.

A file is untrusted input from anyone in the chat, and the reply function has 512 MB and a
few minutes, so every reader works within a budget and stops as soon as the text budget is
full: a PDF is read page by page, at most ``MAX_PDF_PAGES`` pages and ``PDF_SECONDS`` of
extraction, and a content stream that several pages share is read once (a 4 KB PDF can point
60 pages at one 1 MB stream); a DOCX's XML is streamed through an event parser that keeps no
tree, counts its nodes and stops at ``MAX_XML_NODES`` or ``DOCX_XML_LIMIT`` decompressed
bytes (20 KB of zip can hold 20 MB of empty elements). Whatever a library raises on a broken
or hostile file (recursion, its own limits, corrupt deflate data, encrypted or unknown zip
entries) ends in one sentence for the chat.

Text files are decoded as ``encodings.py`` says. ``pypdf``, ``defusedxml`` and the encoding
detector are imported only when such a file arrives. Anything else (images sent as files,
archives, audio, video, old binary ``.doc``) gets a sentence naming what can be read.
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable, List, Optional, Tuple

from shared.common import log
from shared.common.errors import DingbotError
from shared.reply import texts
from shared.reply.encodings import decode_text

TEXT_SUFFIXES = {
    ".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg",
    ".conf", ".log", ".xml", ".html", ".htm", ".css", ".sql", ".py", ".js", ".mjs", ".ts", ".tsx", ".jsx",
    ".java", ".kt", ".go", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".sh",
    ".bash", ".ps1", ".bat", ".r", ".lua", ".dart", ".scala", ".vue", ".properties", ".env", ".srt",
}
MAX_PDF_PAGES = 300
PDF_SECONDS = 8.0
# Decoded content of one page; a text page is a few KB, a busy vector drawing a few hundred.
MAX_PAGE_CONTENT_BYTES = 4 * 1024 * 1024
DOCX_XML_LIMIT = 20 * 1024 * 1024
MAX_XML_NODES = 1_000_000
XML_CHUNK = 64 * 1024
# What a Chinese team's text files are in when they are not UTF-8 (Windows Notepad's "Unicode" is UTF-16).
WORD = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
BREAKS = {"br": "\n", "cr": "\n", "tab": "\t"}

logger = log.get("documents")


class Unreadable(DingbotError):
    """The file cannot be read into text; ``user_message`` says so in the chat."""

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message


@dataclass(frozen=True)
class Document:
    """A file's text for the prompt; ``cut`` when it was longer than the budget."""

    name: str
    text: str
    cut: bool


class _Collected:
    """Text gathered up to a budget: ``full`` once more than ``max_chars`` arrived."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.pieces: List[str] = []
        self.size = 0
        self.stopped_early = False

    def add(self, text: str) -> None:
        self.pieces.append(text)
        self.size += len(text)

    @property
    def full(self) -> bool:
        return self.size > self.max_chars


def _contents_key(page: Any) -> Optional[tuple]:
    """The indirect references of a page's content streams, so a stream shared by pages is read once."""
    contents = page.get("/Contents")
    refs = contents if isinstance(contents, list) else [contents]
    key = tuple((getattr(ref, "idnum", None), getattr(ref, "generation", None)) for ref in refs)
    return key if key and all(idnum is not None for idnum, _ in key) else None


def _pdf_text(name: str, data: bytes, collected: _Collected, clock: Callable[[], float],
              pages_read: Optional[List[Tuple[int, str]]] = None) -> None:
    """Page by page into ``collected``; ``pages_read`` also gets (page number, text) of each page read."""
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise Unreadable(texts.FILE_ENCRYPTED.format(name=name))
    pages = reader.pages
    deadline = clock() + PDF_SECONDS
    seen = set()
    for index in range(min(len(pages), MAX_PDF_PAGES)):
        page = pages[index]
        key = _contents_key(page)
        if key is not None and key in seen:
            continue
        seen.add(key)
        contents = page.get_contents()
        if contents is not None and len(contents.get_data()) > MAX_PAGE_CONTENT_BYTES:
            logger.warning("%s: page %d has more than %d bytes of content, skipped", name, index + 1,
                           MAX_PAGE_CONTENT_BYTES)
            continue
        text = page.extract_text() or ""
        collected.add(text + "\n\n")
        if pages_read is not None and text.strip():
            pages_read.append((index + 1, text))
        if collected.full or clock() > deadline:
            collected.stopped_early = index + 1 < len(pages)
            return
    collected.stopped_early = len(pages) > MAX_PDF_PAGES


class _Enough(Exception):
    """Raised from inside the XML parser once the budget is spent."""


def _docx_handler(collected: _Collected) -> Any:
    from xml.sax.handler import ContentHandler

    class DocxText(ContentHandler):
        """Paragraphs of ``w:t`` text with tabs and breaks; no tree is kept, nodes are counted."""

        def __init__(self) -> None:
            super().__init__()
            self.nodes = 0
            self.in_text = False
            self.paragraph: List[str] = []

        def startElementNS(self, name: Any, qname: Any, attrs: Any) -> None:
            self.nodes += 1
            if self.nodes > MAX_XML_NODES:
                raise _Enough(f"more than {MAX_XML_NODES} XML nodes")
            uri, local = name
            if uri == WORD:
                self.in_text = local == "t"
                if local in BREAKS:
                    self.paragraph.append(BREAKS[local])

        def endElementNS(self, name: Any, qname: Any) -> None:
            uri, local = name
            if uri != WORD:
                return
            self.in_text = False
            if local == "p":
                collected.add("".join(self.paragraph) + "\n")
                self.paragraph = []
                if collected.full:
                    raise _Enough("text budget full")

        def characters(self, content: str) -> None:
            if self.in_text:
                self.paragraph.append(content)

    return DocxText()


def _docx_text(data: bytes, collected: _Collected) -> None:
    from xml.sax.handler import feature_namespaces

    from defusedxml.sax import make_parser

    parser = make_parser()
    parser.setFeature(feature_namespaces, True)
    parser.setContentHandler(_docx_handler(collected))
    read = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("word/document.xml") as xml:
            while True:
                chunk = xml.read(XML_CHUNK)
                if not chunk:
                    break
                read += len(chunk)
                if read > DOCX_XML_LIMIT:
                    raise _Enough(f"more than {DOCX_XML_LIMIT} bytes of XML")
                parser.feed(chunk)
        parser.close()
    except _Enough as enough:
        logger.info("docx reading stopped: %s", enough)
        collected.stopped_early = True


def pdf_pages(name: str, data: bytes, max_chars: int) -> List[Tuple[int, str]]:
    """A PDF's text page by page (page numbers from 1), within the same budgets as a PDF sent in a chat;
    raises ``Unreadable``."""
    pages: List[Tuple[int, str]] = []
    try:
        _pdf_text(name, data, _Collected(max_chars), time.monotonic, pages)
    except Unreadable:
        raise
    except Exception as exc:
        raise Unreadable(texts.FILE_UNREADABLE.format(name=name), f"{type(exc).__name__}: {exc}") from None
    return pages


def read_document(name: str, data: bytes, max_chars: int, *, clock: Callable[[], float] = time.monotonic) -> Document:
    """The file's text, cut to ``max_chars``; raises ``Unreadable`` with a sentence for the chat."""
    suffix = PurePosixPath(name.lower()).suffix
    collected = _Collected(max_chars)
    try:
        if suffix == ".pdf" or data[:5] == b"%PDF-":
            _pdf_text(name, data, collected, clock)
        elif suffix == ".docx":
            _docx_text(data, collected)
        elif suffix in TEXT_SUFFIXES or (not suffix and b"\x00" not in data[:4096]):
            collected.add(decode_text(data))
        else:
            raise Unreadable(texts.FILE_TYPE.format(name=name))
    except Unreadable:
        raise
    except Exception as exc:
        # Whatever a reader raises on a broken or hostile file: pypdf's own errors and limits, RecursionError,
        # zlib.error from corrupt deflate data, encrypted or unknown zip entries, XML errors.
        logger.warning("%s could not be read: %s: %s", name, type(exc).__name__, str(exc)[:200])
        raise Unreadable(texts.FILE_UNREADABLE.format(name=name), f"{type(exc).__name__}: {exc}") from None
    text = "".join(collected.pieces).strip()
    if not text:
        raise Unreadable(texts.FILE_EMPTY.format(name=name))
    return Document(name, text[:max_chars], len(text) > max_chars or collected.stopped_early)
