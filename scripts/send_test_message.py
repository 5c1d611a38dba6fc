#!/usr/bin/env python3
"""Send one correctly signed DingTalk callback to a receiver URL (local or deployed) and print the result.

Example:
  make send ARGS='--url https://xxx.cn-hangzhou.fcapp.run 你好'

The secret defaults to DINGTALK_APP_SECRET and the URL to RECEIVER_URL, from the environment or
.env (the same file make doctor and s deploy read).

A deployed receiver answers 200 when the signature checks out and the reply function was
invoked; the reply itself cannot reach this laptop (its session webhook is a fake), so look
at the reply function's logs for the model's answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.dotenv import read_dotenv
from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.stack import LOCAL_APP_SECRET

ROOT = Path(__file__).resolve().parent.parent


def unreachable(url: str, exc: requests.RequestException) -> str:
    """One readable line for a request that got no HTTP answer."""
    if isinstance(exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                        requests.exceptions.InvalidURL)):
        return f"{url!r} is not an http(s) URL"
    if isinstance(exc, requests.Timeout):
        return f"cannot reach {url}: no answer within 15 s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"cannot reach {url}: the TLS handshake failed"
    return (f"cannot reach {url}: nothing answered (wrong address, or the receiver is not running; locally, "
            f"start it with make run in another terminal)")


def main() -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env-file", type=Path, default=ROOT / ".env")
    dotenv = read_dotenv(pre.parse_known_args()[0].env_file)
    env = dotenv.merged()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[pre])
    parser.add_argument("text", nargs="?", default="你好")
    parser.add_argument("--url", default=env.get("RECEIVER_URL") or "http://127.0.0.1:8000",
                        help="the receiver (default: RECEIVER_URL, else the local stack's http://127.0.0.1:8000)")
    parser.add_argument("--secret", default=env.get("DINGTALK_APP_SECRET"),
                        help="the app's AppSecret (default: DINGTALK_APP_SECRET from the environment or .env; the "
                             "local stack's own when neither sets it and --url is the local stack)")
    parser.add_argument("--webhook-base", default="https://oapi.dingtalk.com",
                        help="where the reply should post (only DingTalk hosts are allowed by default)")
    parser.add_argument("--dm", action="store_true", help="a one-to-one message instead of a group @-message")
    parser.add_argument("--msgtype", default="text", choices=["text", "richText", "audio", "picture", "file"])
    parser.add_argument("--skew", type=int, default=0, help="shift the timestamp by this many seconds")
    args = parser.parse_args()
    for warning in dotenv.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.secret and args.url.startswith(("http://127.0.0.1", "http://localhost")):
        args.secret = LOCAL_APP_SECRET
    if not args.secret:
        parser.error("no secret: pass --secret, or set DINGTALK_APP_SECRET in .env (cp .env.example .env)")
    now = int(time.time() * 1000) + args.skew * 1000
    body = callback_body(args.text, webhook_base=args.webhook_base, group=not args.dm, msgtype=args.msgtype, now_ms=now)
    started = time.monotonic()
    try:
        response = requests.post(args.url, data=encode(body), headers=signed_headers(args.secret, now), timeout=15)
    except requests.RequestException as exc:
        print(unreachable(args.url, exc), file=sys.stderr)
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
