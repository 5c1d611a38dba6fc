"""The one ``.env`` that feeds both functions, read the same way by ``make run``, ``make doctor``,
``make send`` and ``s deploy`` (``s.yaml``): the same grammar and expansion as the npm packages
Serverless Devs loads it with (``tests/test_dotenv.py`` checks them against ``s preview``).

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
from shared.reply.config import model as model_config

# The line grammar of npm's dotenv 16.3.1 (lib/main.js, LINE), which Serverless Devs 3.1.10 bundles to load the
# .env beside s.yaml: JavaScript's \w is ASCII, its \s Unicode white space (as Python's is, in str patterns).
LINE = re.compile(r"""(?:^|^)\s*(?:export\s+)?([A-Za-z0-9_.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|"""
                  r"""\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)""", re.M)
QUOTED = re.compile(r"""^(['"`])([\s\S]*)\1$""", re.M)
# dotenv-expand 10 (lib/main.js), which Serverless Devs runs over what dotenv read: the right-most unescaped $.
UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
REFERENCE = re.compile(r"((?<!\\)\$\{?([A-Za-z0-9_]+)(?::-([^}\\]*))?\}?)")
MAX_EXPANSIONS = 1000  # dotenv-expand recurses without end on a value that names itself; stop instead
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
    environ: Mapping[str, str] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def merged(self) -> Dict[str, str]:
        """What ``s deploy`` sees: the shell's variables, and the file's names as expanded over them (a name the
        shell sets keeps the shell's value, expanded too)."""
        return {**self.environ, **self.values}


def parse(text: str) -> Dict[str, str]:
    """``NAME=value`` pairs exactly as npm's dotenv 16.3.1 ``parse`` reads them: ``export`` and ``NAME: value``
    allowed, a ``#`` ends an unquoted value (with or without a space before it), quotes (``'``, ``"`` or a
    backtick) may span lines, and in double quotes ``\\n`` and ``\\r`` become line breaks."""
    values: Dict[str, str] = {}
    for match in LINE.finditer(text.replace("\r\n", "\n").replace("\r", "\n")):
        value = (match.group(2) or "").strip()
        quote = value[:1]
        value = QUOTED.sub(r"\2", value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[match.group(1)] = value
    return values


def _js_replace_first(text: str, pattern: str, replacement: str) -> str:
    """JavaScript's ``text.replace(pattern, replacement)`` for a string pattern: the first occurrence, with
    ``$$``, ``$&``, ``$```` and ``$'`` in the replacement meaning what they mean there."""
    index = text.find(pattern)
    if index < 0:
        return text
    before, after = text[:index], text[index + len(pattern):]
    special = {"$": "$", "&": pattern, "`": before, "'": after}
    out, i = [], 0
    while i < len(replacement):
        if replacement[i] == "$" and i + 1 < len(replacement) and replacement[i + 1] in special:
            out.append(special[replacement[i + 1]])
            i += 2
        else:
            out.append(replacement[i])
            i += 1
    return before + "".join(out) + after


def _interpolate(value: str, environ: Mapping[str, str], parsed: Mapping[str, str]) -> str:
    for _ in range(MAX_EXPANSIONS):
        dollars = [found.start() for found in UNESCAPED_DOLLAR.finditer(value)]
        reference = REFERENCE.search(value[dollars[-1]:]) if dollars else None
        if reference is None:
            return value
        group, name, default = reference.groups()
        value = _js_replace_first(value, group, environ.get(name) or default or parsed.get(name) or "")
    return value


def expand(parsed: Mapping[str, str], environ: Mapping[str, str]) -> Dict[str, str]:
    """dotenv-expand 10's ``expand`` after dotenv's ``config``: the file's names are first added to the
    environment where the shell lacks them, then each value (the shell's, for a name it sets) has its ``$NAME``,
    ``${NAME}`` and ``${NAME:-default}`` replaced, and ``\\$`` becomes ``$``."""
    environment = {**parsed, **environ}
    expanded = dict(parsed)
    for name in parsed:
        value = environ[name] if name in environ else parsed[name]
        expanded[name] = _interpolate(value, environment, expanded).replace("\\$", "$")
    return expanded


def _line_warnings(text: str, name: str) -> List[str]:
    """Lines that hold something yet are no setting (dotenv skips them without a word), and quotes that do not
    close on their line (dotenv then keeps the quote in the value, or runs on to the next quote)."""
    warnings = []
    covered = set()
    lines = text.splitlines()
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    for match in LINE.finditer(text):
        first = next(i for i in range(len(lines)) if starts[i + 1] > match.start(1))
        last = next(i for i in range(len(lines)) if starts[i + 1] > max(match.end() - 1, match.start(1)))
        covered.update(range(first, last + 1))
        value = (match.group(2) or "").strip()
        if value[:1] in ("'", '"', "`") and (len(value) < 2 or value[-1] != value[0] or "\n" in value):
            warnings.append(f"{name} 第 {first + 1} 行：{match.group(1)} 的值的引号没有在这一行闭合；"
                            f"s deploy 会把它读成 {value.splitlines()[0][:40]!r}……，请补上引号")
    for number, line in enumerate(lines):
        stripped = line.strip()
        if number not in covered and stripped and not stripped.startswith("#"):
            warnings.append(f"{name} 第 {number + 1} 行不是「名称=值」的格式，已忽略：{line[:60]!r}")
    return sorted(warnings, key=lambda warning: int(re.search(r"第 (\d+) 行", warning).group(1)))


def read_dotenv(path: Path, environ: Mapping[str, str] = os.environ) -> DotEnv:
    """``.env`` read as ``s deploy`` reads it (npm's dotenv, then dotenv-expand, under ``environ``), so the local
    stack, ``make doctor`` and FC never disagree on a value. A line that is not a setting, or a quote left open,
    is reported with its number instead of passing in silence."""
    dotenv = DotEnv(path, environ=dict(environ))
    if not dotenv.exists:
        return dotenv
    # utf-8-sig: Windows editors save .env with a byte-order mark (dotenv's JavaScript \s skips it too).
    text = path.read_text("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    parsed = parse(text)
    once = expand(parsed, dotenv.environ)
    # Serverless Devs 3.1.10 loads the file in two phases of its yaml parser, and dotenv-expand runs in both:
    # the second pass sees the first one's results in the environment (so "\\$5" ends up empty there).
    dotenv.values = expand(parsed, {**dotenv.environ, **once})
    dotenv.warnings = _line_warnings(text, path.name)
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
    endpoint = env.get("LLM_ENDPOINT") or model_config.DEFAULT_LLM_ENDPOINT
    if env.get("USER_API_KEY") and urlsplit(model_config.llm_base_url(endpoint)).hostname == "api.openai.com":
        return ("设置了 USER_API_KEY，但 LLM_ENDPOINT 是 OpenAI：按教程的规则 OpenAI 用 CHATGPT_API_KEY，"
                "USER_API_KEY 没有使用（它是给其他模型服务的）")
    return ""


def model_environment(env: Mapping[str, str]) -> Dict[str, str]:
    """Just the model settings, for a local run against the provider ``.env`` names."""
    return reply_environment({k: v for k, v in env.items() if k in MODEL_SETTINGS and v})
