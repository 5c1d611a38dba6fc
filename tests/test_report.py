"""make report: a generated month of usage becomes one offline HTML with every chart inline, and a PNG."""

import datetime as dt
import re
import sys
from pathlib import Path

import pytest

from shared.reply.oss.blobs import MountBlobs
from shared.reply.oss.usage import ANSWERED, COMMAND, FAILED, Calendar, Entry, UsageBook, short

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import report  # noqa: E402

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 30, 20, 0, tzinfo=SHANGHAI).timestamp()
PEOPLE = [("staff-a", "张三", "cid-1", "产品群"), ("staff-b", "李四", "cid-1", "产品群"),
          ("staff-c", "王五", "cid-2", "")]


@pytest.fixture
def month(tmp_path):
    """45 days of records: the 9 older than 35 days folded into day summaries, the rest as records."""
    book = UsageBook(MountBlobs(tmp_path / "oss" / "dingbot"), Calendar("Asia/Shanghai", clock=lambda: NOW))
    expected = {"messages": 0, "tokens": 0, "cost_micro": 0, "card_calls": 0}
    for day in range(45):
        for index in range(day % 4 + 1):
            sender, nick, conversation, title = PEOPLE[(day + index) % 3]
            outcome = (ANSWERED, ANSWERED, FAILED, COMMAND)[index % 4]
            prompt, completion = (100 + day, 50 + index) if outcome == ANSWERED else (0, 0)
            at = NOW - (44 - day) * 86400 - index * 60
            entry = Entry(int(at * 1000), short(sender), short(conversation), outcome, prompt, completion, False,
                          prompt * 3 + completion * 9)
            book.write(entry, f"m{day}-{index}", {
                "at": int(at * 1000), "conversation": conversation, "title": title, "sender": sender, "nick": nick,
                "model": "qwen-plus", "prompt_tokens": prompt, "completion_tokens": completion,
                "cost_micro": entry.cost_micro, "card_calls": 7, "first_text_ms": 300 + day, "total_ms": 2000 + day,
                "outcome": {"a": "answered", "f": "failed", "c": "command"}[outcome]})
            expected["messages"] += outcome == ANSWERED
            expected["tokens"] += prompt + completion
            expected["cost_micro"] += entry.cost_micro
            expected["card_calls"] += 7
    assert book.fold(35) == 9
    return tmp_path, expected


def test_the_report_holds_every_chart_inline_and_its_numbers_match(month, capsys):
    root, expected = month
    assert report.main(["--oss-dir", str(root / "oss"), "--out", str(root / "out")]) == 0
    out = capsys.readouterr().out
    page = (root / "out" / "usage-report.html").read_text("utf-8")
    assert str(root / "out" / "usage-report.html") in out and str(root / "out" / "usage-summary.png") in out
    images = re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert len(images) == 5 and all(len(i) > 1000 for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # opens offline: nothing to fetch
    assert re.search(r'id="messages">([\d,]+)<', page).group(1) == f"{expected['messages']:,}"
    assert re.search(r'id="tokens">([\d,]+)<', page).group(1) == f"{expected['tokens']:,}"
    assert re.search(r'id="cost">¥([\d,.]+)<', page).group(1) == f"{expected['cost_micro'] / 1_000_000:,.2f}"
    assert re.search(r'id="card-calls">([\d,]+)<', page).group(1) == f"{expected['card_calls']:,}"
    assert "时段：2026-10-17 至 2026-11-30" in page
    for name in ("产品群", "张三", "李四", "王五", "已回答", "失败", "指令", "首字", "p90"):
        assert name in page
    assert (root / "out" / "usage-summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_records_yet_says_how_to_get_some(tmp_path, capsys):
    assert report.main(["--oss-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "make run" in capsys.readouterr().out


def test_feedback_on_answers_is_drawn_as_the_share_of_thumbs_down_by_model_and_day(month):
    from shared.reply.oss.card_marks import CardMarks

    root, _ = month
    blobs = MountBlobs(root / "oss" / "dingbot")
    for day, model, card, user, value in [(0, "qwen-plus", "c1", "a", "good"), (0, "qwen-plus", "c1", "b", "bad"),
                                          (0, "qwen-max", "c2", "a", "good"), (1, "qwen-plus", "c3", "a", "bad"),
                                          (1, "qwen-plus", "c3", "a", "good")]:  # a's second click replaces the first
        at = NOW - (1 - day) * 86400
        marks = CardMarks(blobs, blobs, Calendar("Asia/Shanghai", clock=lambda at=at: at), clock=lambda at=at: at)
        marks.feedback(card, user, value, {"model": model, "conversation": "cid-1"})
    assert report.main(["--oss-dir", str(root / "oss"), "--out", str(root / "out")]) == 0
    page = (root / "out" / "usage-report.html").read_text("utf-8")
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png', page)) == 6
    rows = re.findall(r"<tr><td>(qwen-[a-z]+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+%)</td></tr>", page)
    assert rows == [("qwen-max", "1", "0", "0%"), ("qwen-plus", "2", "1", "33%")]
