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
            dotenv.warnings.append(f"{path.name} line {number} is not NAME=value and was ignored: {raw[:60]!r}")
            continue
        if value[:1] in ("'", '"'):
            if len(value) < 2 or value[-1] != value[0]:
                dotenv.warnings.append(f"{path.name} line {number}: the quote around {name}'s value is not closed; "
                                       f"the line was ignored")
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


def model_environment(env: Mapping[str, str]) -> Dict[str, str]:
    """Just the model settings, for a local run against the provider ``.env`` names."""
    return reply_environment({k: v for k, v in env.items() if k in MODEL_SETTINGS and v})
