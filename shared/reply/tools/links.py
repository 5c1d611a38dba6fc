"""Tool: read a link the user gave, as text (``read_url``).

HTML goes through ``reader.py`` (the Readability algorithm of Firefox's reader view, on the standard
library's parser), which keeps an article's main text and drops menus, footers and hidden elements;
PDF, DOCX and text go through the file readers the chat uses (``documents.py``). Everything within
``MAX_FILE_MB``, ``FILE_TEXT_CHARS`` and a time budget, through ``fetch.py``, so a link can never reach
into the function's network.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence
from urllib.parse import urlsplit

from shared.reply.documents import Unreadable, read_document
from shared.reply.encodings import decode_html
from shared.reply.tools.base import ToolError, ToolResult, one_string
from shared.reply.tools.fetch import fetch
from shared.reply.tools.reader import main_text


class ReadLink:
    name = "read_url"
    description = ("Open an http(s) link the user gave and read its text (web page, PDF, Word or text file). "
                   "Use it when the user asks about the content of a link.")
    parameters: Dict[str, Any] = one_string("url", "the full http(s) URL")
    url_argument = "url"  # the model may open only addresses it read (llm/loop.py, provenance.py)
    public_results = True  # a web page is no secret of the conversation

    def __init__(self, max_bytes: int, max_chars: int, allow: Sequence[str] = ()) -> None:
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.allow = tuple(allow)

    def status(self, arguments: Dict[str, Any]) -> str:
        try:
            host = urlsplit(str(arguments.get("url", ""))).hostname
        except ValueError:
            host = None
        return f"📄 正在读取：{host or '链接'}"

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        url = str(arguments.get("url") or "")
        page = fetch(url, max_bytes=self.max_bytes, seconds=seconds, allow=self.allow)
        kind = page.content_type.split(";")[0].strip().lower()
        name = urlsplit(page.url).path.rsplit("/", 1)[-1] or "page"
        try:
            if kind in ("text/html", "application/xhtml+xml") or (not kind and page.body.lstrip()[:1] == b"<"):
                text = main_text(decode_html(page.body, page.content_type))
            else:
                if kind == "application/pdf" and not name.lower().endswith(".pdf"):
                    name += ".pdf"
                text = read_document(name if "." in name else name + ".txt", page.body, self.max_chars).text
        except Unreadable as exc:
            raise ToolError(f"{page.url} could not be read: {exc}") from None
        except Exception as exc:  # the HTML parser on a hostile page
            raise ToolError(f"{page.url} could not be read ({type(exc).__name__})") from None
        cut = len(text) > self.max_chars
        return ToolResult(f"URL: {page.url}\n\n{text[:self.max_chars]}" + ("\n\n（后文已截断）" if cut else ""),
                          (page.url,))
