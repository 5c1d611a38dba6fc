#!/usr/bin/env python3
"""Send one correctly signed DingTalk callback to a receiver URL (local or deployed) and print the result.

Example:
  python scripts/send_test_message.py --url https://xxx.cn-hangzhou.fcapp.run --secret "$DINGTALK_APP_SECRET" 你好

A deployed receiver answers 200 when the signature checks out and the reply function was
invoked; the reply itself cannot reach this laptop (its session webhook is a fake), so look
at the reply function's logs for the model's answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.fake_dingtalk import callback_body, encode, signed_headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", default="你好")
    parser.add_argument("--url", default=os.environ.get("RECEIVER_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--secret", default=os.environ.get("DINGTALK_APP_SECRET"),
                        help="the app's AppSecret (default: $DINGTALK_APP_SECRET)")
    parser.add_argument("--webhook-base", default="https://oapi.dingtalk.com",
                        help="where the reply should post (only DingTalk hosts are allowed by default)")
    parser.add_argument("--dm", action="store_true", help="a one-to-one message instead of a group @-message")
    parser.add_argument("--msgtype", default="text", choices=["text", "richText", "audio", "picture", "file"])
    parser.add_argument("--skew", type=int, default=0, help="shift the timestamp by this many seconds")
    args = parser.parse_args()
    if not args.secret:
        parser.error("no secret: pass --secret or set DINGTALK_APP_SECRET")
    now = int(time.time() * 1000) + args.skew * 1000
    body = callback_body(args.text, webhook_base=args.webhook_base, group=not args.dm, msgtype=args.msgtype, now_ms=now)
    started = time.monotonic()
    try:
        response = requests.post(args.url, data=encode(body), headers=signed_headers(args.secret, now), timeout=15)
    except requests.RequestException as exc:
        print(f"cannot reach {args.url}: {exc}")
        return 2
    elapsed = (time.monotonic() - started) * 1000
    print(f"HTTP {response.status_code} in {elapsed:.0f} ms  msgId={body['msgId']}")
    print(response.text[:500])
    hints = {403: "signature rejected: is --secret the app's AppSecret, and the machine clock right?",
             400: "body rejected as malformed", 502: "receiver could not invoke the reply function: "
             "check ENDPOINT, CHATGPT_FUNCTION/SERVICE_NAME and the receiver's role"}
    if response.status_code in hints:
        print("hint: " + hints[response.status_code])
    return 0 if response.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
