"""Command-line and ``.env`` settings of the local stack, shared by ``make run`` and ``make demo``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional

from devstack.loopback import PortInUse
from devstack.stack import ROOT, LocalStack, RealModel, StackSettings

KEY_VARIABLES = ("OPENAI_API_KEY", "CHATGPT_API_KEY", "USER_API_KEY")
REQUIRED_MODULES = {"requests": "requests", "openai": "openai", "fc2": "aliyun-fc2",
                    "alibabacloud_fc20230330": "alibabacloud-fc20230330"}


def missing_dependencies() -> list:
    """Packages the stack needs that this Python lacks (run outside ``make``'s venv)."""
    import importlib.util

    return [package for module, package in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]


def read_dotenv(path: Path) -> Dict[str, str]:
    """``NAME=value`` lines; ``#`` comments, ``export`` and surrounding quotes are allowed."""
    values: Dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def real_model(env: Mapping[str, str]) -> Optional[RealModel]:
    """The real endpoint when a key is configured, else None (the offline model)."""
    key = next((env[name] for name in KEY_VARIABLES if env.get(name)), None)
    if not key:
        return None
    return RealModel(api_key=key, endpoint=env.get("ENDPOINT") or "https://api.openai.com", model=env.get("MODEL"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fc2", action="store_true",
                        help="serve the receiver WSGI-style and invoke through the FC 2.0 API")
    parser.add_argument("--offline", action="store_true", help="use the offline model even when an API key is set")
    parser.add_argument("--stream", action="store_true",
                        help="card streaming mode: answers grow in place (local DingTalk card API)")
    parser.add_argument("--receiver-port", type=int, default=int(os.environ.get("RECEIVER_PORT", 8000)))
    parser.add_argument("--fc-port", type=int, default=int(os.environ.get("FC_PORT", 0)))
    parser.add_argument("--dingtalk-port", type=int, default=int(os.environ.get("DINGTALK_PORT", 0)))
    parser.add_argument("--llm-port", type=int, default=int(os.environ.get("LLM_PORT", 0)))
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local", help="where the OSS mount and logs live")


def settings_from(args: argparse.Namespace) -> StackSettings:
    env = {**read_dotenv(ROOT / ".env"), **os.environ}
    return StackSettings(state_dir=args.state_dir, fc2=args.fc2, receiver_port=args.receiver_port,
                         fc_port=args.fc_port, dingtalk_port=args.dingtalk_port, llm_port=args.llm_port,
                         stream=args.stream, stream_delay=0.01 if args.stream else 0.0,
                         real_model=None if args.offline else real_model(env))


def launch(args: argparse.Namespace) -> Optional[LocalStack]:
    """Start the stack, or print what to do and return None (missing packages, ports taken)."""
    missing = missing_dependencies()
    if missing:
        print(f"missing Python packages: {', '.join(missing)}. Use `make run` / `make demo`: they create .venv "
              f"and install requirements.txt (or: pip install -r requirements.txt)", file=sys.stderr)
        return None
    try:
        return LocalStack(settings_from(args)).start()
    except (PortInUse, RuntimeError) as exc:
        print(f"cannot start the local stack: {exc}", file=sys.stderr)
        return None


def describe(stack: LocalStack) -> str:
    settings = stack.settings
    model = (f"real model at {settings.real_model.endpoint} ({settings.real_model.model or 'default model'})"
             if settings.real_model else f"OFFLINE demo model at {stack.llm.url} (answers are canned; set "
                                          f"OPENAI_API_KEY in .env for a real one)")
    form = "FC 2.0 (WSGI handler, FC 2.0 invoke API)" if settings.fc2 else "FC 3.0 (event handler, FC 3.0 invoke API)"
    mode = "AI card streaming (local card API)" if settings.stream else "session webhook"
    return (f"receiver  {stack.receiver_url}  [{form}]\n"
            f"FC API    {stack.fc.url}  (runs dingtalk_chatgpt_reply in {settings.workers} worker processes)\n"
            f"DingTalk  {stack.sink.url}  (answers by {mode})\n"
            f"model     {model}\n"
            f"history   {settings.state_dir / 'oss' / 'dingbot' / 'history'}\n"
            f"logs      {settings.state_dir / 'logs'}")
