#!/usr/bin/env python3
"""``make run``：在终端里和机器人聊天，消息走完整条本地链路。

每一行都经过 接收函数 → FC API → 回复函数 → 模型 → sessionWebhook，全部在 127.0.0.1 上。
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
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

HELP = """你现在是一位钉钉用户，输入的每一行都是发给机器人的消息。
  /group [群名]       在群里说话（默认「演示群」），机器人会 @你
  /dm                 和机器人单聊
  /as 名字            换成另一位用户（你一开始是张三，群管理员；换成的其他人不是管理员）
  /bot [名字]         换一个机器人说话（同一个部署里的另一个机器人，有自己的人设和上下文）；不写名字回到默认机器人
  /image 路径 [文字]  发一张图片（带文字时是图文消息，图片在文字后面）
  /file 路径          发一个文件（钉钉只允许在单聊里给机器人发文件，所以会切换到单聊）
  /stop /again /good /bad   按最后一张卡片上的按钮：停止、重新回答、👍、👎（--stream 时；回答时按 Ctrl-C 也是停止）
  /local              再显示这段说明（群管理员可以用 \\定时 每分钟 提醒：… 看机器人每分钟主动发一条消息）
  /quit               退出（Ctrl-D 也可以）
机器人自己的指令，如 \\clear、/clear、\\help，会发给机器人。
离线演示模型的触发词：「长文」出长回答（演示拆分和多张卡片）、「代码」出代码和列表、「刚才」复述上一句；
发图片时它会说看到了几张。"""


# The buttons of the answer's card, as keys (CARD_BUTTONS=on locally with --stream).
BUTTONS = {"/stop": "stop", "/again": "again", "/good": "good", "/bad": "bad"}
BUTTON_RESULTS = {"stopping": "已按下停止", "duplicate": "这个按钮已经按过了", "noted": "已记下你的反馈",
                  "answered": "已重新回答", "unknown-card": "这张卡片还没有回答完，没有这个按钮",
                  "refused": "你不能按这张卡片的按钮", "no-card": "这里还没有卡片"}
ADMIN = "张三"  # the group's admin (DingTalk's isAdmin): \设置 and \system work for them, not for the others


class Chat:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.user = ADMIN
        self.group = "演示群"
        self.in_group = True
        self.robot = ""
        self.names: dict[str, str] = {}

    @property
    def staff_id(self) -> str:
        return "staff-" + hashlib.sha1(self.user.encode()).hexdigest()[:8]

    @property
    def prompt(self) -> str:
        where = f"群「{self.group}」" if self.in_group else "单聊"
        return f"{self.user} @ {where}{f' → {self.robot}' if self.robot else ''}> "

    @property
    def face(self) -> str:
        """How an answer starts: the robot, and its name when it is not the default one."""
        return f"🤖[{self.robot}] " if self.robot else "🤖 "

    def local_command(self, line: str) -> bool:
        word, _, rest = line.partition(" ")
        if word == "/dm":
            self.in_group = False
        elif word == "/group":
            self.in_group, self.group = True, rest.strip() or self.group
        elif word == "/as" and rest.strip():
            self.user = rest.strip()
        elif word == "/bot":
            self.choose_robot(rest.strip())
        elif word in ("/image", "/file"):
            self.send_media(word, rest)
        elif word in BUTTONS and self.stack.settings.buttons:
            self.press(BUTTONS[word])
        elif word in ("/quit", "/exit"):
            raise EOFError
        elif word == "/local":
            print(HELP)
        else:
            return False
        return True

    def choose_robot(self, name: str) -> None:
        robots = self.stack.settings.bots
        if name and name not in robots:
            print(f"  （没有叫「{name}」的机器人；可选：{'、'.join(robots) or '只有默认的一个'}）")
            return
        self.robot = name
        print(f"  （现在和{'机器人「' + name + '」' if name else '默认机器人'}说话）")

    @property
    def space(self) -> str:
        """Where the cards of this chat are: the group's conversation, or the one-to-one chat's person."""
        return f"cid-group-{self.group}" if self.in_group else self.staff_id

    def press(self, action: str) -> None:
        """A button on the last card, clicked by the current user as DingTalk sends clicks; 重新回答 shows its card."""
        conversation = f"cid-group-{self.group}" if self.in_group else f"cid-dm-{self.staff_id}"
        card = self.stack.last_card(self.space)
        if card is None:
            print("  （这里还没有卡片）")
            return
        known = {c["outTrackId"] for c in self.stack.sink.cards_in(self.space)}
        result: list = []
        clicker = threading.Thread(target=lambda: result.append(self.stack.click(
            action, conversation_id=conversation, user=self.staff_id, card=card["outTrackId"])), daemon=True)
        clicker.start()
        if action == "again":
            self.follow_card(self.space, known, clicker)
        clicker.join()
        status = (result[0] if result else {}).get("status", "?")
        print(f"  （{BUTTON_RESULTS.get(status, status)}）")

    def send_media(self, word: str, rest: str) -> None:
        try:
            path, *caption = shlex.split(rest)
            data = Path(path).expanduser().read_bytes()
        except (ValueError, OSError) as exc:
            print(f"  （发不出去：{getattr(exc, 'strerror', None) or exc}；用法：{word} 路径）")
            return
        code = self.stack.attach(data)
        if word == "/file":
            if self.in_group:
                # DingTalk delivers files to a robot in one-to-one chats only; the next question follows the file.
                self.in_group = False
                print("  （钉钉只允许在单聊里给机器人发文件：已切换到单聊，接下来的提问也在单聊里，/group 回到群里）")
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
                result.append(self.stack.send(text, group=in_group, conversation_id=conversation, robot=self.robot,
                                              sender_nick=self.user, sender_staff_id=self.staff_id,
                                              is_admin=self.user == ADMIN, **message))

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            streamed = self.follow_card(space, known, sender)
        except KeyboardInterrupt:
            if not self.stack.settings.buttons or self.stack.last_card(space) is None:
                raise
            self.press("stop")  # Ctrl-C while the card streams: the 停止 button
            streamed = self.follow_card(space, known, sender)
        sender.join()
        if not result:
            print("  （本地链路没有应答；请看 .local/logs/ 里的日志，再重新运行 make run）")
            return
        exchange = result[0]
        if exchange.status != 200:
            print(f"  （接收函数返回 HTTP {exchange.status}；请看 .local/logs/receiver.log）")
        for message in exchange.replies:
            body = render_message(message, self.names)
            print(self.face + body.replace("\n", "\n   "))
        if exchange.status == 200 and not exchange.replies and not streamed:
            print(f"  （没有回答：{exchange.outcome}；请看 .local/logs/reply.log）")

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
                if content == shown:
                    continue
                if content.startswith(shown):  # the card grew: print what is new after what is there
                    start = self.face if not printed else ("\n" + self.face if not shown else "")
                    new = content[len(shown):]
                else:  # the card changed what it showed (a tool's status line gave way to the answer)
                    same = len(os.path.commonprefix([shown, content]))
                    start, new = "\n" + self.face, content[same:].lstrip("\n")
                if new:
                    print(start + new.replace("\n", "\n   "), end="", flush=True)
                printed[card["outTrackId"]] = content
            if not alive:
                if cards:
                    print("  ⚠️ (卡片显示失败状态)" if cards[-1]["error"] else "")
                    if cards[-1]["params"].get("status") == "finished":
                        print("  [按钮] /again 重新回答 · /good 👍 · /bad 👎")
                return bool(cards)
            time.sleep(0.05)


def keep_time(chat: Chat, stop: threading.Event) -> None:
    """FC's timer trigger, locally: a tick at the start of every minute (\\定时), and what the bot posts unasked
    printed as it arrives."""
    seen = 0
    while not stop.wait(60.5 - time.time() % 60):
        with contextlib.suppress(requests.RequestException, OSError):
            chat.stack.tick()
        posted = chat.stack.sink.robot_messages[seen:]
        seen += len(posted)
        for message in posted:
            param = message["msgParam"]
            text = param.get("text") or param.get("content") or ""
            where = "单聊" if isinstance(message["to"], list) else f"群 {message['to']}"
            print(f"\n🤖 （定时消息，{where}）" + text.replace("\n", "\n   ") + "\n" + chat.prompt, end="", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    stack = launch(parser.parse_args())
    if stack is None:
        return 1
    stop = threading.Event()
    try:
        print(describe(stack))
        print("\n" + HELP + "\n")
        chat = Chat(stack)
        threading.Thread(target=keep_time, args=(chat, stop), daemon=True).start()
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
                print("\n  （不再等这条回答了；在提示符处再按 Ctrl-C、输入 /quit 或按 Ctrl-D 退出）")
    finally:
        stop.set()
        stack.stop()
        print("已停止。")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\n已停止。")
        sys.exit(130)
