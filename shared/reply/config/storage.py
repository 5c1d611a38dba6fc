"""Where the bot keeps what it remembers (the OSS mount, and the bucket's API for claims), and what it
counts there: usage records, daily quotas and prices."""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

from shared.common.settings import EnvReader
from shared.reply.prices import parse_prices

# oss-cn-hangzhou.aliyuncs.com, oss-cn-hangzhou-internal.aliyuncs.com, bucket.oss-cn-hangzhou.aliyuncs.com
OSS_HOST_REGION = re.compile(r"(?:^|\.)oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")


def oss_region_of(endpoint: str) -> Optional[str]:
    """The region in an OSS endpoint's host name (V4 signatures are scoped to it), or None."""
    match = OSS_HOST_REGION.search((urlsplit(endpoint if "//" in endpoint else "//" + endpoint).hostname or ""))
    return match.group(1) if match else None


class StorageSettings(NamedTuple):
    """``OSS_MOUNT_POINT`` holds history and records; with ``OSS_BUCKET`` claims go through the OSS API of
    ``endpoint`` (V4-signed for ``region``)."""

    mount_point: str
    bucket: Optional[str]
    endpoint: str
    region: Optional[str]

    @classmethod
    def read(cls, read: EnvReader) -> "StorageSettings":
        return cls(read.text("OSS_MOUNT_POINT") or "/mnt/oss", read.text("OSS_BUCKET"), _oss_endpoint(read),
                   read.text("OSS_REGION") or oss_region_of(read.text("OSS_ENDPOINT") or ""))


def _oss_endpoint(read: EnvReader) -> str:
    """Needed only with ``OSS_BUCKET``: claims then go through the OSS API of that region."""
    if read.text("OSS_BUCKET") is None:
        return ""
    if read.text("OSS_ENDPOINT") is None:
        read.fail("OSS_ENDPOINT", "OSS_BUCKET is set, so the bucket's endpoint is needed too, e.g. "
                                  "http://oss-cn-hangzhou-internal.aliyuncs.com",
                  "设置了 OSS_BUCKET，也需要桶的地址，例如 http://oss-cn-hangzhou-internal.aliyuncs.com")
        return ""
    return read.url("OSS_ENDPOINT", "")


class Quotas(NamedTuple):
    """Daily limits (unset: unlimited), counted in ``TZ`` days; ``exempt`` users have none. ``prices`` (yuan per
    million input/output tokens, by model) turn usage into cost; records older than ``keep_days`` are folded."""

    user_messages: Optional[int] = None
    user_tokens: Optional[int] = None
    conversation_tokens: Optional[int] = None
    exempt: Tuple[str, ...] = ()
    prices: Dict[str, Tuple[float, float]] = {}
    keep_days: int = 35

    @property
    def active(self) -> bool:
        return any(limit is not None for limit in (self.user_messages, self.user_tokens, self.conversation_tokens))

    @classmethod
    def read(cls, read: EnvReader) -> "Quotas":
        def limit(name: str) -> Optional[int]:
            return read.number(name, None, int, 1, 10**12)

        return cls(limit("QUOTA_USER_DAILY_MESSAGES"), limit("QUOTA_USER_DAILY_TOKENS"),
                   limit("QUOTA_CONVERSATION_DAILY_TOKENS"), read.id_list("QUOTA_EXEMPT_USERS"), _prices(read),
                   read.number("USAGE_KEEP_DAYS", 35, int, 32, 3650))


def _prices(read: EnvReader) -> Dict[str, Tuple[float, float]]:
    try:
        return parse_prices(read.text("MODEL_PRICES"))
    except ValueError as exc:
        read.fail("MODEL_PRICES", f"{exc}; e.g. {{\"qwen-plus\": [0.8, 2]}} (yuan per million input/output tokens)",
                  f"格式不对（{exc}）；例如 {{\"qwen-plus\": [0.8, 2]}}（每百万输入/输出 token 的价格，单位元）")
        return {}
