"""Command-line and ``.env`` settings of the local stack, shared by ``make run`` and ``make demo``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

from devstack.dotenv import model_environment, read_dotenv
from devstack.loopback import PortInUse
from devstack.stack import LOCAL_APP_SECRET, ROOT, LocalStack, RealModel, StackSettings
from shared.common.errors import ConfigError
from shared.reply.config import ReplyConfig

REQUIRED_MODULES = {"requests": "requests", "openai": "openai", "fc2": "aliyun-fc2"}
PORT_OPTIONS = (("--receiver-port", "RECEIVER_PORT", "8000"), ("--fc-port", "FC_PORT", "0"),
                ("--dingtalk-port", "DINGTALK_PORT", "0"), ("--llm-port", "LLM_PORT", "0"))


def missing_dependencies() -> list:
    """Packages the stack needs that this Python lacks (run outside ``make``'s venv)."""
    import importlib.util

    return [package for module, package in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]


def port(text: str) -> int:
    """argparse type: a TCP port, or 0 for "any free port"."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 picks a free one)")
    return int(text)


def real_model(env: Mapping[str, str]) -> Tuple[Optional[RealModel], List[str]]:
    """The provider, key and model that ``.env`` names, read exactly as the deployed reply function reads
    them; None (the offline model) when no key is set for that provider, with notes saying why."""
    settings = model_environment(env)
    if not any(settings.get(k) for k in ("CHATGPT_API_KEY", "USER_API_KEY")):
        notes = ["OPENAI_API_KEY is not read: put the key in CHATGPT_API_KEY (or USER_API_KEY for other "
                 "providers)"] if env.get("OPENAI_API_KEY") else []
        return None, notes
    try:
        config = ReplyConfig.from_env(settings)
    except ConfigError as exc:
        return None, [f"using the offline model: {problem}" for problem in (str(p) for p in exc.all)]
    return RealModel(settings, f"real model {config.model} at {config.llm_base_url}"), []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fc2", action="store_true",
                        help="serve the receiver WSGI-style and invoke through the FC 2.0 API")
    parser.add_argument("--offline", action="store_true", help="use the offline model even when .env names one")
    parser.add_argument("--stream", action="store_true",
                        help="card streaming mode: answers grow in place (local DingTalk card API)")
    for option, variable, default in PORT_OPTIONS:
        parser.add_argument(option, type=port, default=os.environ.get(variable) or default,
                            help=f"(environment: {variable}; default {default}, 0 picks a free port)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local", help="where the OSS mount and logs live")


def settings_from(args: argparse.Namespace) -> StackSettings:
    dotenv = read_dotenv(ROOT / ".env")
    for warning in dotenv.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    env = dotenv.merged()
    model, notes = (None, []) if args.offline else real_model(env)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    # The receiver checks signatures with the app's secret from .env when there is one, so that
    # `make send` signs for the local stack and a deployed receiver alike.
    return StackSettings(app_secret=env.get("DINGTALK_APP_SECRET") or LOCAL_APP_SECRET,
                         state_dir=args.state_dir, fc2=args.fc2, receiver_port=args.receiver_port,
                         fc_port=args.fc_port, dingtalk_port=args.dingtalk_port, llm_port=args.llm_port,
                         stream=args.stream, stream_delay=0.01 if args.stream else 0.0, real_model=model)


def launch(args: argparse.Namespace) -> Optional[LocalStack]:
    """Start the stack, or print what to do and return None (missing packages, ports taken)."""
    missing = missing_dependencies()
    if missing:
        print(f"missing Python packages: {', '.join(missing)}. Use `make run` / `make demo`: they create .venv "
              f"and install requirements-dev.lock", file=sys.stderr)
        return None
    try:
        return LocalStack(settings_from(args)).start()
    except (PortInUse, RuntimeError) as exc:
        print(f"cannot start the local stack: {exc}", file=sys.stderr)
        return None


def describe(stack: LocalStack) -> str:
    settings = stack.settings
    model = settings.real_model.description if settings.real_model else (
        f"OFFLINE demo model at {stack.llm.url} (answers are canned; name a provider and key in .env for a real "
        f"one: LLM_ENDPOINT, CHATGPT_API_KEY or USER_API_KEY, MODEL)")
    form = "FC 2.0 (WSGI handler, FC 2.0 invoke API)" if settings.fc2 else "FC 3.0 (event handler, FC 3.0 invoke API)"
    mode = "AI card streaming (local card API)" if settings.stream else "session webhook"
    return (f"receiver  {stack.receiver_url}  [{form}]\n"
            f"FC API    {stack.fc.url}  (runs dingtalk_chatgpt_reply in {settings.workers} worker processes)\n"
            f"DingTalk  {stack.sink.url}  (answers by {mode})\n"
            f"model     {model}\n"
            f"history   {settings.state_dir / 'oss' / 'dingbot' / 'history'}\n"
            f"logs      {settings.state_dir / 'logs'}")
