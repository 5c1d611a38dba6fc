#!/usr/bin/env python3
"""``make send``：向接收函数（本地或已部署）发送一条签名正确的钉钉回调，并显示结果。

用法：
  make send ARGS="你好 世界"                                  发给本地 make run，等它回答并显示出来
  make send ARGS="--dm 你好"                                  以单聊消息发送
  make send ARGS="--url https://xxx.cn-hangzhou.fcapp.run 你好"  发给已部署的接收函数

签名用的 AppSecret 默认取环境变量或 .env 里的 DINGTALK_APP_SECRET，地址默认取 RECEIVER_URL，
都没有时发给本地 make run（http://127.0.0.1:8000）。发给已部署的函数时，回答发不回这台电脑
（消息里的 sessionWebhook 是假的），请到回复函数的日志里看模型的回答。
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.dotenv import read_dotenv
from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.stack import LOCAL_APP_SECRET, STACK_FILE
from devstack.terminal import render_message, unreachable

ROOT = Path(__file__).resolve().parent.parent
LOCAL_RECEIVER = "http://127.0.0.1:8000"
ANSWER_WAIT_SECONDS = 90
HINTS = {403: "签名被拒绝：--secret 是不是应用的 AppSecret？本机时间准不准？",
         400: "消息体被认为格式不对",
         502: "接收函数调不到回复函数：检查 ENDPOINT、CHATGPT_FUNCTION/SERVICE_NAME 和接收函数的角色权限"}


def local_stack(url: str, state_dir: Path) -> Optional[Dict[str, Any]]:
    """The running ``make run`` whose receiver is ``url``, as it described itself, or None."""
    try:
        stack = json.loads((state_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return stack if stack.get("receiver", "").rstrip("/") == url.rstrip("/") else None


def wait_for_answer(dingtalk: str, session: str, space: str, since: float) -> str:
    """What the local stack's bot posted for this message (messages, or the text of its cards)."""
    deadline = time.monotonic() + ANSWER_WAIT_SECONDS
    while time.monotonic() < deadline:
        answers = requests.get(f"{dingtalk}/local/answers", params={"session": session, "space": space},
                               timeout=5).json()
        cards = [c for c in answers["cards"] if c["created"] >= since - 1]
        if answers["messages"]:
            return "\n".join(render_message(m, {}) for m in answers["messages"])
        if cards and all(c["finalized"] for c in cards):
            return "".join(c["content"] for c in cards)
        time.sleep(0.2)
    return ""


def main() -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env-file", type=Path, default=ROOT / ".env", help="读取哪个 .env（默认仓库根目录的 .env）")
    dotenv = read_dotenv(pre.parse_known_args()[0].env_file)
    env = dotenv.merged()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[pre])
    parser.add_argument("text", nargs="*", help="消息内容，可以含空格（默认：你好）")
    parser.add_argument("--url", default=env.get("RECEIVER_URL") or LOCAL_RECEIVER,
                        help=f"接收函数地址（默认 RECEIVER_URL，否则本地 make run 的 {LOCAL_RECEIVER}）")
    parser.add_argument("--secret", default=env.get("DINGTALK_APP_SECRET"),
                        help="应用的 AppSecret（默认 .env 或环境变量里的 DINGTALK_APP_SECRET；发给本地时可不填）")
    parser.add_argument("--dm", action="store_true", help="以单聊消息发送（默认是群里 @机器人 的消息）")
    parser.add_argument("--msgtype", default="text", choices=["text", "richText", "audio", "picture", "file"])
    parser.add_argument("--skew", type=int, default=0, help="把时间戳偏移这么多秒（测试签名时间窗口）")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local", help="本地 make run 的状态目录")
    args = parser.parse_args()
    for warning in dotenv.warnings:
        print(f"提醒：{warning}", file=sys.stderr)
    text = " ".join(args.text) or "你好"
    local = args.url.startswith(("http://127.0.0.1", "http://localhost"))
    stack = local_stack(args.url, args.state_dir) if local else None
    if not args.secret and local:
        args.secret = LOCAL_APP_SECRET
    if not args.secret:
        parser.error("没有 AppSecret：用 --secret 传入，或在 .env 里设置 DINGTALK_APP_SECRET（cp .env.example .env）")
    now = int(time.time() * 1000) + args.skew * 1000
    staff = "staff-make-send"
    conversation = f"cid-dm-{staff}" if args.dm else "cid-group-演示群"
    body = callback_body(text, webhook_base=stack["dingtalk"] if stack else "https://oapi.dingtalk.com",
                         group=not args.dm, msgtype=args.msgtype, now_ms=now, conversation_id=conversation,
                         sender_staff_id=staff, sender_nick="make send")
    started, since = time.monotonic(), time.time()
    try:
        response = requests.post(args.url, data=encode(body), headers=signed_headers(args.secret, now), timeout=15)
    except requests.RequestException as exc:
        print(unreachable(args.url, exc), file=sys.stderr)
        return 2
    print(f"HTTP {response.status_code}，用时 {(time.monotonic() - started) * 1000:.0f} 毫秒  msgId={body['msgId']}")
    if response.status_code != 200:
        print(response.text[:500])
        if response.status_code in HINTS:
            print("提示：" + HINTS[response.status_code])
        return 1
    if stack is None:
        where = "本地接收函数（不是由 make run 启动的）" if local else "已部署的接收函数"
        print(f"{where}已接受这条消息；回答发往消息里的 sessionWebhook，这里看不到，请查看回复函数的日志。")
        return 0
    session = body["sessionWebhook"].rsplit("session=", 1)[-1]
    answer = wait_for_answer(stack["dingtalk"], session, conversation if not args.dm else staff, since)
    if not answer:
        print(f"{ANSWER_WAIT_SECONDS} 秒内没有等到回答；请看 {args.state_dir / 'logs' / 'reply.log'}")
        return 1
    print("🤖 " + answer.replace("\n", "\n   "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
