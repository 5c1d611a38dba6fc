#!/usr/bin/env python3
"""``make run``: chat with the bot in the terminal through the whole local chain.

Each line travels receiver → FC API → reply function → model → sessionWebhook, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.settings import add_arguments, describe, launch
from devstack.stack import LocalStack
from devstack.terminal import render_message

HELP = """You are a DingTalk user; every line you type is a message to the bot.
  /group [NAME]  talk in a group (default 演示群); the bot @-mentions you there
  /dm            talk one-to-one with the bot
  /as NAME       become another user
  /image PATH [TEXT]  send a picture (with TEXT: rich text, the picture after the text)
  /file PATH     send a file (DingTalk allows files in one-to-one chats only, so this goes there)
  /quit          stop (Ctrl-D works too)
Bot commands such as \\clear, /clear and \\help go to the bot."""


class Chat:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.user = "张三"
        self.group = "演示群"
        self.in_group = True
        self.names: dict[str, str] = {}

    @property
    def staff_id(self) -> str:
        return "staff-" + hashlib.sha1(self.user.encode()).hexdigest()[:8]

    @property
    def prompt(self) -> str:
        where = f"群「{self.group}」" if self.in_group else "单聊"
        return f"{self.user} @ {where}> "

    def local_command(self, line: str) -> bool:
        word, _, rest = line.partition(" ")
        if word == "/dm":
            self.in_group = False
        elif word == "/group":
            self.in_group, self.group = True, rest.strip() or self.group
        elif word == "/as" and rest.strip():
            self.user = rest.strip()
        elif word in ("/image", "/file"):
            self.send_media(word, rest)
        elif word in ("/quit", "/exit"):
            raise EOFError
        elif word == "/local":
            print(HELP)
        else:
            return False
        return True

    def send_media(self, word: str, rest: str) -> None:
        try:
            path, *caption = shlex.split(rest)
            data = Path(path).expanduser().read_bytes()
        except (ValueError, OSError) as exc:
            print(f"  (cannot send that: {getattr(exc, 'strerror', None) or exc}; usage: {word} PATH)")
            return
        code = self.stack.attach(data)
        if word == "/file":
            if self.in_group:
                print("  (DingTalk lets people send files to the bot only in one-to-one chats: sent there)")
            self.say("", msgtype="file", group=False,
                     content={"downloadCode": code, "fileName": Path(path).name, "fileId": code, "spaceId": "local"})
        elif caption:
            self.say("", msgtype="richText", content={"richText": [{"text": " ".join(caption)},
                                                                   {"type": "picture", "downloadCode": code}]})
        else:
            self.say("", msgtype="picture", content={"downloadCode": code})

    def say(self, text: str, *, group: Optional[bool] = None, **message: Any) -> None:
        self.names[self.staff_id] = self.user
        in_group = self.in_group if group is None else group
        conversation = f"cid-group-{self.group}" if in_group else f"cid-dm-{self.staff_id}"
        space = conversation if in_group else self.staff_id
        known = {c["outTrackId"] for c in self.stack.sink.cards_in(space)}
        result: list = []

        def send() -> None:
            with contextlib.suppress(requests.RequestException):  # reported below, in one line
                result.append(self.stack.send(text, group=in_group, conversation_id=conversation,
                                              sender_nick=self.user, sender_staff_id=self.staff_id, **message))

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        streamed = self.follow_card(space, known, sender)
        sender.join()
        if not result:
            print("  (the local stack did not answer; see .local/logs/ and start make run again)")
            return
        exchange = result[0]
        if exchange.status != 200:
            print(f"  (receiver answered HTTP {exchange.status}; see .local/logs/receiver.log)")
        for message in exchange.replies:
            body = render_message(message, self.names)
            print("🤖 " + body.replace("\n", "\n   "))
        if exchange.status == 200 and not exchange.replies and not streamed:
            print(f"  (no answer: {exchange.outcome}; see .local/logs/reply.log)")

    def follow_card(self, space: str, known: set, sender: threading.Thread) -> bool:
        """Print the cards' text as it grows, the way DingTalk shows streaming AI cards (a long answer
        continues in a next card)."""
        printed: dict = {}
        cards: list = []
        while True:
            alive = sender.is_alive()
            cards = [c for c in self.stack.sink.cards_in(space) if c["outTrackId"] not in known]
            for card in cards:
                shown, content = printed.get(card["outTrackId"], ""), card["content"]
                if content.startswith(shown) and len(content) > len(shown):
                    start = "🤖 " if not printed else ("\n🤖 " if not shown else "")
                    print(start + content[len(shown):].replace("\n", "\n   "), end="", flush=True)
                    printed[card["outTrackId"]] = content
            if not alive:
                if cards:
                    print("  ⚠️ (卡片显示失败状态)" if cards[-1]["error"] else "")
                return bool(cards)
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    stack = launch(parser.parse_args())
    if stack is None:
        return 1
    try:
        print(describe(stack))
        print("\n" + HELP + "\n  /local         show this help again\n")
        chat = Chat(stack)
        while True:
            try:
                line = input(chat.prompt).strip()
            except (EOFError, KeyboardInterrupt):
                print()
                break
            if not line:
                continue
            try:
                if not chat.local_command(line):
                    chat.say(line)
            except EOFError:
                break
            except KeyboardInterrupt:
                print("\n  (stopped waiting for this answer; Ctrl-C again at the prompt, /quit or Ctrl-D to leave)")
    finally:
        stack.stop()
        print("stopped.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nstopped.")
        sys.exit(130)
