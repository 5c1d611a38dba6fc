#!/usr/bin/env python3
"""``make report``：把用量记录做成一份报告——一个离线可打开的 HTML（图表内嵌）和一张 PNG 概览图。

数据来源（默认：本地 make run / make demo 的 .local/oss）：
  make report ARGS="--oss-dir /path/to/bucket-copy"     已挂载或下载到本地的桶目录（里面有 dingbot/usage/）
  make report ARGS="--bucket"                           直接读 OSS_BUCKET（需要 ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET）
报告包括：每天的提问数、token 和估算费用；各会话和用量最多的用户；首字与总耗时的分位数；结果分布；
钉钉接口调用次数与免费版每月 5,000 次额度的对比。
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.dotenv import read_dotenv
from devstack.fc_context import Credentials
from shared.common.card_actions import BAD, GOOD
from shared.reply import timezone
from shared.reply.oss.blobs import ApiBlobs, Blobs, MountBlobs
from shared.reply.oss.card_marks import FEEDBACK, CardMarks
from shared.reply.oss.storage import API_PREFIX, DATA_FOLDER
from shared.reply.oss.usage import Calendar, UsageBook, summarise
from shared.reply.timezone import DEFAULT_TIMEZONE

ROOT = Path(__file__).resolve().parent.parent
MONTHLY_API_QUOTA = 5000
OUTCOME_NAMES = {"answered": "已回答", "failed": "失败", "refused": "拒绝", "command": "指令", "scheduled": "定时消息"}
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "SimHei")


def percentile(values: List[int], share: float) -> Optional[int]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def daily(book: UsageBook) -> List[Dict[str, Any]]:
    """Every day with usage, oldest first, as per-day summaries (records of recent days summarised here)."""
    days = {summary["day"]: summary for summary in book.summaries()}
    for day in book.days():
        days[day] = summarise(day, book.records(day))
    return [days[day] for day in sorted(days)]


def feedback(book: UsageBook) -> List[Dict[str, Any]]:
    """Every person's latest 👍/👎 on each answer (``oss/card_marks.py``), with its day, oldest day first."""
    marks = CardMarks(book.blobs, book.blobs, book.calendar)
    days = sorted(name.rstrip("/").rsplit("/", 1)[-1] for name in book.blobs.list(FEEDBACK))
    return [{**record, "day": day} for day in days for record in marks.feedback_on(day)]


def bad_shares(records: List[Dict[str, Any]], by: str) -> Dict[str, Dict[str, float]]:
    """For each model (``by="model"``) or day, how many answers got 👍, 👎 and the share of 👎."""
    found: Dict[str, Dict[str, float]] = {}
    for record in records:
        counts = found.setdefault(record.get(by) or "（未知）", {GOOD: 0, BAD: 0})
        counts[record["value"]] += 1
    for counts in found.values():
        counts["share"] = counts[BAD] / (counts[GOOD] + counts[BAD])
    return dict(sorted(found.items()))


def merge(days: List[Dict[str, Any]], group: str) -> List[Dict[str, Any]]:
    """Conversations or users over all days, most tokens first."""
    merged: Dict[str, Dict[str, Any]] = {}
    for day in days:
        for key, slot in day[group].items():
            total = merged.setdefault(key, {"name": slot["name"], "messages": 0, "tokens": 0, "cost_micro": 0})
            total["name"] = slot["name"] or total["name"]
            for field in ("messages", "tokens", "cost_micro"):
                total[field] += slot[field]
    return sorted(merged.values(), key=lambda slot: slot["tokens"], reverse=True)


def cjk_font() -> Optional[str]:
    """A font with Chinese glyphs, if this machine has one (``make report`` installs one from PyPI)."""
    from matplotlib import font_manager

    try:
        import mplfonts

        folder = Path(mplfonts.__file__).parent / "fonts"
        for path in folder.glob("NotoSansCJKsc-Regular.otf"):
            font_manager.fontManager.addfont(str(path))
    except ImportError:
        pass
    known = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in known), None)


class Charts:
    """Figures as inline PNGs. Chart text stays ASCII unless a Chinese font is available; the HTML around
    each chart says what it shows."""

    def __init__(self, font: Optional[str]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.font = font
        if font:
            plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]

    def title(self, axes: Any, text: str) -> None:
        if self.font:
            axes.set_title(text)

    def png(self, figure: Any) -> bytes:
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=110)
        self.plt.close(figure)
        return buffer.getvalue()

    def per_day(self, axes: Any, days: List[Dict[str, Any]], what: str) -> None:
        labels = [day["day"][5:] for day in days]
        if what == "messages":
            from matplotlib.ticker import MaxNLocator

            axes.bar(labels, [day["messages"] for day in days], color="#3b82f6")
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
            self.title(axes, "每天的提问数")
        elif what == "tokens":
            prompt = [day["prompt_tokens"] for day in days]
            axes.bar(labels, prompt, color="#1d4ed8")
            axes.bar(labels, [day["completion_tokens"] for day in days], bottom=prompt, color="#93c5fd")
            self.title(axes, "每天的 token（深色输入，浅色输出）")
        elif what == "cost":
            axes.plot(labels, [day["cost_micro"] / 1_000_000 for day in days], marker="o", color="#059669")
            self.title(axes, "每天的估算费用（元）")
        elif what == "latency":
            for field, color in (("first_text_ms", "#f59e0b"), ("total_ms", "#dc2626")):
                axes.plot(labels, [(percentile(day[field], 0.5) or 0) / 1000 for day in days], color=color)
                axes.plot(labels, [(percentile(day[field], 0.9) or 0) / 1000 for day in days], color=color,
                          linestyle="--")
            self.title(axes, "耗时（秒）：首字/总计，实线 p50，虚线 p90")
        axes.tick_params(axis="x", labelrotation=60, labelsize=7)

    def chart(self, days: List[Dict[str, Any]], what: str) -> bytes:
        figure, axes = self.plt.subplots(figsize=(8, 3))
        self.per_day(axes, days, what)
        return self.png(figure)

    def card_calls(self, months: Dict[str, int]) -> bytes:
        figure, axes = self.plt.subplots(figsize=(8, 3))
        axes.bar(list(months), list(months.values()), color="#8b5cf6")
        axes.axhline(MONTHLY_API_QUOTA, color="#dc2626", linestyle="--")
        self.title(axes, "每月钉钉接口调用（虚线：免费版 5,000 次）")
        return self.png(figure)

    def bad_share(self, records: List[Dict[str, Any]]) -> bytes:
        """The share of 👎 among the day's 👍/👎, one line per model."""
        figure, axes = self.plt.subplots(figsize=(8, 3))
        days = sorted({record["day"] for record in records})
        for model in sorted({record.get("model") or "（未知）" for record in records}):
            per_day = bad_shares([r for r in records if (r.get("model") or "（未知）") == model], "day")
            axes.plot([day[5:] for day in days], [per_day[day]["share"] * 100 if day in per_day else None
                                                  for day in days], marker="o", label=model)
        axes.set_ylim(0, 100)
        if records:
            axes.legend(fontsize=7)
        self.title(axes, "每天回答中 👎 的比例（%），按模型")
        axes.tick_params(axis="x", labelrotation=60, labelsize=7)
        return self.png(figure)

    def overview(self, days: List[Dict[str, Any]]) -> bytes:
        figure, grid = self.plt.subplots(2, 2, figsize=(12, 7))
        for axes, what in zip(grid.flat, ("messages", "tokens", "cost", "latency")):
            self.per_day(axes, days, what)
        return self.png(figure)


def table(headers: List[str], rows: List[List[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def yuan(micro: int) -> str:
    return f"¥{micro / 1_000_000:,.2f}"


def render(days: List[Dict[str, Any]], charts: Charts, votes: Optional[List[Dict[str, Any]]] = None) -> str:
    totals = {field: sum(day[field] for day in days)
              for field in ("messages", "prompt_tokens", "completion_tokens", "cost_micro", "card_calls")}
    months: Dict[str, int] = {}
    outcomes: Dict[str, int] = {}
    for day in days:
        months[day["day"][:7]] = months.get(day["day"][:7], 0) + day["card_calls"]
        for outcome, count in day["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    first = [v for day in days for v in day["first_text_ms"]]
    total = [v for day in days for v in day["total_ms"]]

    def image(data: bytes, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'

    sections = [
        ("每天的提问数", image(charts.chart(days, "messages"), "每天的提问数")),
        ("每天的 token（深色输入，浅色输出）", image(charts.chart(days, "tokens"), "每天的 token")),
        ("每天的估算费用（元）", image(charts.chart(days, "cost"), "每天的估算费用")),
        ("耗时（秒）：黄色首字、红色总计，实线 p50、虚线 p90", image(charts.chart(days, "latency"), "耗时")),
        ("每月钉钉接口调用（红色虚线：免费版每月 5,000 次）", image(charts.card_calls(months), "钉钉接口调用")),
        ("各会话", table(["会话", "提问", "token", "估算费用"], [[s["name"] or "（单聊或未命名）", s["messages"],
                                                                  f"{s['tokens']:,}", yuan(s["cost_micro"])]
                                                                 for s in merge(days, "conversations")])),
        ("用量最多的用户", table(["用户", "提问", "token", "估算费用"], [[s["name"] or "（未知）", s["messages"],
                                                                   f"{s['tokens']:,}", yuan(s["cost_micro"])]
                                                                  for s in merge(days, "users")[:10]])),
        ("耗时分位数（毫秒）", table(["", "p50", "p90", "p99"],
                                   [["首字", *(percentile(first, q) for q in (0.5, 0.9, 0.99))],
                                    ["总计", *(percentile(total, q) for q in (0.5, 0.9, 0.99))]])),
        ("结果", table(["结果", "条数"], [[OUTCOME_NAMES.get(k, k), v] for k, v in sorted(outcomes.items())])),
    ]
    if votes:
        sections += [
            ("回答反馈：每天 👎 的比例，按模型（卡片上的 👍/👎，每人每个回答算一次）",
             image(charts.bad_share(votes), "每天 👎 的比例")),
            ("回答反馈，按模型", table(["模型", "👍", "👎", "👎 占比"], [
                [model, int(c[GOOD]), int(c[BAD]), f"{c['share']:.0%}"]
                for model, c in bad_shares(votes, "model").items()])),
        ]
    period = f"{days[0]['day']} 至 {days[-1]['day']}" if days else "（还没有用量记录）"
    summary = (f'<p class="totals">时段：{period}　提问 <b id="messages">{totals["messages"]:,}</b> 条　'
               f'token <b id="tokens">{totals["prompt_tokens"] + totals["completion_tokens"]:,}</b>　'
               f'估算费用 <b id="cost">{yuan(totals["cost_micro"])}</b>　'
               f'钉钉接口调用 <b id="card-calls">{totals["card_calls"]:,}</b> 次</p>')
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#111}img{max-width:100%}"
             "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}"
             "td:first-child{text-align:left}.totals b{font-size:1.3em}")
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>dingbot-fc 用量报告</title>'
            f"<style>{style}</style></head><body><h1>dingbot-fc 用量报告</h1>{summary}{body}"
            f"<p>费用按公开价目估算（可用 MODEL_PRICES 覆盖），仅供参考。</p></body></html>")


def open_blobs(args: argparse.Namespace) -> Blobs:
    if not args.bucket:
        return MountBlobs(args.oss_dir / DATA_FOLDER)
    env = read_dotenv(ROOT / ".env").merged()
    key_id, secret = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if not (env.get("OSS_BUCKET") and env.get("OSS_ENDPOINT") and key_id and secret):
        raise SystemExit("读桶需要 .env 里的 OSS_BUCKET、OSS_ENDPOINT，"
                         "以及 shell 里的 ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET")
    from shared.reply.config.storage import oss_region_of

    endpoint = env["OSS_ENDPOINT"].replace("-internal.aliyuncs.com", ".aliyuncs.com")
    region = env.get("OSS_REGION") or oss_region_of(endpoint) or env.get("REGION", "")
    # The mount maps the bucket's /dingbot folder, so the mount's dingbot/usage/ is dingbot/dingbot/usage/.
    return ApiBlobs.connect(endpoint, env["OSS_BUCKET"], Credentials(key_id, secret, ""), API_PREFIX + DATA_FOLDER
                            + "/", region)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oss-dir", type=Path, default=ROOT / ".local" / "oss",
                        help="OSS 挂载目录或桶的本地副本（默认本地 make run 的 .local/oss）")
    parser.add_argument("--bucket", action="store_true", help="直接读 .env 里的 OSS_BUCKET")
    parser.add_argument("--out", type=Path, default=ROOT / ".local" / "report", help="报告写到哪个目录")
    parser.add_argument("--tz", default=read_dotenv(ROOT / ".env").merged().get("TZ") or DEFAULT_TIMEZONE,
                        help="按哪个时区分天（默认取 .env 的 TZ，与回复函数一致）")
    args = parser.parse_args(argv)
    problem = timezone.problem(args.tz)
    if problem:
        print(f"时区「{args.tz}」不认识（拼写对吗？例如 Asia/Shanghai）")
        return 2
    if not args.bucket and not (args.oss_dir / DATA_FOLDER).is_dir():
        print(f"{args.oss_dir} 里没有 {DATA_FOLDER}/：先运行 make run 或 make demo，或用 --oss-dir 指向桶的副本")
        return 1
    book = UsageBook(open_blobs(args), Calendar(args.tz))
    days, votes = daily(book), feedback(book)
    font = cjk_font()
    charts = Charts(font)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "usage-report.html").write_text(render(days, charts, votes), encoding="utf-8")
    (args.out / "usage-summary.png").write_bytes(charts.overview(days))
    print(f"报告：{args.out / 'usage-report.html'}（{len(days)} 天）")
    print(f"概览图：{args.out / 'usage-summary.png'}")
    if not font:
        print("说明：本机没有中文字体，PNG 里的图表没有标题（HTML 里有）；make report 会自动安装一个")
    return 0


if __name__ == "__main__":
    sys.exit(main())
