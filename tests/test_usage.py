"""Usage records, daily quotas and \\usage: what the operator pays for, counted per user and conversation."""

import datetime as dt
import json
import multiprocessing

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.fake_llm import offline_answer, token_usage
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.admit import over_quota
from shared.reply.config import ReplyConfig
from shared.reply.oss.blobs import MountBlobs
from shared.reply.oss.usage import ANSWERED, Calendar, Entry, UsageBook, short

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def ask(reply, sink, text, **kwargs):
    body = callback_body(text, webhook_base=sink.url, **kwargs)
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    return status, body


def records(oss):
    return [(p.name, json.loads(p.read_text())) for p in sorted((oss / "dingbot" / "usage").glob("????-??-??/*.json"))]


def said(sink):
    return [m.get("text", {}).get("content") or m["markdown"]["text"] for m in (x["body"] for x in sink.messages)]


def test_an_answered_message_leaves_one_record_of_ids_and_counts_only(reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    status, body = ask(reply, sink, "我们公司的机密计划是什么", conversation_id="cid-u")
    assert status == "answered"
    [(name, record)] = records(oss)
    [asked] = llm.raw_requests
    expected = token_usage(asked["messages"], offline_answer(asked["messages"]))
    assert (record["prompt_tokens"], record["completion_tokens"]) == (expected["prompt_tokens"],
                                                                       expected["completion_tokens"])
    assert record["outcome"] == "answered" and record["estimated"] is False and record["title"] == "演示群"
    assert record["sender"] == "staff-zhangsan" and record["nick"] == "张三" and record["conversation"] == "cid-u"
    assert record["total_ms"] >= record["first_text_ms"] >= 0 and record["card_calls"] == 0
    assert "机密" not in json.dumps(record, ensure_ascii=False) and "机密" not in name
    day = dt.datetime.fromtimestamp(record["at"] / 1000, SHANGHAI).strftime("%Y-%m-%d")
    assert (oss / "dingbot" / "usage" / day / name).exists()
    entry = Entry.parse(name)
    assert (entry.outcome, entry.tokens, entry.sender) == (ANSWERED, expected["total_tokens"], short("staff-zhangsan"))


@pytest.mark.parametrize("text, env, outcome", [("\\help", {}, "command"), ("你好", {"ALLOWED_USERS": "x"}, "refused")])
def test_commands_and_refusals_are_recorded_as_such_and_not_counted(text, env, outcome, reply, reply_env, use_env,
                                                                    llm, sink, oss):
    use_env({**reply_env, **env})
    ask(reply, sink, text)
    [(_, record)] = records(oss)
    assert record["outcome"] == outcome and record["prompt_tokens"] == 0


def test_a_provider_without_usage_leaves_an_estimate_marked_as_such(reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    llm.usage = False
    ask(reply, sink, "你好")
    [(name, record)] = records(oss)
    assert record["estimated"] is True and record["prompt_tokens"] > 0 and Entry.parse(name).estimated


def write_record(args):
    root, index = args
    book = UsageBook(MountBlobs(root), Calendar("Asia/Shanghai"))
    entry = Entry(1_800_000_000_000, short(f"u{index}"), short("cid"), ANSWERED, 10, 20, False, 5)
    book.write(entry, f"m{index}", {"outcome": "answered"})


def test_instances_writing_at_once_lose_no_record(tmp_path):
    with multiprocessing.get_context("forkserver").Pool(8) as pool:
        pool.map(write_record, [(str(tmp_path), i) for i in range(8)])
    book = UsageBook(MountBlobs(tmp_path), Calendar("Asia/Shanghai", clock=lambda: 1_800_000_000))
    assert len(book.today()) == 8


def test_the_daily_message_limit_holds_at_its_edge_and_commands_still_work(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "QUOTA_USER_DAILY_MESSAGES": "2"})
    outcomes = [ask(reply, sink, f"问题{i}", conversation_id="cid-q")[0] for i in range(3)]
    assert outcomes == ["answered", "answered", "quota"] and len(llm.requests) == 2
    refusal = said(sink)[-1]
    assert "你今天的提问次数已达到上限（2）" in refusal and "00:00（Asia/Shanghai）恢复" in refusal
    assert ask(reply, sink, "\\help", conversation_id="cid-q")[0] == "help"
    assert ask(reply, sink, "别人的问题", conversation_id="cid-q", sender_staff_id="staff-other")[0] == "answered"


def test_an_unexpected_failure_reading_todays_usage_fails_the_message_and_frees_it_for_a_redelivery(
        reply, reply_env, use_env, llm, sink, monkeypatch):
    from shared.reply.oss.storage import Storage

    use_env({**reply_env, "QUOTA_USER_DAILY_MESSAGES": "2"})
    monkeypatch.setattr(Storage, "usage_today", lambda self: {}["a listing the code did not expect"])
    assert ask(reply, sink, "问题", msg_id="msg-unlisted", conversation_id="cid-u")[0] == "internal-error"
    assert llm.requests == [] and said(sink) == [texts.INTERNAL]
    monkeypatch.undo()
    use_env({**reply_env, "QUOTA_USER_DAILY_MESSAGES": "2"})
    assert ask(reply, sink, "问题", msg_id="msg-unlisted", conversation_id="cid-u")[0] == "answered"


def test_exempt_users_and_token_limits(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "QUOTA_USER_DAILY_TOKENS": "1", "QUOTA_EXEMPT_USERS": "staff-boss"})
    assert [ask(reply, sink, "问题")[0] for _ in range(2)] == ["answered", "quota"]
    assert "token 用量" in said(sink)[-1]
    assert [ask(reply, sink, "问题", sender_staff_id="staff-boss")[0] for _ in range(2)] == ["answered", "answered"]


def test_the_conversation_token_limit_counts_everyone_in_it(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "QUOTA_CONVERSATION_DAILY_TOKENS": "1"})
    assert ask(reply, sink, "第一个人", conversation_id="cid-t", sender_staff_id="a")[0] == "answered"
    assert ask(reply, sink, "第二个人", conversation_id="cid-t", sender_staff_id="b")[0] == "quota"
    assert ask(reply, sink, "别的群", conversation_id="cid-other", sender_staff_id="b")[0] == "answered"


def test_days_are_counted_in_tz_so_midnight_in_shanghai_resets_the_limit(tmp_path):
    before_midnight = dt.datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI).timestamp()
    after_midnight = dt.datetime(2026, 12, 1, 0, 1, tzinfo=SHANGHAI).timestamp()
    blobs = MountBlobs(tmp_path)
    UsageBook(blobs, Calendar("Asia/Shanghai", clock=lambda: before_midnight)).write(
        Entry(int(before_midnight * 1000), short("staff-a"), short("cid"), ANSWERED, 5, 5, False, 0), "m1", {})
    config = ReplyConfig.from_env({"CHATGPT_API_KEY": "k", "QUOTA_USER_DAILY_MESSAGES": "1"})
    address = ChatAddress.of(parse_callback(json.dumps(callback_body(
        "q", webhook_base="https://oapi.dingtalk.com", conversation_id="cid", sender_staff_id="staff-a")).encode()))
    late = UsageBook(blobs, Calendar("Asia/Shanghai", clock=lambda: before_midnight + 30)).today()
    early = UsageBook(blobs, Calendar("Asia/Shanghai", clock=lambda: after_midnight)).today()
    assert over_quota(config.quotas, address, late, "明天") is not None
    assert over_quota(config.quotas, address, early, "明天") is None
    assert over_quota(config.quotas, address, None, "明天") is None  # unreadable records never cost the answer


def test_usage_shows_today_and_this_month_for_the_asker_and_the_conversation(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "MODEL": "qwen-plus", "MODEL_PRICES": json.dumps({"qwen-plus": [1000, 2000]})})
    ask(reply, sink, "一", conversation_id="cid-s")
    ask(reply, sink, "二", conversation_id="cid-s", sender_staff_id="staff-other")
    ask(reply, sink, "三", conversation_id="cid-s")
    prompts = [r["messages"] for r in llm.raw_requests]
    tokens = [token_usage(m, offline_answer(m)) for m in prompts]
    mine = [tokens[0], tokens[2]]
    assert ask(reply, sink, "\\usage", conversation_id="cid-s")[0] == "usage"
    shown = said(sink)[-1]
    me = f"2 条提问，{sum(t['total_tokens'] for t in mine):,} tokens"
    here = f"3 条提问，{sum(t['total_tokens'] for t in tokens):,} tokens"
    cost = sum(t["prompt_tokens"] * 1000 + t["completion_tokens"] * 2000 for t in tokens) / 1_000_000
    assert f"你：今天 {me}" in shown and f"本月 {me}" in shown
    assert f"本会话：今天 {here}，约 ¥{cost:.2f}" in shown
    assert "\\usage" not in shown and len(llm.requests) == 3


def test_old_days_fold_into_one_summary_and_their_records_go(tmp_path):
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI).timestamp()
    blobs = MountBlobs(tmp_path)
    book = UsageBook(blobs, Calendar("Asia/Shanghai", clock=lambda: now))
    for index, days_ago in enumerate((40, 40, 36, 3)):
        at = now - days_ago * 86400
        book.write(Entry(int(at * 1000), short("u"), short("c"), ANSWERED, 10, 5, False, 7), f"m{index}",
                   {"outcome": "answered", "prompt_tokens": 10, "completion_tokens": 5, "cost_micro": 7,
                    "conversation": "c", "sender": "u", "total_ms": 100})
    assert book.fold(35) == 2
    assert len(book.days()) == 1
    summaries = sorted(book.summaries(), key=lambda s: s["day"])
    assert [(s["messages"], s["prompt_tokens"], s["cost_micro"]) for s in summaries] == [(2, 20, 14), (1, 10, 7)]
    assert book.fold(35) == 0
