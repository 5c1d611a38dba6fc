"""The bot speaks first: \\定时 in the chat, the timer's tick sending each due time once, and the time phrases."""

import datetime as dt
import json
import threading
from zoneinfo import ZoneInfo

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.stack import LocalStack, StackSettings
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import texts
from shared.reply.when import NotUnderstood, parse

SHANGHAI = ZoneInfo("Asia/Shanghai")
GROUP = "cid-schedules"


@pytest.fixture
def env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off", "SCHEDULE_MIN_INTERVAL_MINUTES": "1"}


def say(reply, sink, text, conversation_id=GROUP, **kwargs):
    body = callback_body(text, webhook_base=sink.url, conversation_id=conversation_id, **kwargs)
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    last = sink.wait_for(1)[-1]
    return status, last["text"]["content"] if "text" in last else last["markdown"]["text"]


def admin(reply, sink, text, conversation_id=GROUP):
    return say(reply, sink, text, conversation_id, is_admin=True)


def tick(reply, at):
    event = {"triggerTime": at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "triggerName": "schedule", "payload": ""}
    return json.loads(reply(json.dumps(event).encode(), context("reply")))


def sent(sink):
    return [(m["to"], m["msgParam"].get("text") or m["msgParam"].get("content")) for m in sink.robot_messages]


def soon(minutes=5):
    """A time a few minutes from now, in Shanghai, on the minute."""
    return (dt.datetime.now(SHANGHAI) + dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def test_a_tick_that_finds_two_due_schedules_sends_two_messages(reply, env, use_env, llm, sink):
    use_env(env)
    at = soon()
    assert admin(reply, sink, f"\\定时 每天 {at:%H:%M} 提醒：写日报")[0] == "schedule-added"
    assert admin(reply, sink, f"\\定时 每天 {at:%H:%M} 总结一下今天的工作")[0] == "schedule-added"
    assert tick(reply, at - dt.timedelta(minutes=1))["sent"] == 0
    assert tick(reply, at)["sent"] == 2
    assert [text for _, text in sent(sink) if text.startswith("⏰")] == ["⏰ 写日报"]
    assert any("收到：「总结一下今天的工作」" in text for _, text in sent(sink))
    assert {to for to, _ in sent(sink)} == {GROUP}
    assert tick(reply, at + dt.timedelta(minutes=1))["sent"] == 0  # each due time once


def test_two_ticks_at_once_send_each_due_time_once(reply, env, use_env, llm, sink):
    use_env(env)
    at = soon()
    admin(reply, sink, f"\\定时 每天 {at:%H:%M} 提醒：开会")
    results = []
    threads = [threading.Thread(target=lambda: results.append(tick(reply, at))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["sent"] for r in results) == [0, 0, 0, 1]
    assert [text for _, text in sent(sink)] == ["⏰ 开会"]


def test_a_tick_forty_minutes_late_sends_nothing_and_says_why(reply, env, use_env, llm, sink, caplog):
    use_env(env)
    at = soon()
    admin(reply, sink, f"\\定时 每天 {at:%H:%M} 提醒：早会")
    assert tick(reply, at + dt.timedelta(minutes=40)) == {"status": "ticked", "sent": 0, "skipped": 1, "failed": 0}
    assert sent(sink) == [] and "40 minutes late, more than SCHEDULE_GRACE_MINUTES=30" in caplog.text
    assert tick(reply, at + dt.timedelta(minutes=41))["skipped"] == 0  # logged once, not at every tick
    assert tick(reply, at + dt.timedelta(minutes=29))["sent"] == 0  # nor sent by a slower tick after it


def test_a_schedule_deleted_before_its_time_is_never_sent(reply, env, use_env, llm, sink):
    use_env(env)
    at = soon()
    admin(reply, sink, f"\\定时 每天 {at:%H:%M} 提醒：第一条")
    admin(reply, sink, f"\\定时 每周五 {at:%H:%M} 提醒：第二条")
    status, said = admin(reply, sink, "\\定时 删除 1")
    assert status == "schedule-deleted" and "第一条" in said
    listing = say(reply, sink, "\\定时")[1]
    assert "1. 每周五" in listing and "第一条" not in listing
    tick(reply, at)
    assert "⏰ 第一条" not in [text for _, text in sent(sink)]
    assert admin(reply, sink, "\\定时 删除 5") == ("schedule-refused", texts.SCHEDULE_NO_SUCH.format(number=5))


def test_a_failing_brain_is_one_sentence_in_the_group(reply, env, use_env, llm, sink):
    use_env(env)
    at = soon()
    admin(reply, sink, f"\\定时 每天 {at:%H:%M} 总结今天的新闻")
    llm.fail_next({"status": 503}, {"status": 503}, {"status": 503})
    assert tick(reply, at)["sent"] == 1
    assert [text for _, text in sent(sink)] == [texts.UNAVAILABLE.format(status=503)]


def test_only_a_group_admin_schedules_and_the_person_in_a_one_to_one_chat(reply, env, use_env, llm, sink):
    use_env(env)
    assert say(reply, sink, "\\定时 每天 09:00 提醒：喝水") == ("not-admin", texts.SCHEDULE_ADMIN_ONLY)
    assert say(reply, sink, "\\定时")[1] == texts.SCHEDULES_NONE
    status, said = say(reply, sink, "\\定时 工作日 9点 提醒：喝水", "cid-dm", group=False)
    assert status == "schedule-added" and texts.SCHEDULE_GROUP_NOTE.strip() not in said
    at = dt.datetime(2030, 1, 7, 9, 0, tzinfo=SHANGHAI)  # a Monday
    tick(reply, at)
    assert sent(sink) == [(["staff-zhangsan"], "⏰ 喝水")]


def test_without_the_app_or_with_too_short_an_interval_it_says_so(reply, env, use_env, llm, sink):
    use_env({k: v for k, v in env.items() if not k.startswith("DINGTALK_")})
    assert admin(reply, sink, "\\定时 每天 09:00 提醒：喝水") == ("schedule-refused", texts.SCHEDULE_NEEDS_APP)
    use_env({**env, "SCHEDULE_MIN_INTERVAL_MINUTES": "60"})
    assert admin(reply, sink, "\\定时 每分钟 提醒：喝水")[1] == texts.SCHEDULE_TOO_OFTEN.format(minutes=60)
    assert admin(reply, sink, "\\定时 */30 * * * * 提醒：喝水")[1] == texts.SCHEDULE_TOO_OFTEN.format(minutes=60)
    assert admin(reply, sink, "\\定时 明天 提醒：喝水")[0] == "schedule-refused"
    assert admin(reply, sink, "\\定时 每天 25:00 提醒：喝水")[1].startswith("时间写得不对")
    assert admin(reply, sink, "\\定时 每天 09:00")[0] == "schedule-refused"


def test_the_listing_shows_the_next_run_in_tz_and_who_made_it(reply, env, use_env, llm, sink):
    use_env(env)
    admin(reply, sink, "\\定时 每月最后一天 18:00 提醒：交月报")
    listing = say(reply, sink, "\\定时")[1]
    now = dt.datetime.now(SHANGHAI)
    last = dt.date(now.year + (now.month == 12), now.month % 12 + 1, 1) - dt.timedelta(days=1)
    if now.date() == last and now.hour >= 18:
        last = dt.date(last.year + (last.month == 12), last.month % 12 + 1, 1) + dt.timedelta(days=40)
        last = last.replace(day=1) - dt.timedelta(days=1)
    assert f"1. 每月最后一天 18:00 提醒：交月报（下次：{last:%m月%d日} 18:00；张三设置）" in listing
    assert "Asia/Shanghai" in listing


def test_each_run_is_a_scheduled_usage_record_counted_against_the_conversation(reply, env, use_env, llm, sink,
                                                                              oss):
    use_env({**env, "QUOTA_CONVERSATION_DAILY_TOKENS": "1"})
    at = soon()
    admin(reply, sink, f"\\定时 每天 {at:%H:%M} 总结一下")
    tick(reply, at)
    records = [json.loads(p.read_text()) for p in sorted((oss / "dingbot" / "usage").glob("*/*.json"))]
    [run] = [r for r in records if r["outcome"] == "scheduled"]
    assert run["conversation"] == GROUP and run["prompt_tokens"] > 0 and run["sender"].startswith("schedule:")
    assert say(reply, sink, "你好")[0] == "quota"  # the run's tokens count against the group's day
    admin(reply, sink, f"\\定时 每天 {at:%H:%M} 再总结一下")
    tick(reply, at + dt.timedelta(days=1))
    assert texts.SCHEDULE_OVER_QUOTA.format(what="再总结一下") in [text for _, text in sent(sink)]


def test_make_run_shows_a_message_nobody_asked_for(tmp_path):
    with LocalStack(StackSettings(state_dir=tmp_path)) as stack:
        added = stack.send("\\定时 每分钟 提醒：站起来活动一下", conversation_id="cid-local", is_admin=True)
        assert added.outcome == "schedule-added"
        stack.tick(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1))
    assert [m["msgParam"]["content"] for m in stack.sink.robot_messages] == ["⏰ 站起来活动一下"]


# --- the time phrases ----------------------------------------------------------------------------

def at(*args):
    return dt.datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize("words, after, expected", [
    ("每天 09:00", at(2026, 12, 6, 9, 0), at(2026, 12, 7, 9, 0)),
    ("每天 9点半", at(2026, 12, 6, 8, 0), at(2026, 12, 6, 9, 30)),
    ("工作日 9点", at(2026, 12, 4, 10, 0), at(2026, 12, 7, 9, 0)),  # Friday → Monday
    ("每周五 17:00", at(2026, 12, 6, 0, 0), at(2026, 12, 11, 17, 0)),
    ("周日 8点05分", at(2026, 12, 6, 9, 0), at(2026, 12, 13, 8, 5)),
    ("每月31日 10:00", at(2027, 1, 31, 11, 0), at(2027, 3, 31, 10, 0)),  # no 31 February, no 31 April
    ("每月最后一天 18:00", at(2028, 2, 1, 0, 0), at(2028, 2, 29, 18, 0)),  # a leap year
    ("每月最后一天 18:00", at(2027, 2, 28, 18, 0), at(2027, 3, 31, 18, 0)),
    ("每月1号 0:00", at(2026, 12, 31, 23, 59), at(2027, 1, 1, 0, 0)),
    ("0 9 * * 1-5", at(2026, 12, 5, 0, 0), at(2026, 12, 7, 9, 0)),
    ("0 9 * * 0", at(2026, 12, 5, 0, 0), at(2026, 12, 6, 9, 0)),  # cron's Sunday is 0 …
    ("0 9 * * 7", at(2026, 12, 5, 0, 0), at(2026, 12, 6, 9, 0)),  # … and 7
    ("*/20 8-9 * * *", at(2026, 12, 6, 9, 40), at(2026, 12, 7, 8, 0)),
    ("0 9 1 * 1", at(2026, 12, 1, 10, 0), at(2026, 12, 7, 9, 0)),  # day or weekday, as cron has it
    ("0 0 29 2 *", at(2026, 3, 1, 0, 0), at(2028, 2, 29, 0, 0)),
])
def test_the_next_run(words, after, expected):
    when, rest = parse(words)
    assert rest == "" and when.next_after(after) == expected
    assert when.latest_at_or_before(expected) == expected


def test_the_rest_is_what_to_say():
    assert parse("每天9点提醒：喝水")[1] == "提醒：喝水"
    assert parse("0 9 * * 1-5 写日报")[1] == "写日报"
    assert parse("每分钟 测试")[0].shortest_gap_minutes(at(2026, 12, 6, 0, 0)) == 1


@pytest.mark.parametrize("words", ["明天 9点", "每天", "每天 24:00", "每天 9:60", "每月32日 9点", "每月0日 9点",
                                   "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
                                   "*/0 * * * *", "5-1 * * * *", "a * * * *"])
def test_what_is_not_a_time_is_refused(words):
    with pytest.raises(NotUnderstood):
        parse(words)


def test_times_are_read_in_tz_whatever_the_zone():
    utc = dt.timezone.utc
    when = parse("每天 09:00")[0]
    assert when.next_after(dt.datetime(2026, 12, 6, 0, 0, tzinfo=utc)) == dt.datetime(2026, 12, 6, 9, 0, tzinfo=utc)
    shanghai_nine = when.next_after(dt.datetime(2026, 12, 6, 0, 0, tzinfo=utc).astimezone(SHANGHAI))
    assert shanghai_nine.utcoffset() == dt.timedelta(hours=8) and shanghai_nine.hour == 9


def test_a_scheduled_prompt_searches_and_the_tick_keeps_the_knowledge_index_fresh(tmp_path):
    index = tmp_path / "oss" / "dingbot" / "knowledge" / ".index" / "index.json"
    with LocalStack(StackSettings(state_dir=tmp_path, sample_knowledge=True)) as stack:
        stack.send("\\定时 每分钟 提醒：喝水", conversation_id="cid-news", is_admin=True)
        assert not index.exists()
        stack.tick()
        assert index.exists()  # built on the tick: the next question does not wait for it
        stack.send("\\定时 删除 1", conversation_id="cid-news", is_admin=True)
        stack.send("\\定时 每分钟 搜索 今天的新闻", conversation_id="cid-news", is_admin=True)
        assert stack.tick(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1))["sent"] == 1
    searched = stack.sink.robot_messages[-1]["msgParam"]
    assert "根据工具的结果" in (searched.get("text") or searched.get("content"))
    assert stack.search.requests  # the search service was asked
