"""Reply overhead: everything the reply function does except waiting for the model (history read and
write, prompt build, webhook post), per message, by HISTORY_LENGTH and by conversation age."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

from bench.receiver import environment
from bench.stats import Section
from devstack.fake_dingtalk import callback_body, encode
from devstack.fake_fc import die_with_parent
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.llm.model import Delta
from shared.reply.llm.prompt import Prompt
from shared.reply.llm.reasoning import Split
from shared.reply.oss.claims import KEEP as CLAIMS_KEPT
from shared.reply.oss.usage import FOLDER

ROOT = Path(__file__).resolve().parent.parent
USAGE_FOLDER = FOLDER.strip("/")
ANSWER = "这是一个固定的回答，长度和一个普通回答差不多。" * 4


class InstantModel:
    """The model answers at once, streamed or not, with or without tools: the figure is the function's own work."""

    used_model, usage, overall_deadline = "instant", None, None

    def prepare(self) -> None:
        return None

    def answer(self, prompt: Prompt) -> Split:
        return Split(ANSWER, "")

    def stream(self, prompt: Prompt, tools: Optional[list] = None) -> Iterator[Delta]:
        yield Delta(ANSWER)


def ours(oss: Path, sink_url: str, history_length: int) -> Callable[[int], None]:
    """The real FC entry (config, claim, history, prompt, webhook), the model swapped for an instant one."""
    import openai  # noqa: F401  (a warm instance has loaded the SDK: preload.py would load it during the batches)

    import shared.reply.app
    import shared.reply.llm.model

    shared.reply.llm.model.ChatModel = lambda settings: InstantModel()
    env = {"CHATGPT_API_KEY": "k", "OSS_MOUNT_POINT": str(oss), "HISTORY_LENGTH": str(history_length),
           "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1"}

    def one(i: int) -> None:
        body = callback_body(f"问题 {i}", webhook_base=sink_url, conversation_id="cid-bench", msg_id=f"m{i}")
        event = parse_callback(encode(body)).to_payload()
        assert json.loads(shared.reply.app.handle_event(event, None, env))["status"] == "answered"

    return one


def baseline(oss: Path, sink_url: str, history_length: int) -> Callable[[int], None]:
    spec = importlib.util.spec_from_file_location("bench_baseline_reply",
                                                  ROOT / "bench" / "baseline" / "dingtalk_chatgpt_reply" / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ask = lambda messages: ANSWER
    webhook = callback_body("", webhook_base=sink_url)["sessionWebhook"]

    def one(i: int) -> None:
        event = json.dumps({"sessionExpiredTime": "", "sessionWebhook": webhook, "question": f"问题 {i}",
                            "id": "张三"}).encode()
        with environment({"OSS_MOUNT_POINT": str(oss), "HISTORY_LENGTH": str(history_length)}):
            module.handler(event, None)

    return one


def per_message_ms(one: Callable[[int], None], start: int, count: int, batches: int = 1) -> float:
    """Mean per message within a batch, best of ``batches`` consecutive batches: on a shared VM the
    slower batches measure the neighbours, not the code."""
    means = []
    for batch in range(batches):
        first = start + batch * count
        started = time.perf_counter()
        for i in range(first, first + count):
            one(i)
        means.append((time.perf_counter() - started) / count * 1000)
    return min(means)


@contextmanager
def sink_process() -> Iterator[str]:
    """The webhook sink in its own process, so its threads do not share the measured process's GIL."""
    process = subprocess.Popen([sys.executable, "-m", "devstack.fake_dingtalk"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=die_with_parent)
    try:
        yield json.loads(process.stdout.readline())["url"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(section: Section, quick: bool) -> None:
    with sink_process() as sink_url:
        _run(section, quick, sink_url)


def measure(factory: Callable, sink: str, count: int, ages: tuple) -> Dict:
    """Per-message times by HISTORY_LENGTH (history already full) and by conversation age."""
    with tempfile.TemporaryDirectory(prefix="bench-reply-") as temporary:
        return _measure(factory, Path(temporary), sink, count, ages)


def _measure(factory: Callable, oss: Path, sink: str, count: int, ages: tuple) -> Dict:
    by_length = {}
    for length in (1, 5, 20, 100):
        (oss / f"len{length}").mkdir()
        one = factory(oss / f"len{length}", sink, length)
        per_message_ms(one, 0, length + 5)
        by_length[length] = per_message_ms(one, length + 5, count, batches=5)
    (oss / "age").mkdir()
    one = factory(oss / "age", sink, 5)
    by_age, sent = {}, 0
    for age in ages:
        if age > sent:
            per_message_ms(one, sent, age - sent)
        start = max(age, sent)
        by_age[start] = per_message_ms(one, start, count // 5, batches=5)
        sent = start + count
    files = [p for p in (oss / "age").rglob("*") if p.is_file()]
    usage = sum(p.stat().st_size for p in files if USAGE_FOLDER in p.relative_to(oss / "age").parts)
    return {"length": by_length, "age": by_age, "bytes": sum(p.stat().st_size for p in files) - usage,
            "usage": usage}


def _run(section: Section, quick: bool, sink: str) -> None:
    count = 50 if quick else 200
    ages = (0, 100, 1000) if quick else (0, 100, 1000, 3000)
    results = {name: measure(factory, sink, count, ages) for name, factory in (("ours", ours), ("baseline", baseline))}
    o, b = results["ours"], results["baseline"]
    for length in (1, 5, 20, 100):
        row = section.add(f"per message, HISTORY_LENGTH={length} (history full)", o["length"][length],
                          b["length"][length], "ms")
        if length == 5:
            row.target, row.met = "< 5 ms warm", o["length"][length] < 5
    starts = sorted(o["age"])
    for age in starts:
        section.add(f"per message after {age:,} earlier messages (HISTORY_LENGTH=5)", o["age"][age], b["age"][age],
                    "ms")
    full = min(a for a in starts if a >= CLAIMS_KEPT)
    growth_ours = o["age"][starts[-1]] / o["age"][full]
    row = section.add(f"growth from {full:,} to {starts[-1]:,} earlier messages (ours has reached its bounds)",
                      growth_ours, b["age"][starts[-1]] / b["age"][full], "×")
    row.target, row.met = "flat (< 1.5×)", growth_ours < 1.5
    messages = starts[-1] + count
    section.add(f"history and claims stored after {messages:,} messages", o["bytes"] / 1024, b["bytes"] / 1024, "KiB")
    section.notes.append(f"Besides, ours wrote {o['usage'] / 1024:,.0f} KiB of usage records for those {messages:,} "
                         f"messages ({o['usage'] / messages:.0f} bytes each, one a message, a day's records folded "
                         "into one summary after USAGE_KEEP_DAYS); the baseline keeps no usage.")
    section.notes.append("In-process, warm, the model stubbed to answer at once; each message reads and writes the "
                         "history on a local disk standing in for the OSS mount and posts the answer to a loopback "
                         "webhook, best of several batches. Ours also claims the msgId before answering (a "
                         "create-if-absent and a read-back) and marks it handled after, and keeps one record per turn "
                         "instead of rewriting a file: the price of answering exactly once without locks.")
