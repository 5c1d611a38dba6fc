"""Small real files made on the spot: a PNG, a PDF with a line of text, a DOCX, and hostile variants."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import List
from xml.sax.saxutils import escape

WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def png(width: int = 2, height: int = 2, rgb: tuple = (255, 0, 0)) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def pdf(text: str) -> bytes:
    """A one-page PDF whose page shows ``text`` (ASCII) in Helvetica."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf_document(objects)


def encrypted_pdf() -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _docx(document_xml: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
            'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main'
            '+xml"/></Types>'))
        archive.writestr("word/document.xml", document_xml)
    return buffer.getvalue()


def docx(paragraphs: List[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    return _docx(f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{WORD_NS}"><w:body>{body}'
                 f"</w:body></w:document>")


def docx_with_entity_bomb() -> bytes:
    """The "billion laughs": nested entities that expand to gigabytes if a parser lets them."""
    entities = '<!ENTITY a "ha">' + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                                             for i in range(8))
    return _docx(f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]><w:document xmlns:w="{WORD_NS}">'
                 f"<w:body><w:p><w:r><w:t>&i;</w:t></w:r></w:p></w:body></w:document>")


# --- hostile files ---------------------------------------------------------------------------------

def _pdf_document(objects: List[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1; the first is the catalog), with a valid cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _flate_stream(content: bytes) -> bytes:
    packed = zlib.compress(content, 9)
    return b"<< /Length " + str(len(packed)).encode() + b" /Filter /FlateDecode >>\nstream\n" + packed + \
        b"\nendstream"


def pdf_sharing_one_stream(pages: int, stream_bytes: int = 1_000_000, *, distinct: bool = False) -> bytes:
    """Every page draws the same big content stream (empty text strings: a second of a reader's work per
    megabyte, and no text): a few KB of file, ``pages`` times the work for a naive reader. ``distinct``:
    each page's contents is [big, its own tiny stream], so the pages do not look alike."""
    operator = b"BT () Tj ET\n"
    big = _flate_stream(operator * (stream_bytes // len(operator)))
    first_page = 4
    tiny_first = first_page + pages
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages)).encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [" + kids + b"] /Count " +
               str(pages).encode() + b" >>", big]
    font = first_page + pages + (pages if distinct else 0)
    for i in range(pages):
        contents = f"[3 0 R {tiny_first + i} 0 R]" if distinct else "3 0 R"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {contents} "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
    if distinct:
        objects += [_flate_stream(f"% page {i}\n".encode()) for i in range(pages)]
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _pdf_document(objects)


def pdf_nested_arrays(depth: int = 5000) -> bytes:
    """An object of ``depth`` nested arrays: a recursive parser runs out of stack."""
    return _pdf_document([b"<< /Type /Catalog /Pages 2 0 R /Deep " + b"[" * depth + b"]" * depth + b" >>",
                          b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                          b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"])


def pdf_page_tree_loop() -> bytes:
    """A page tree whose node lists itself among its kids."""
    return _pdf_document([b"<< /Type /Catalog /Pages 2 0 R >>",
                          b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 1000000 >>",
                          b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"])


def docx_of_empty_elements(megabytes: int = 20) -> bytes:
    """A document.xml of ``megabytes`` MB of ``<a/>``: about 20 KB zipped."""
    body = "<a/>" * (megabytes * 1024 * 1024 // 4)
    return _docx(f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{WORD_NS}"><w:body>{body}'
                 f"</w:body></w:document>")


def _document_entry(data: bytes) -> tuple:
    """Offsets of word/document.xml's local header and central directory record."""
    name = b"word/document.xml"
    local = data.index(b"PK\x03\x04", data.rindex(b"PK\x03\x04", 0, data.index(name)))
    central = data.rindex(b"PK\x01\x02", 0, data.rindex(name))
    return local, central


def docx_corrupt_deflate() -> bytes:
    data = bytearray(docx(["正常的一段文字"] * 50))
    local, _ = _document_entry(bytes(data))
    name_length, extra_length = struct.unpack("<HH", data[local + 26:local + 30])
    start = local + 30 + name_length + extra_length
    for offset in range(start + 2, start + 40):
        data[offset] ^= 0xFF
    return bytes(data)


def docx_with_flags(*, encrypted: bool = False, method: int = 0) -> bytes:
    """The document entry marked encrypted, or stored with an unknown compression ``method``."""
    data = bytearray(docx(["一段文字"]))
    local, central = _document_entry(bytes(data))
    if encrypted:
        data[local + 6] |= 0x01
        data[central + 8] |= 0x01
    if method:
        data[local + 8:local + 10] = struct.pack("<H", method)
        data[central + 10:central + 12] = struct.pack("<H", method)
    return bytes(data)


def pdf_pages(texts: List[str]) -> bytes:
    """A PDF with one page per text (ASCII), in Helvetica."""
    count = len(texts)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count)).encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(count).encode() + b" >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(texts):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> >> >>".encode())
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    return _pdf_document(objects)
