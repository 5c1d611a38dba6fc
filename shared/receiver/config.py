"""Settings of ``dingtalk_conversation``, the HTTP function, read once from its environment.

The tutorial's names keep their meaning: ``DINGTALK_APP_SECRET``, ``ENDPOINT`` (the FC API),
``SERVICE_NAME``, ``CHATGPT_FUNCTION``, ``VERBOSE``. Everything else is optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple
from urllib.parse import urlsplit

from shared.common.bots import parse_bots, secrets
from shared.common.errors import ConfigError
from shared.common.settings import EnvReader, load_once

DINGTALK_MAX_SKEW_SECONDS = 3600
DEFAULT_REPLY_FUNCTION = "dingtalk_chatgpt_reply"
VARIABLES = ("DINGTALK_APP_SECRET", "ENDPOINT", "SERVICE_NAME", "CHATGPT_FUNCTION", "VERBOSE",
             "SIGNATURE_WINDOW_SECONDS", "MAX_BODY_BYTES", "BOTS")


@dataclass(frozen=True)
class ReceiverConfig:
    """The receiver's settings, read from the environment once. ``robots`` are ``(name, app secret)`` of every
    robot whose callbacks are accepted (``shared/common/bots.py``): the deployment's own, named "", and ``BOTS``."""

    app_secret: str
    reply_function: str
    fc_endpoint: Optional[str]
    service_name: Optional[str]
    signature_window_seconds: int
    max_body_bytes: int
    log_level: int
    robots: Tuple[Tuple[str, str], ...] = ()

    @property
    def uses_fc2_api(self) -> bool:
        """The tutorial's FC 2.0 setup names a service; FC 3.0 has none."""
        return self.service_name is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ReceiverConfig":
        read = EnvReader(env)
        try:
            bots = parse_bots(env.get("BOTS") or "")
        except ConfigError as exc:
            read.problems.append(exc)
            bots = {}
        # With BOTS the deployment's own robot is optional: every robot may be one of BOTS.
        secret = (read.text("DINGTALK_APP_SECRET") or "") if bots else \
            read.required("DINGTALK_APP_SECRET", "the AppSecret of the DingTalk app (凭证与基础信息)",
                          "钉钉应用的 AppSecret（开放平台 → 应用 → 凭证与基础信息）")
        endpoint = read.text("ENDPOINT")
        return read.finish(cls(
            app_secret=secret,
            reply_function=read.text("CHATGPT_FUNCTION") or DEFAULT_REPLY_FUNCTION,
            fc_endpoint=_origin(read.url("ENDPOINT", "", bare_host_scheme="https")) if endpoint else None,
            service_name=read.text("SERVICE_NAME"),
            signature_window_seconds=read.number("SIGNATURE_WINDOW_SECONDS", DINGTALK_MAX_SKEW_SECONDS, int, 1,
                                                 DINGTALK_MAX_SKEW_SECONDS),
            max_body_bytes=read.number("MAX_BODY_BYTES", 65536, int, 1024, 6 * 1024 * 1024),
            log_level=read.log_level(),
            robots=secrets(env, bots),
        ))


def _origin(url: str) -> str:
    """The tutorial's ``ENDPOINT`` is a bare host; a full URL's path, if any, is not part of the API."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def load_receiver_config(env: Mapping[str, str]) -> ReceiverConfig:
    return load_once(ReceiverConfig.from_env, VARIABLES, env)
