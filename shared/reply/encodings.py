"""Bytes from outside as text: a file in whatever encoding a Chinese team saved it in, a web page as a
browser would decode it.

A text file is UTF-16 when it starts with a byte-order mark, UTF-8 when it decodes as such, else
what ``charset_normalizer`` (requests' own detector, built into FC's python3.10) finds among the
encodings Chinese teams' files come in (UTF-16, GB18030, Big5, Shift-JIS), else GB18030.

A web page follows the WHATWG encoding sniffing algorithm (HTML Standard, "Determining the
character encoding"): a byte-order mark wins, then the ``charset`` of ``Content-Type``, then a
``<meta charset>`` or ``<meta http-equiv="Content-Type" content="…charset=…">`` in the first 1024
bytes, then the bytes themselves. Labels map as the Encoding Standard maps them: ``gb2312`` and
``gbk`` are decoded as GB18030 (its superset, which is what browsers do), ``iso-8859-1`` and
``ascii`` as windows-1252. The detector is imported only when the bytes have to decide.
"""

from __future__ import annotations

import codecs
import re
from typing import Optional

CANDIDATE_ENCODINGS = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "gb18030", "big5", "shift_jis")
PRESCAN_BYTES = 1024
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Encoding Standard labels whose decoder is another one than Python's codec of the same name.
LABELS = {
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "chinese", "csgb2312", "csiso58gb231280", "gb_2312",
                     "gb_2312-80", "iso-ir-58", "gb18030"), "gb18030"),
    **dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1", "l1", "ascii", "us-ascii", "cp1252", "windows-1252",
                     "ansi_x3.4-1968", "cp819", "ibm819", "iso-ir-100", "iso_8859-1", "x-cp1252"), "cp1252"),
    **dict.fromkeys(("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"), "big5hkscs"),
    **dict.fromkeys(("utf-16", "utf-16le", "utf-16be", "utf-32"), "utf-8"),  # a meta tag cannot name these
}
META = re.compile(rb"<meta\b[^>]*>", re.I)
META_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([^\s"'/>;]+)""", re.I)
HTTP_EQUIV = re.compile(rb"""http-equiv\s*=\s*["']?\s*content-type""", re.I)
HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^\s"';]+)""", re.I)


def encoding_of(label: str) -> Optional[str]:
    """The Python codec for an encoding label, or None for a label no browser knows."""
    label = label.strip().lower()
    name = LABELS.get(label, label)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:256 * 1024], cp_isolation=list(CANDIDATE_ENCODINGS)).best()
    encoding = best.encoding if best is not None else "gb18030"
    return data.decode(encoding, "replace")


def _meta_encoding(head: bytes) -> Optional[str]:
    """The encoding a ``<meta>`` tag among the first bytes declares (the first one that names a known one)."""
    for tag in META.finditer(head):
        text = tag.group(0)
        if b"charset" not in text.lower():
            continue
        if re.search(rb"\bcontent\s*=", text, re.I) and not HTTP_EQUIV.search(text):
            continue  # content="...charset=..." counts only on http-equiv="Content-Type"
        found = META_CHARSET.search(text)
        encoding = encoding_of(found.group(1).decode("ascii", "replace")) if found else None
        if encoding:
            return encoding
    return None


def html_encoding(data: bytes, content_type: str = "") -> Optional[str]:
    """The encoding a browser would use for this page, or None when only the bytes can tell."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return encoding
    declared = HEADER_CHARSET.search(content_type or "")
    encoding = encoding_of(declared.group(1)) if declared else None
    return encoding or _meta_encoding(data[:PRESCAN_BYTES])


def decode_html(data: bytes, content_type: str = "") -> str:
    encoding = html_encoding(data, content_type)
    if encoding is None:
        return decode_text(data)
    bom = next((b for b, name in BOMS if name == encoding and data.startswith(b)), b"")
    return data[len(bom):].decode(encoding, "replace")
