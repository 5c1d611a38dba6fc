"""Files people send, read into text the model can use: plain text and code, PDF, DOCX.

Text-like files are decoded (UTF-8, else GB18030, which Chinese Windows tools still write). PDF
text comes from ``pypdf``; a DOCX is a zip of XML, read with the standard library and parsed with
``defusedxml`` (a document is untrusted input: no entity expansion, and the XML is read only up
to a size). Both libraries are pure Python and imported only when such a file arrives. Anything
else (images sent as files, archives, audio, video, old binary ``.doc``) gets a sentence naming
what can be read. Long text is cut to a budget and the caller tells the user.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from shared.common.errors import DingbotError
from shared.reply import texts

TEXT_SUFFIXES = {
    ".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg",
    ".conf", ".log", ".xml", ".html", ".htm", ".css", ".sql", ".py", ".js", ".mjs", ".ts", ".tsx", ".jsx",
    ".java", ".kt", ".go", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".sh",
    ".bash", ".ps1", ".bat", ".r", ".lua", ".dart", ".scala", ".vue", ".properties", ".env", ".srt",
}
DOCX_XML_LIMIT = 20 * 1024 * 1024
WORD = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class Unreadable(DingbotError):
    """The file cannot be read into text; ``user_message`` says so in the chat."""

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    cut: bool


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")


def _pdf_text(name: str, data: bytes) -> str:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Unreadable(texts.FILE_ENCRYPTED.format(name=name))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise Unreadable(texts.FILE_UNREADABLE.format(name=name), f"pdf: {type(exc).__name__}: {exc}") from None


def _docx_text(name: str, data: bytes) -> str:
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > DOCX_XML_LIMIT:
                raise Unreadable(texts.FILE_UNREADABLE.format(name=name), "document.xml is too large")
            with archive.open(info) as xml:
                root = ElementTree.fromstring(xml.read(DOCX_XML_LIMIT + 1))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, DefusedXmlException) as exc:
        raise Unreadable(texts.FILE_UNREADABLE.format(name=name), f"docx: {type(exc).__name__}: {exc}") from None
    paragraphs = []
    for paragraph in root.iter(f"{WORD}p"):
        pieces = []
        for node in paragraph.iter():
            if node.tag == f"{WORD}t" and node.text:
                pieces.append(node.text)
            elif node.tag == f"{WORD}tab":
                pieces.append("\t")
            elif node.tag in (f"{WORD}br", f"{WORD}cr"):
                pieces.append("\n")
        paragraphs.append("".join(pieces))
    return "\n".join(paragraphs)


def read_document(name: str, data: bytes, max_chars: int) -> Document:
    """The file's text, cut to ``max_chars``; raises ``Unreadable`` with a sentence for the chat."""
    suffix = PurePosixPath(name.lower()).suffix
    if suffix == ".pdf" or data[:5] == b"%PDF-":
        text = _pdf_text(name, data)
    elif suffix == ".docx":
        text = _docx_text(name, data)
    elif suffix in TEXT_SUFFIXES or (not suffix and b"\x00" not in data[:4096]):
        text = _decode(data)
    else:
        raise Unreadable(texts.FILE_TYPE.format(name=name))
    text = text.strip()
    if not text:
        raise Unreadable(texts.FILE_EMPTY.format(name=name))
    return Document(name, text[:max_chars], len(text) > max_chars)
