"""Command-line and ``.env`` settings of the local stack, shared by ``make run`` and ``make demo``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

from devstack.dotenv import dotenv_name, model_environment, read_dotenv, unused_key_note
from devstack.loopback import PortInUse
from devstack.stack import LOCAL_APP_SECRET, ROOT, LocalStack, RealModel, StackSettings
from shared.common.bots import Bots, parse_bots
from shared.common.errors import ConfigError
from shared.reply.config import ReplyConfig

REQUIRED_MODULES = {"requests": "requests", "openai": "openai", "fc2": "aliyun-fc2"}
# Without BOTS in .env, make run shows a second robot of the same deployment, with a persona of its own.
DEMO_BOTS: Bots = {"hr": {"DINGTALK_APP_KEY": "ding-local-hr", "DINGTALK_APP_SECRET": "local-hr-secret",
                          "SYSTEM_PROMPT": "你是公司的 HR 助理，只回答人事、考勤和报销方面的问题。"}}
PORT_OPTIONS = (("--receiver-port", "RECEIVER_PORT", "8000"), ("--fc-port", "FC_PORT", "0"),
                ("--dingtalk-port", "DINGTALK_PORT", "0"), ("--llm-port", "LLM_PORT", "0"))


def missing_dependencies() -> list:
    """Packages the stack needs that this Python lacks (run outside ``make``'s venv)."""
    import importlib.util

    return [package for module, package in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]


def port(text: str) -> int:
    """argparse type: a TCP port, or 0 for "any free port"."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} 不是端口号（0–65535；0 表示自动选一个空闲端口）")
    return int(text)


def real_model(env: Mapping[str, str]) -> Tuple[Optional[RealModel], List[str]]:
    """The provider, key and model that ``.env`` names, read exactly as the deployed reply function reads
    them; None (the offline model) when no key is set for that provider, with notes saying why."""
    settings = model_environment(env)
    if not any(settings.get(k) for k in ("CHATGPT_API_KEY", "USER_API_KEY")):
        notes = ["不读取 OPENAI_API_KEY：请把 Key 写在 CHATGPT_API_KEY（其他模型服务写在 USER_API_KEY）"] \
            if env.get("OPENAI_API_KEY") else []
        return None, notes
    try:
        model = ReplyConfig.from_env(settings).model
    except ConfigError as exc:
        return None, [f"使用离线模型，因为 {dotenv_name(p.variable)} {p.hint}" for p in exc.all]
    unused = unused_key_note(env)
    return RealModel(settings, f"真实模型 {model.model}，地址 {model.base_url}"), [unused] if unused else []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fc2", action="store_true", help="接收函数按 WSGI 方式运行，并经 FC 2.0 API 调用回复函数")
    parser.add_argument("--offline", action="store_true", help=".env 里配置了模型也使用离线模型")
    parser.add_argument("--stream", action="store_true", help="卡片流式模式：回答在卡片里逐步变长（本地钉钉卡片接口）")
    parser.add_argument("--brain", choices=("chat", "bailian", "dify"), default="chat",
                        help="谁来回答：chat（模型，默认）、bailian（本地模拟的百炼应用）"
                             "或 dify（本地模拟的 Dify 应用）")
    for option, variable, default in PORT_OPTIONS:
        parser.add_argument(option, type=port, default=os.environ.get(variable) or default,
                            help=f"（环境变量 {variable}；默认 {default}，0 表示自动选空闲端口）")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local", help="OSS 挂载目录和日志放在哪里")


def local_bots(env: Mapping[str, str]) -> Bots:
    """The robots of ``.env``'s ``BOTS``, or the demo's second robot; none when ``BOTS`` is wrong (said why)."""
    try:
        return parse_bots(env.get("BOTS") or "") or DEMO_BOTS
    except ConfigError as exc:
        print(f"说明：.env 里的 BOTS {exc.hint}，本地只启动一个机器人", file=sys.stderr)
        return {}


def settings_from(args: argparse.Namespace) -> StackSettings:
    dotenv = read_dotenv(ROOT / ".env")
    for warning in dotenv.warnings:
        print(f"提醒：{warning}", file=sys.stderr)
    env = dotenv.merged()
    model, notes = (None, []) if args.offline else real_model(env)
    for note in notes:
        print(f"说明：{note}", file=sys.stderr)
    # The receiver checks signatures with the app's secret from .env when there is one, so that
    # `make send` signs for the local stack and a deployed receiver alike.
    return StackSettings(app_secret=env.get("DINGTALK_APP_SECRET") or LOCAL_APP_SECRET,
                         state_dir=args.state_dir, fc2=args.fc2, receiver_port=args.receiver_port,
                         fc_port=args.fc_port, dingtalk_port=args.dingtalk_port, llm_port=args.llm_port,
                         stream=args.stream, stream_delay=0.01 if args.stream else 0.0, real_model=model,
                         buttons=args.stream,
                         sample_knowledge=True, brain=args.brain, bots=local_bots(env))


def launch(args: argparse.Namespace) -> Optional[LocalStack]:
    """Start the stack, or print what to do and return None (missing packages, ports taken)."""
    missing = missing_dependencies()
    if missing:
        print(f"缺少 Python 包：{', '.join(missing)}。请用 make run / make demo 启动：它们会创建 .venv 并安装 "
              f"requirements-dev.lock", file=sys.stderr)
        return None
    try:
        return LocalStack(settings_from(args)).start()
    except (PortInUse, RuntimeError) as exc:
        print(f"本地链路启动不了：{exc}", file=sys.stderr)
        return None


def describe(stack: LocalStack) -> str:
    settings = stack.settings
    platforms = {"bailian": "本地模拟的百炼应用", "dify": "本地模拟的 Dify 应用"}
    model = settings.real_model.description if settings.real_model else (
        f"离线演示模型 {stack.llm.url}（固定回答；在 .env 里写上 LLM_ENDPOINT、CHATGPT_API_KEY 或 USER_API_KEY、MODEL "
        f"就会用真实模型）")
    form = "FC 2.0（WSGI 处理函数，FC 2.0 调用 API）" if settings.fc2 else "FC 3.0（事件处理函数，FC 3.0 调用 API）"
    mode = "AI 卡片流式显示（本地卡片接口，带停止、重新回答和 👍/👎 按钮）" if settings.stream else \
        "sessionWebhook 消息"
    return (f"接收函数  {stack.receiver_url}  [{form}]\n"
            f"FC API    {stack.fc.url}（在 {settings.workers} 个进程里运行 dingtalk_chatgpt_reply）\n"
            f"钉钉      {stack.sink.url}（回答方式：{mode}）\n"
            f"模型      {model}\n"
            + (f"大脑      {platforms[settings.brain]} {stack.platform.url}（会话 ID 存在 OSS 挂载目录的历史里）\n"
               if stack.platform else "") +
            (f"机器人    默认的一个，另有 {'、'.join(settings.bots)}"
             f"（同一个接收函数地址；用 /bot 名字 换一个机器人说话）\n" if settings.bots else "") +
            f"历史      {settings.state_dir / 'oss' / 'dingbot' / 'history'}\n"
            f"日志      {settings.state_dir / 'logs'}\n"
            f"另一个终端里可以用 make send ARGS=\"你好\" 发消息到这里，它会显示回答")
