"""A page's encoding as the WHATWG sniffing algorithm finds it: BOM, then the header, then <meta>, then the bytes."""

import codecs

import pytest

from shared.reply.encodings import decode_html, encoding_of, html_encoding


@pytest.mark.parametrize("label, codec", [("gbk", "gb18030"), ("GB2312", "gb18030"), (" x-gbk ", "gb18030"),
                                          ("gb18030", "gb18030"), ("iso-8859-1", "cp1252"), ("ascii", "cp1252"),
                                          ("big5", "big5hkscs"), ("utf-8", "utf-8"), ("UTF8", "utf-8"),
                                          ("shift_jis", "shift_jis"), ("no-such-thing", None), ("utf-16", "utf-8")])
def test_labels_map_to_the_decoder_browsers_use(label, codec):
    assert encoding_of(label) == codec


@pytest.mark.parametrize("data, content_type, expected", [
    (codecs.BOM_UTF8 + b'<meta charset="gbk">', "text/html; charset=gbk", "utf-8"),
    (codecs.BOM_UTF16_LE + "<p>".encode("utf-16-le"), "", "utf-16-le"),
    (b'<meta charset="gbk">', "text/html; charset=utf-8", "utf-8"),
    (b'<meta charset="gbk">', "text/html; charset=bogus", "gb18030"),
    (b"<html><head><META CHARSET=GB2312></head>", "text/html", "gb18030"),
    (b"<meta charset='big5'/>", "", "big5hkscs"),
    (b'<meta http-equiv="content-type" content="text/html;charset=gbk">', "", "gb18030"),
    (b'<meta name="description" content="charset=gbk">', "", None),  # content= counts only with http-equiv
    (b" " * 1100 + b'<meta charset="gbk">', "", None),  # past the first 1024 bytes
    (b"<p>no declaration</p>", "text/html", None),
], ids=["bom-wins", "utf16-bom", "header", "bad-header-then-meta", "meta-upper", "single-quotes", "http-equiv",
        "other-meta", "too-late", "none"])
def test_the_encoding_is_found_in_the_order_browsers_look(data, content_type, expected):
    assert html_encoding(data, content_type) == expected


def test_a_byte_order_mark_is_not_part_of_the_text():
    assert decode_html(codecs.BOM_UTF8 + "<p>你好</p>".encode(), "text/html; charset=gbk") == "<p>你好</p>"


def test_gbk_without_any_declaration_is_told_from_its_bytes():
    page = ("<html><body><p>星河计划由李四负责，预算为三百万元，第一阶段在杭州进行，第二阶段覆盖华东地区。</p>"
            "</body></html>")
    assert "星河计划由李四负责" in decode_html(page.encode("gb18030"), "text/html")
