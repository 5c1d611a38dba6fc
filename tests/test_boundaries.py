"""Each limit at its edge: one side passes, the other does not. These are the places where an off-by-one
would cost a user something (a 7th card call on a budget of 6, a turn lost, a file too many bytes)."""

import json

import pytest
from conftest import APP_SECRET, context

from devstack.fake_dingtalk import callback_body
from devstack.fake_llm import offline_answer
from shared.common.errors import SignatureError
from shared.receiver.dingtalk.callback import parse_callback
from shared.receiver.dingtalk.signature import compute_sign, verify_signature
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.config import BUILTIN_CARD_TEMPLATE, CardSettings, DingTalkApp
from shared.reply.dingtalk.cards import CardStream
from shared.reply.dingtalk.openapi import OpenApi, TokenCache
from shared.reply.dingtalk.outgoing import dingtalk_messages
from shared.reply.llm.prompt import Prompt
from shared.reply.llm.reasoning import Split, split_reasoning
from shared.reply.oss.blobs import MountBlobs
from shared.reply.oss.claims import HANDLED_TTL_MS, Claims
from shared.reply.oss.history import HistoryStore

MB = 1024 * 1024


# --- the card budget -----------------------------------------------------------------------------------

class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def stream_answer(sink, text, max_calls, *, template=BUILTIN_CARD_TEMPLATE, step=40, tick=0.1):
    clock = Clock()
    settings = CardSettings(template, "msgContent", 0.05, 3000, max_calls)
    address = ChatAddress.of(parse_callback(json.dumps(callback_body("q", webhook_base=sink.url)).encode()))
    cards = CardStream(settings, OpenApi(DingTalkApp(sink.app_key, sink.app_secret, sink.url), tokens=TokenCache()),
                       address, clock=clock)
    cards.start()
    for end in range(step, len(text) + step, step):
        clock.now += tick
        cards.show(text[:end])
    return cards, cards.finish(text)


@pytest.mark.parametrize("max_calls", range(6, 15))
@pytest.mark.parametrize("length", [30, 2500, 3100, 6500, 12000])
def test_an_answer_never_spends_more_card_calls_than_card_max_calls(sink, max_calls, length):
    text = "".join(f"第{i}句话写在这里。" for i in range(length))[:length]
    cards, rest = stream_answer(sink, text, max_calls)
    assert sink.card_calls() == cards.calls <= max_calls
    shown = "".join(c["content"] for c in sink.cards.values())
    assert shown + rest == text and all(not c["blank"] and c["finalized"] for c in sink.cards.values())


def test_what_a_budget_of_eight_calls_cannot_show_is_returned_in_order(sink):
    long = offline_answer([{"role": "user", "content": "写一篇长文"}])
    cards, rest = stream_answer(sink, long, 8)
    assert cards.calls <= 8 and rest and long.endswith(rest)
    assert "".join(c["content"] for c in sorted(sink.cards.values(), key=lambda c: c["created"])) + rest == long


# --- message splitting -------------------------------------------------------------------------------

@pytest.mark.parametrize("max_bytes", [500, 1000, 2000])
def test_with_the_mention_every_message_stays_under_max_message_bytes(max_bytes):
    answer = "\n\n".join(f"- 第{i}点：" + "内容" * 30 for i in range(60))
    mention = "staff-" + "x" * 40
    for body in dingtalk_messages(answer, mention=mention, max_bytes=max_bytes):
        text = body["markdown"]["text"] if body["msgtype"] == "markdown" else body["text"]["content"]
        assert len(text.encode("utf-8")) <= max_bytes


# --- history -----------------------------------------------------------------------------------------

def store(tmp_path):
    return HistoryStore(MountBlobs(tmp_path / "dingbot"))


def test_history_length_means_exactly_that_many_turns(tmp_path):
    history = store(tmp_path)
    for i in range(5):
        history.add_turn("cid", f"m{i}", 1000 + i, f"q{i}", f"a{i}")
    conversation = history.load("cid", 3)
    assert [m["content"] for m in conversation.messages(3) if m["role"] == "user"] == ["q2", "q3", "q4"]
    assert conversation.messages(0) == []


def test_a_turn_asked_in_the_same_millisecond_as_clear_counts(tmp_path):
    history = store(tmp_path)
    history.add_turn("cid", "before", 999, "before", "a")
    history.add_clear("cid", "c", 1000)
    history.add_turn("cid", "same", 1000, "same moment", "a")
    assert [t["question"] for t in history.load("cid", 5).turns] == ["same moment"]


def test_compaction_keeps_the_latest_clear_so_a_late_turn_from_before_it_stays_hidden(tmp_path):
    history = store(tmp_path)
    for i in range(20):
        history.add_turn("cid", f"m{i}", 1000 + i, f"q{i}", "a")
    history.add_clear("cid", "c1", 1500)
    history.add_clear("cid", "c2", 2000)
    history.add_turn("cid", "after", 2001, "after", "a")
    history.compact("cid", keep=3)
    history.add_turn("cid", "slow", 1990, "a slow instance's turn from before the clear", "a")
    assert [t["question"] for t in history.load("cid", 5).turns] == ["after"]


# --- claims ------------------------------------------------------------------------------------------

def test_compaction_keeps_a_handled_take_over_whose_first_generation_is_old(tmp_path):
    import os

    clock = Clock()
    clock.now = 1_700_000_000.0
    claims = Claims(MountBlobs(tmp_path), atomic_create=False, clock=clock)
    claims.claim("cid", "m1", 60_000)
    clock.now += 61
    claims.finish(claims.claim("cid", "m1", 60_000))
    folder = tmp_path / claims.folder("cid")
    [first] = [p for p in folder.iterdir() if p.name.endswith("-1.json")]
    os.utime(first, (clock.now - HANDLED_TTL_MS / 1000 - 60,) * 2)
    assert claims.compact("cid") == 0
    assert claims.claim("cid", "m1", 60_000) is None


# --- context fitting ---------------------------------------------------------------------------------

def ask(reply, sink, text, **kwargs):
    event = parse_callback(json.dumps(callback_body(text, webhook_base=sink.url, **kwargs)).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"]


def test_a_full_context_drops_at_least_half_the_turns_and_asks_only_once_more(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "HISTORY_LENGTH": "10"})
    for i in range(6):
        ask(reply, sink, f"第{i}个问题" + "很长的内容" * 20, conversation_id="cid-full")
    llm.requests.clear()
    llm.context_limit = 10  # nothing fits, not even the question with half the turns
    assert ask(reply, sink, "再问一个", conversation_id="cid-full") == "llm-error"
    refused, again = llm.requests
    turns = [(len(r["messages"]) - 1) // 2 for r in (refused, again)]
    assert turns == [6, 3]


def test_max_context_tokens_is_the_budget_not_more():
    turns = tuple((f"问题{i}" + "内容" * 40, f"回答{i}" + "内容" * 40) for i in range(10))
    prompt = Prompt("现在的问题", turns)
    for limit in (200, 400, 800, 1600):
        fitted = prompt.fitted(limit)
        assert fitted.tokens() <= limit
        if len(fitted.history) < len(turns):
            assert Prompt("现在的问题", turns[-len(fitted.history) - 1:]).tokens() > limit


# --- reasoning -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, split", [
    ("</think>答案", Split("答案", "")),
    ("想法</think>\n答案", Split("答案", "想法")),
    ("  \n<think>想法</think>答案", Split("答案", "想法")),
    ("<think>还在想", Split("", "还在想")),
    ("答案里提到 </think> 标签", Split("标签", "答案里提到")),
])
def test_reasoning_is_split_wherever_its_tags_fall(raw, split):
    assert split_reasoning(raw) == split


@pytest.mark.parametrize("cut", range(1, len("<think>")))
def test_a_tag_cut_across_chunks_never_shows(cut):
    assert split_reasoning("<think>"[:cut]) == Split("", "")
    assert split_reasoning("\n " + "<think>"[:cut]) == Split("", "")


# --- the signature window ------------------------------------------------------------------------------

def test_the_signature_window_includes_its_edge_and_not_a_millisecond_more():
    now = 1_800_000_000_000
    for skew in (3_600_000, -3_600_000):
        timestamp = str(now + skew)
        verify_signature(APP_SECRET, timestamp, compute_sign(APP_SECRET, timestamp), now_ms=now, window_seconds=3600)
    for skew in (3_600_001, -3_600_001):
        timestamp = str(now + skew)
        with pytest.raises(SignatureError):
            verify_signature(APP_SECRET, timestamp, compute_sign(APP_SECRET, timestamp), now_ms=now,
                             window_seconds=3600)


# --- file bounds ---------------------------------------------------------------------------------------

@pytest.fixture
def media_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off", "MAX_FILE_MB": "1"}


def send_file(reply, sink, data, *, chunked=False):
    sink.files["f"] = data
    if chunked:
        sink.chunked_files.add("f")
    body = callback_body("", webhook_base=sink.url, msgtype="file", group=False,
                         content={"downloadCode": "f", "fileName": "a.txt"})
    return json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_file_of_exactly_max_file_mb_is_read_and_one_byte_more_is_refused(chunked, reply, media_env, use_env, llm,
                                                                            sink):
    use_env(media_env)
    assert send_file(reply, sink, b"a" * MB, chunked=chunked) == "answered"
    assert send_file(reply, sink, b"a" * (MB + 1), chunked=chunked) == "media-error"
    assert sink.wait_for(2)[-1]["text"]["content"] == texts.FILE_TOO_LARGE.format(what="文件", limit=1)


def test_a_declared_size_over_the_limit_is_refused_before_a_byte_is_read(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    sink.slow_files["f"] = 0.5  # a body that would take days: only the declared size can refuse it at once
    assert send_file(reply, sink, b"a" * (MB + 1)) == "media-error"
    assert sink.wait_for(1)[0]["text"]["content"] == texts.FILE_TOO_LARGE.format(what="文件", limit=1)


def test_a_download_that_redirects_is_not_followed(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    sink.files["elsewhere"] = b"other content"
    sink.redirected_files["f"] = f"{sink.url}/files/elsewhere"
    requests_before = sink.file_requests
    assert send_file(reply, sink, b"x") == "media-error"
    assert sink.file_requests == requests_before + 1
    assert sink.wait_for(1)[0]["text"]["content"] == texts.DOWNLOAD_FAILED


@pytest.mark.parametrize("length, cut", [(800, False), (801, True)])
def test_quoted_reasoning_keeps_its_last_800_characters(length, cut):
    from shared.reply.llm.reasoning import QUOTE_CHARS, with_reasoning
    reasoning = "想" * (length - 1) + "末"
    shown = with_reasoning("答案", reasoning + "\n\n第二段")
    quoted = shown.split("\n\n答案")[0]
    assert shown.endswith("\n\n答案") and quoted.startswith("> 💭 思考过程\n>\n> ")
    assert ("…" in quoted) is (length + len("\n\n第二段") > QUOTE_CHARS) and "> 第二段" in quoted
    assert with_reasoning("答案", "  \n ") == "答案"
    assert cut or "…" not in with_reasoning("答案", "想" * length)


def test_compaction_with_no_history_kept_leaves_no_turn(tmp_path):
    history = store(tmp_path)
    for i in range(15):
        history.add_turn("cid", f"m{i}", 1000 + i, f"q{i}", "a")
    assert history.compact("cid", keep=0) == 15
    assert history.load("cid", 5).turns == []
