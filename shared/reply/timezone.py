"""``TZ``: the zone the team counts its days and reads its clock in, checked when the function starts.

``zoneinfo`` is the source of truth, but importing it costs a cold start several milliseconds, so
the check at start-up only looks the name up in the time zone database the way ``zoneinfo`` does
(``PYTHONTZPATH``, else the system's folders, then the ``tzdata`` package): a misspelt zone
(``Asia/Shangai``) is a start-up error naming ``TZ`` instead of silently becoming UTC. The zone
itself is resolved on first use. Where a runtime has no database at all, the zones that need none
(China's UTC+8, which has no daylight saving time, and UTC) still work, and any other is refused.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Optional

DEFAULT_TIMEZONE = "Asia/Shanghai"
SYSTEM_TZPATH = ("/usr/share/zoneinfo", "/usr/lib/zoneinfo", "/usr/share/lib/zoneinfo", "/etc/zoneinfo")
KEY = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
CHINA = ("Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "PRC")
UTC = ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Zulu", "Etc/Zulu")


def _tzpath() -> tuple:
    configured = os.environ.get("PYTHONTZPATH")
    if configured is not None:
        return tuple(p for p in configured.split(os.pathsep) if os.path.isabs(p))
    return SYSTEM_TZPATH


def _tzif(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"TZif"
    except OSError:
        return False


def problem(name: str) -> Optional[str]:
    """Why ``name`` is no zone this runtime knows, or None."""
    if name in CHINA or name in UTC:
        return None
    if not KEY.fullmatch(name) or ".." in name:
        return "is not a time zone name (like Asia/Shanghai)"
    if any(_tzif(os.path.join(folder, name)) for folder in _tzpath()):
        return None
    from importlib.util import find_spec

    if find_spec("tzdata") is not None:
        try:
            from importlib.resources import files

            if _tzif(str(files("tzdata.zoneinfo").joinpath(name))):
                return None
        except (ImportError, OSError, ValueError):
            pass
    return "is no time zone in this runtime's database (spelling? e.g. Asia/Shanghai)"


def zone_of(name: str) -> dt.tzinfo:
    """The zone of a name ``problem`` accepted."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:
        if name in CHINA:
            return dt.timezone(dt.timedelta(hours=8), name)
        return dt.timezone.utc


def now_line(zone: dt.tzinfo, name: str, now: Optional[dt.datetime] = None) -> str:
    """The date and time where the team is, for the prompt, so "今天"/"明天" need no tool."""
    now = (now or dt.datetime.now(zone)).astimezone(zone)
    return f"当前时间：{now:%Y-%m-%d %H:%M} 星期{'一二三四五六日'[now.weekday()]}（{name}）"
