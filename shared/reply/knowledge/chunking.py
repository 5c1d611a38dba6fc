"""Documents cut into chunks a model can use as sources: along headings and paragraphs, with where each came from.

Markdown and text are cut at headings first (a chunk never spans two sections, and it carries its
heading), then at blank lines; PDF pages are kept apart so a source can say which page; a CSV keeps
its header with every group of rows. Chunks aim at ``TARGET_CHARS`` and never pass ``MAX_CHARS``.
Reading goes through ``documents.py``, with its budgets, so a hostile or oversized file is bounded
here as in a chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterator, List, Optional, Tuple

from shared.reply.documents import pdf_pages, read_document

SUFFIXES = (".md", ".markdown", ".txt", ".pdf", ".docx", ".csv")
TARGET_CHARS = 600
MAX_CHARS = 1200
CSV_ROWS = 20
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")


@dataclass(frozen=True)
class Chunk:
    """A piece of one document, small enough to embed, with where it came from."""

    source: str  # the path under the knowledge folder
    page: Optional[int]  # PDF page, from 1
    heading: str
    text: str

    @property
    def label(self) -> str:
        """How the answer names it: ``handbook.pdf 第 3 页``, ``guide.md「安装」``."""
        if self.page:
            return f"{self.source} 第 {self.page} 页"
        return f"{self.source}「{self.heading}」" if self.heading else self.source


def _sections(text: str) -> Iterator[Tuple[str, str]]:
    """(heading, body) pairs of a markdown or plain text."""
    heading, lines = "", []
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            if any(kept.strip() for kept in lines):
                yield heading, "\n".join(lines)
            heading, lines = match.group(2), []
        else:
            lines.append(line)
    if any(kept.strip() for kept in lines):
        yield heading, "\n".join(lines)


def _pieces(body: str) -> Iterator[str]:
    """Paragraph groups of about ``TARGET_CHARS``; a paragraph longer than ``MAX_CHARS`` is cut."""
    buffer = ""
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", body)):
        while len(paragraph) > MAX_CHARS:
            if buffer:
                yield buffer
                buffer = ""
            yield paragraph[:MAX_CHARS]
            paragraph = paragraph[MAX_CHARS:]
        if not paragraph:
            continue
        if buffer and len(buffer) + len(paragraph) > TARGET_CHARS:
            yield buffer
            buffer = ""
        buffer = f"{buffer}\n\n{paragraph}" if buffer else paragraph
    if buffer:
        yield buffer


def _csv_chunks(source: str, text: str) -> List[Chunk]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header, rows = lines[0], lines[1:]
    return [Chunk(source, None, "", "\n".join([header, *rows[i:i + CSV_ROWS]])[:MAX_CHARS])
            for i in range(0, max(len(rows), 1), CSV_ROWS)]


def chunk_document(source: str, data: bytes, max_chars: int) -> List[Chunk]:
    """The chunks of one file; raises ``documents.Unreadable`` for what cannot be read."""
    suffix = PurePosixPath(source.lower()).suffix
    name = PurePosixPath(source).name
    if suffix == ".pdf":
        return [Chunk(source, number, "", piece) for number, text in pdf_pages(name, data, max_chars)
                for piece in _pieces(text)]
    text = read_document(name, data, max_chars).text
    if suffix == ".csv":
        return _csv_chunks(source, text)
    return [Chunk(source, None, heading, piece) for heading, body in _sections(text) for piece in _pieces(body)]
