"""End to end through the local stack with an instant model: message in → answer at the webhook."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

from bench.stats import Section, percentile
from devstack.stack import LocalStack, StackSettings

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "bench" / "baseline"


def latencies(settings: StackSettings, count: int) -> List[float]:
    out = []
    with LocalStack(settings) as stack:
        with ThreadPoolExecutor(settings.workers) as pool:
            # One warm-up per worker process, at the same time, so each worker has had its cold start.
            list(pool.map(lambda i: stack.send("热身", conversation_id=f"cid-warm-{i}"), range(settings.workers)))
        for i in range(count):
            started = time.perf_counter()
            exchange = stack.send(f"问题 {i}", conversation_id="cid-e2e")
            out.append((time.perf_counter() - started) * 1000)
            assert exchange.status == 200 and exchange.replies, exchange
    return out


def run(section: Section, quick: bool) -> None:
    count = 50 if quick else 200
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as temporary:
        state = Path(temporary)
        base = latencies(StackSettings(state_dir=state / "baseline", fc2=True,
                                       receiver_dir=BASELINE / "dingtalk_conversation",
                                       reply_dir=BASELINE / "dingtalk_chatgpt_reply"), count)
        for name, fc2 in (("FC 2.0 form", True), ("FC 3.0 form", False)):
            ours = latencies(StackSettings(state_dir=state / name.replace(" ", ""), fc2=fc2), count)
            for q in (50, 99):
                section.add(f"message in → answer at webhook, p{q}, {name}", percentile(ours, q), percentile(base, q),
                            "ms")
    section.notes.append(f"{count} sequential messages in one conversation through receiver → FC API → reply worker → "
                         "offline model → webhook sink, all on loopback.")
