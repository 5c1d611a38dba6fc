"""The one ``.env`` that feeds both functions, read the same way by ``make run``, ``make doctor``,
``make send`` and ``s deploy`` (``s.yaml``).

Each meaning has one name. The functions keep the tutorial's names, where ``ENDPOINT`` means the
FC API to the receiver and the model service to the reply function; in ``.env``, which feeds both,
the model service is ``LLM_ENDPOINT`` and ``s.yaml`` passes it to the reply function as ``ENDPOINT``.
Variables set in the shell override ``.env``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping
from urllib.parse import urlsplit

from shared.reply import config as reply_config

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# .env name -> the reply function's name for it.
REPLY_RENAMES = {"LLM_ENDPOINT": "ENDPOINT"}
# What `make run` takes from .env: the model and how it is asked; DingTalk, FC and OSS stay local.
MODEL_SETTINGS = ("LLM_ENDPOINT", "CHATGPT_API_KEY", "USER_API_KEY", "MODEL", "SYSTEM_PROMPT", "TEMPERATURE",
                  "TIMEOUT", "LLM_MAX_RETRIES", "HISTORY_LENGTH")


@dataclass
class DotEnv:
    path: Path
    values: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def merged(self, environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
        """``.env`` with the shell's variables on top."""
        return {**self.values, **environ}


def read_dotenv(path: Path) -> DotEnv:
    """``NAME=value`` lines; ``#`` comments, ``export`` and surrounding quotes are allowed. A line that is
    none of these is reported with its number instead of being silently ignored."""
    dotenv = DotEnv(path)
    if not dotenv.exists:
        return dotenv
    # utf-8-sig: Windows editors save .env with a byte-order mark, which would otherwise join the first name.
    for number, raw in enumerate(path.read_text("utf-8-sig", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not NAME.fullmatch(name):
            dotenv.warnings.append(f"{path.name} 第 {number} 行不是「名称=值」的格式，已忽略：{raw[:60]!r}")
            continue
        if value[:1] in ("'", '"'):
            if len(value) < 2 or value[-1] != value[0]:
                dotenv.warnings.append(f"{path.name} 第 {number} 行：{name} 的值的引号没有闭合，这一行已忽略")
                continue
            value = value[1:-1]
        dotenv.values[name] = value
    return dotenv


def reply_environment(env: Mapping[str, str], names: tuple = reply_config.VARIABLES) -> Dict[str, str]:
    """The reply function's variables as ``s.yaml`` sets them from ``.env``."""
    out = {name: env[name] for name in names if name in env and name not in REPLY_RENAMES.values()}
    for dotenv_name, function_name in REPLY_RENAMES.items():
        if env.get(dotenv_name):
            out[function_name] = env[dotenv_name]
    return out


def dotenv_name(function_variable: str) -> str:
    """The name a person typed in ``.env`` for one of the reply function's variables (``ENDPOINT`` is
    ``LLM_ENDPOINT`` there), so messages name what they can find in their file."""
    return {function: dotenv for dotenv, function in REPLY_RENAMES.items()}.get(function_variable, function_variable)


def unused_key_note(env: Mapping[str, str]) -> str:
    """Why ``USER_API_KEY`` is not used when the model is OpenAI's (the tutorial's rule), or ""."""
    endpoint = env.get("LLM_ENDPOINT") or reply_config.DEFAULT_LLM_ENDPOINT
    if env.get("USER_API_KEY") and urlsplit(reply_config.llm_base_url(endpoint)).hostname == "api.openai.com":
        return ("设置了 USER_API_KEY，但 LLM_ENDPOINT 是 OpenAI：按教程的规则 OpenAI 用 CHATGPT_API_KEY，"
                "USER_API_KEY 没有使用（它是给其他模型服务的）")
    return ""


def model_environment(env: Mapping[str, str]) -> Dict[str, str]:
    """Just the model settings, for a local run against the provider ``.env`` names."""
    return reply_environment({k: v for k, v in env.items() if k in MODEL_SETTINGS and v})
