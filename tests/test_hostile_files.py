"""Files, pictures and upstreams that try to eat the function: every one is read within a time and
memory budget, and every failure ends in one readable sentence with nothing left in progress."""

import json
import os
import subprocess
import sys
from pathlib import Path

import fixtures
import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import documents, texts
from shared.reply.documents import Unreadable, read_document

ROOT = Path(__file__).resolve().parent.parent
UNREADABLE = texts.FILE_UNREADABLE.format(name="x")[3:]


class CountingClock:
    """Advances ``step`` seconds per reading; ``readings`` counts them (one at the start, one per page)."""

    def __init__(self, step=0.0):
        self.step, self.now, self.readings = step, 0.0, 0

    def __call__(self):
        self.readings += 1
        self.now += self.step
        return self.now


# --- PDF ---------------------------------------------------------------------------------------------

def test_a_content_stream_shared_by_sixty_pages_is_read_once():
    clock = CountingClock()
    with pytest.raises(Unreadable) as refused:
        read_document("x.pdf", fixtures.pdf_sharing_one_stream(60), 20_000, clock=clock)
    assert refused.value.user_message == texts.FILE_EMPTY.format(name="x.pdf")
    assert clock.readings == 2  # the start, and one page


def test_pages_that_look_different_stop_at_the_time_budget(monkeypatch):
    clock = CountingClock(step=3.0)
    with pytest.raises(Unreadable):
        read_document("x.pdf", fixtures.pdf_sharing_one_stream(60, stream_bytes=20_000, distinct=True), 20_000,
                      clock=clock)
    assert clock.readings - 1 == documents.PDF_SECONDS // 3.0 + 1  # pages read before the budget ran out


def test_extraction_stops_once_the_text_budget_is_full_and_says_it_was_cut():
    clock = CountingClock()
    pages = [f"Page {i} " + "lorem ipsum " * 40 for i in range(200)]
    document = read_document("x.pdf", fixtures.pdf_pages(pages), 2_000, clock=clock)
    assert document.cut and len(document.text) == 2_000 and document.text.startswith("Page 0")
    assert clock.readings - 1 < 10


def test_pages_past_the_page_cap_are_not_read(monkeypatch):
    monkeypatch.setattr(documents, "MAX_PDF_PAGES", 3)
    document = read_document("x.pdf", fixtures.pdf_pages([f"Page {i}" for i in range(10)]), 20_000)
    assert document.text.split() == ["Page", "0", "Page", "1", "Page", "2"] and document.cut


@pytest.mark.parametrize("data", [fixtures.pdf_nested_arrays(), fixtures.pdf_page_tree_loop(),
                                  b"%PDF-1.4\n" + b"[" * 5000, fixtures.pdf("ok")[:200]],
                         ids=["nested-arrays", "page-tree-loop", "raw-nesting", "truncated"])
def test_broken_or_hostile_pdfs_are_one_sentence(data):
    with pytest.raises(Unreadable) as refused:
        read_document("x.pdf", data, 20_000)
    assert refused.value.user_message in (texts.FILE_UNREADABLE.format(name="x.pdf"),
                                          texts.FILE_EMPTY.format(name="x.pdf"))


# --- DOCX --------------------------------------------------------------------------------------------

def test_a_docx_of_twenty_megabytes_of_empty_elements_is_counted_and_stopped(monkeypatch):
    nodes = []
    real = documents._docx_handler

    def spying(collected):
        handler = real(collected)
        nodes.append(handler)
        return handler

    monkeypatch.setattr(documents, "_docx_handler", spying)
    with pytest.raises(Unreadable) as refused:
        read_document("x.docx", fixtures.docx_of_empty_elements(20), 20_000)
    assert refused.value.user_message == texts.FILE_EMPTY.format(name="x.docx")
    assert nodes[0].nodes == documents.MAX_XML_NODES + 1


def test_a_long_docx_stops_once_the_text_budget_is_full():
    document = read_document("x.docx", fixtures.docx([f"第{i}段" + "内容" * 50 for i in range(5000)]), 1_000)
    assert document.cut and len(document.text) == 1_000 and document.text.startswith("第0段")


@pytest.mark.parametrize("data", [fixtures.docx_corrupt_deflate(), fixtures.docx_with_flags(encrypted=True),
                                  fixtures.docx_with_flags(method=99), b"PK\x03\x04 not a zip"],
                         ids=["corrupt-deflate", "encrypted-entry", "unknown-method", "not-a-zip"])
def test_broken_docx_files_are_one_sentence(data):
    with pytest.raises(Unreadable) as refused:
        read_document("x.docx", data, 20_000)
    assert refused.value.user_message == texts.FILE_UNREADABLE.format(name="x.docx")


# --- text --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "big5", "gb18030", "utf-8-sig", "utf-8"])
def test_text_files_in_the_encodings_chinese_teams_use_are_read_right(encoding):
    text = "這是繁體中文的測試文件，內容包含一些常見的詞語。" if encoding == "big5" else \
        "这是一份简体中文的测试文件，内容包含一些常见的词语。Hello 123"
    assert read_document("x.txt", text.encode(encoding), 20_000).text == text


# --- end to end: the sentence, the claim, the memory ---------------------------------------------------

HOSTILE = {
    "shared-stream.pdf": lambda: fixtures.pdf_sharing_one_stream(60),
    "distinct-pages.pdf": lambda: fixtures.pdf_sharing_one_stream(40, distinct=True),
    "nested.pdf": fixtures.pdf_nested_arrays,
    "loop.pdf": fixtures.pdf_page_tree_loop,
    "empty-elements.docx": lambda: fixtures.docx_of_empty_elements(20),
    "corrupt.docx": fixtures.docx_corrupt_deflate,
    "encrypted.docx": lambda: fixtures.docx_with_flags(encrypted=True),
    "method.docx": lambda: fixtures.docx_with_flags(method=99),
}


@pytest.fixture
def media_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off"}


def file_event(sink, name, data):
    sink.files[f"file-{name}"] = data
    body = callback_body("", webhook_base=sink.url, msgtype="file", group=False, conversation_id="cid-dm",
                         content={"downloadCode": f"file-{name}", "fileName": name})
    return parse_callback(json.dumps(body).encode()).to_payload()


def claim_states(oss):
    return [json.loads(p.read_text())["state"] for p in (oss / "dingbot" / "claims").glob("*/*.json")]


@pytest.mark.parametrize("name", ["nested.pdf", "corrupt.docx", "encrypted.docx", "method.docx"])
def test_a_hostile_file_is_one_sentence_in_the_chat_and_leaves_no_claim_in_progress(
        name, reply, media_env, use_env, llm, sink, oss):
    use_env(media_env)
    status = json.loads(reply(file_event(sink, name, HOSTILE[name]()), context("reply")))["status"]
    assert status == "media-error" and llm.requests == []
    [said] = sink.wait_for(1)
    assert said["text"]["content"] == texts.FILE_UNREADABLE.format(name=name)
    assert texts.INTERNAL not in json.dumps(sink.messages, ensure_ascii=False)
    assert claim_states(oss) == ["handled"]


def test_a_reader_that_blows_up_is_one_sentence_too(reply, media_env, use_env, llm, sink, oss, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("a reader that blew up")

    monkeypatch.setattr(documents, "_pdf_text", broken)
    use_env(media_env)
    status = json.loads(reply(file_event(sink, "a.pdf", fixtures.pdf("x")), context("reply")))["status"]
    assert status == "media-error" and claim_states(oss) == ["handled"]
    assert sink.wait_for(1)[0]["text"]["content"] == texts.FILE_UNREADABLE.format(name="a.pdf")


def test_an_unexpected_failure_before_the_answer_releases_the_claim(reply, media_env, use_env, llm, sink, oss,
                                                                      monkeypatch):
    from shared.reply.llm import prompt

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(prompt, "build_prompt", broken)
    use_env(media_env)
    status = json.loads(reply(file_event(sink, "a.pdf", fixtures.pdf("x")), context("reply")))["status"]
    assert status == "internal-error" and claim_states(oss) == []
    assert sink.wait_for(1)[0]["text"]["content"] == texts.INTERNAL


def test_the_pictures_of_one_message_are_bounded_together(reply, media_env, use_env, llm, sink):
    use_env({**media_env, "MAX_MESSAGE_MEDIA_MB": "2"})
    picture = fixtures.png() + b"\0" * (900 * 1024)
    items = []
    for i in range(4):
        sink.files[f"p{i}"] = picture
        items.append({"type": "picture", "downloadCode": f"p{i}"})
    body = callback_body("", webhook_base=sink.url, msgtype="richText",
                         content={"richText": [{"text": "这些图有什么区别？"}, *items]})
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    assert status == "media-error" and llm.requests == []
    assert sink.wait_for(1)[0]["text"]["content"] == texts.MEDIA_TOO_MUCH.format(limit=2)


PEAK = """
import json, sys, index
class Ctx: request_id = "r"; credentials = None
status = json.loads(index.handler(sys.stdin.buffer.read(), Ctx()))["status"]
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]  # this program's own peak
print(json.dumps({"status": status, "peak_mb": int(peak[0].split()[1]) / 1024}))
"""


def peak_of_a_reply(event: bytes, env: dict) -> dict:
    code = ROOT / "dingtalk_chatgpt_reply"
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(code)!r}, {str(ROOT)!r}]\n" +
                             PEAK], input=event, capture_output=True, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_peak_memory_of_a_reply_reading_a_hostile_file_stays_under_256_mb(name, media_env, llm, sink):
    outcome = peak_of_a_reply(file_event(sink, name, HOSTILE[name]()), media_env)
    assert outcome["status"] == "media-error" and outcome["peak_mb"] < 256, outcome


@pytest.mark.parametrize("count, status", [(20, "media-error"), (2, "answered")])
def test_peak_memory_of_a_reply_with_large_pictures_stays_under_256_mb(count, status, media_env, llm, sink):
    """Twenty 9.5 MB pictures are refused at the third; two (the most one message may carry) reach the
    model, base64-encoded in the request."""
    picture = fixtures.png() + os.urandom(9 * 1024 * 1024 + 512 * 1024)
    items = []
    for i in range(count):
        sink.files[f"big{i}"] = picture
        items.append({"type": "picture", "downloadCode": f"big{i}"})
    body = callback_body("", webhook_base=sink.url, msgtype="richText",
                         content={"richText": [{"text": "看看这些图"}, *items]})
    outcome = peak_of_a_reply(parse_callback(json.dumps(body).encode()).to_payload(),
                              {**media_env, "VISION_MODEL": "vision", "TIMEOUT": "30"})
    assert outcome["status"] == status and outcome["peak_mb"] < 256, outcome


# --- deadlines that hold -----------------------------------------------------------------------------

def eventually(probe, timeout=10.0):
    """``probe()`` once it is truthy (the fake notices a hang-up at its next write), or its last value."""
    import time
    until = time.monotonic() + timeout
    while not probe() and time.monotonic() < until:
        time.sleep(0.05)
    return probe()


@pytest.mark.parametrize("cards", ["on", "off"], ids=["streamed-keepalives", "non-streamed-whitespace"])
def test_timeout_is_a_wall_clock_deadline_on_the_whole_model_call(cards, reply, media_env, use_env, llm, sink):
    use_env({**media_env, "CARD_STREAMING": cards, "TIMEOUT": "1"})
    llm.fail_next({"drip": 0.1})
    body = callback_body("你好", webhook_base=sink.url, conversation_id="cid-drip")
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    assert status == "llm-error"
    shown = sink.cards_in("cid-drip")[0]["content"] if cards == "on" else sink.wait_for(1)[0]["text"]["content"]
    assert texts.TIMEOUT in shown
    assert eventually(lambda: llm.dripped) == ["cut"]  # hung up long before the minute of drip was over


def test_a_download_that_drips_under_its_content_length_is_cut_at_the_deadline(reply, media_env, use_env, llm, sink,
                                                                                monkeypatch):
    from shared.reply.dingtalk import files
    monkeypatch.setattr(files, "DOWNLOAD_SECONDS", 1.0)
    use_env(media_env)
    sink.slow_files["file-slow.txt"] = 0.2
    status = json.loads(reply(file_event(sink, "slow.txt", b"x" * 1000), context("reply")))["status"]
    assert status == "media-error" and llm.requests == []
    assert sink.wait_for(1)[0]["text"]["content"] == texts.DOWNLOAD_FAILED
    assert eventually(lambda: sink.downloads_cut) == ["file-slow.txt"]
