#!/usr/bin/env python3
"""``make bench``: every figure as ours / baseline, measured in this run.

The report goes to ``.local/bench/performance.md``; ``--write`` puts it in ``docs/performance.md``
(the committed figures the README quotes) instead.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import brains, cards, cold_start, end_to_end, first_text, knowledge, latency, receiver, reply, tool_loop  # noqa: E402
from bench.stats import Section, markdown  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run, not for the report)")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md (the committed report)")
    parser.add_argument("--output", type=Path, help="write the report here (default .local/bench/performance.md)")
    parser.add_argument("--latency", default="", type=latency.parse_latencies,
                        help="the latency model's figures, e.g. dingtalk=0.08,mount=0.02,first_token=1.0 "
                             "(seconds; tokens_per_second too); defaults and sources in bench/latency.py")
    args = parser.parse_args()
    args.output = args.output or (ROOT / "docs" / "performance.md" if args.write else
                                  ROOT / ".local" / "bench" / "performance.md")
    logging.basicConfig(level=logging.CRITICAL, handlers=[logging.NullHandler()])
    sections = {key: Section(title) for key, title in (
        ("handler", "Receiver: in-process handler time"),
        ("ack", "Receiver: ack latency over loopback HTTP"),
        ("cold", "Cold start on CPython 3.10 (FC's python3.10 runtime)"),
        ("memory", "Memory"),
        ("latency", "Cold and warm paths under FC's latencies (the reply function, card mode)"),
        ("reply", "Reply overhead (everything but the model)"),
        ("e2e", "End to end through the local stack"),
        ("first", "Time to first visible text (streaming mode)"),
        ("cards", "DingTalk card API calls per answer"),
        ("brains", "The brain seam: Bailian and Dify against the chat model"),
        ("knowledge", "Knowledge index (embedded, one instance)"),
        ("size", "Code packages"),
    )}
    started = time.monotonic()
    steps = [
        ("receiver handler", lambda: receiver.handler_microseconds(sections["handler"], 500 if args.quick else 3000)),
        ("receiver ack latency", lambda: receiver.ack_latency(sections["ack"], args.quick)),
        ("cold starts and package sizes", lambda: cold_start.cold_starts(sections, args.quick, args.latency)),
        ("reply overhead", lambda: reply.run(sections["reply"], args.quick)),
        ("tool loop", lambda: tool_loop.run(sections["reply"], args.quick)),
        ("end to end", lambda: end_to_end.run(sections["e2e"], args.quick)),
        ("first visible text", lambda: first_text.run(sections["first"], args.quick)),
        ("card API calls", lambda: cards.run(sections["cards"], args.quick)),
        ("brains", lambda: brains.run(sections["brains"], args.quick)),
        ("knowledge index", lambda: knowledge.run(sections["knowledge"], args.quick)),
    ]
    skipped = []
    for name, step in steps:
        print(f"bench: {name} ...", flush=True)
        note = step()
        if note:
            skipped.append(note)
    elapsed = time.monotonic() - started
    table = markdown([s for s in sections.values() if s.rows])
    print("\n" + table)
    header = (f"# Performance\n\nProduced by `make bench` (`{' '.join(['python bench/run.py'] + sys.argv[1:])}`) on "
              f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_implementation()} "
              f"{platform.python_version()} for the harness, in {elapsed:.0f} s. Every baseline figure is the "
              "tutorial's approach (`bench/baseline/`, written from its description) measured in the same run on the "
              "same machine; ratios are ours / baseline (below 1 is better for times and sizes).\n\n"
              + "".join(f"- {note}\n" for note in skipped))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(header + "\n" + table + "\n", encoding="utf-8")
    print(f"\nwritten to {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
