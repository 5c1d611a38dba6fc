"""Reading a function's environment into typed values, collecting every problem on the way.

Both functions keep the tutorial's variable names so that an upgrade is a code swap. A reader
records each problem (naming the variable and the fix) instead of stopping at the first, so
``make doctor`` can list them all in one run; the functions themselves report the first.
"""

from __future__ import annotations

import functools
from typing import Callable, List, Mapping, Optional, Tuple, TypeVar
from urllib.parse import urlsplit

from shared.common.errors import ConfigError

T = TypeVar("T")

LOG_LEVEL_DEFAULT = 20


class EnvReader:
    """Typed reads of one environment; ``problems`` holds what was wrong, in the order read."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: List[ConfigError] = []

    def fail(self, name: str, problem: str, hint: str) -> None:
        self.problems.append(ConfigError(name, problem, hint=hint))

    def text(self, name: str) -> Optional[str]:
        """The stripped value, or None when unset or blank (FC's console saves blank fields)."""
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def required(self, name: str, fix: str, hint: str) -> str:
        value = self.text(name)
        if value is None:
            self.fail(name, f"not set; {fix}", f"没有设置：{hint}")
            return ""
        return value

    def number(self, name: str, default: T, convert: Callable[[str], T], low: float, high: float) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = convert(raw)
        except ValueError:
            self.fail(name, f"{raw!r} is not a number; set a value from {low} to {high}",
                      f"{raw!r} 不是数字，请设为 {low} 到 {high} 之间的值")
            return default
        if not low <= value <= high:  # type: ignore[operator]
            self.fail(name, f"{raw} is out of range; set a value from {low} to {high}",
                      f"{raw} 超出范围，请设为 {low} 到 {high} 之间的值")
            return default
        return value

    def choice(self, name: str, default: str, choices: Tuple[str, ...]) -> str:
        raw = (self.text(name) or default).lower()
        if raw not in choices:
            self.fail(name, f"{raw!r} is not one of {', '.join(choices)}",
                      f"{raw!r} 不是可选值之一：{'、'.join(choices)}")
            return default
        return raw

    def id_list(self, name: str) -> Tuple[str, ...]:
        """Comma-separated ids; unset means "no restriction"."""
        raw = self.text(name)
        if raw is None:
            return ()
        ids = tuple(i.strip() for i in raw.split(",") if i.strip())
        if not ids:
            self.fail(name, "lists nothing; give comma-separated ids or leave it unset",
                      "是空的：写上用逗号分隔的 ID，或者不设置")
        return ids

    def url(self, name: str, default: str, *, bare_host_scheme: Optional[str] = None) -> str:
        """An http(s) URL without a trailing slash; ``bare_host_scheme`` accepts a bare host too."""
        value = (self.text(name) or default).rstrip("/")
        if bare_host_scheme and "://" not in value:
            value = f"{bare_host_scheme}://{value}"
        if not _is_http_url(value):
            self.fail(name, f"{value!r} is not an http(s) URL", f"{value!r} 不是 http(s) 地址")
        return value

    def log_level(self) -> int:
        """``VERBOSE`` is a ``logging`` level number, as in the tutorial (10 debug ... 40 error)."""
        return self.number("VERBOSE", LOG_LEVEL_DEFAULT, int, 0, 50)

    def finish(self, value: T) -> T:
        """``value`` when nothing was wrong; otherwise raise the first problem, carrying all of them."""
        if self.problems:
            first = self.problems[0]
            raise ConfigError(first.variable, first.problem, hint=first.hint, more=self.problems[1:])
        return value


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


@functools.lru_cache(maxsize=32)  # one environment per robot of BOTS, and a few to spare
def _cached(read: Callable[[Mapping[str, str]], T], values: Tuple[Tuple[str, Optional[str]], ...]) -> T:
    return read({k: v for k, v in values if v is not None})


def load_once(read: Callable[[Mapping[str, str]], T], names: Tuple[str, ...], env: Mapping[str, str]) -> T:
    """Validate once per distinct environment: FC keeps one environment per instance."""
    return _cached(read, tuple((name, env.get(name)) for name in names))
