#!/usr/bin/env python3
"""``make demo``：一段预先写好的对话走完整条本地链路；有哪里不对就以非零状态退出。"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.settings import add_arguments, describe, launch
from devstack.terminal import render_message

NAMES = {"staff-zhangsan": "张三", "staff-lisi": "李四", "staff-wangwu": "王五"}
SCRIPT = [
    # (who, in group?, text, expected outcome)
    ("张三", True, "\\clear", "cleared"),
    ("张三", True, "你好，我叫张三", "answered"),
    ("张三", True, "我刚才说了什么？", "answered"),
    ("李四", True, "给我一段代码", "answered"),
    ("张三", True, "  \\clear", "cleared"),
    ("张三", True, "我刚才说了什么？", "answered"),
    ("李四", False, "你好", "answered"),
    ("王五", True, "差旅报销要在多少天内提交？", "answered"),  # answered from the sample knowledge folder
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    parser.set_defaults(receiver_port=0)
    stack = launch(parser.parse_args())
    if stack is None:
        return 1
    failures = 0
    try:
        print(describe(stack) + "\n")
        for user, group, text, expected in SCRIPT:
            staff_id = "staff-" + {"张三": "zhangsan", "李四": "lisi"}.get(user, "wangwu")
            where = "群" if group else "单聊"
            print(f"{user} ({where})> {text}")
            exchange = stack.send(text, group=group, sender_nick=user, sender_staff_id=staff_id,
                                  conversation_id="cid-group-demo" if group else f"cid-dm-{staff_id}")
            for message in exchange.replies:
                print("🤖 " + render_message(message, NAMES).replace("\n", "\n   "))
            if exchange.outcome != expected or not exchange.replies:
                failures += 1
                print(f"  !! 应为 {expected}，实际 {exchange.outcome}（HTTP {exchange.status}）")
            print()
    finally:
        stack.stop()
    print("演示结束：所有回答都收到了。" if not failures else f"演示结束，有 {failures} 处问题。")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\n已停止。")
        sys.exit(130)
