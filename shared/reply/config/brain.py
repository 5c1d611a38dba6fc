"""What answers (``BRAIN``): the chat model, a Bailian application or a Dify app."""

from __future__ import annotations

from typing import NamedTuple, Tuple
from urllib.parse import urlsplit

from shared.common.settings import EnvReader

BRAINS = ("chat", "bailian", "dify")
DEFAULT_DASHSCOPE_ENDPOINT = "https://dashscope.aliyuncs.com"


class BrainSettings(NamedTuple):
    """``chat`` (the default, set by the tutorial's variables and ``ModelSettings``), ``bailian``
    (``BAILIAN_APP_ID``, ``DASHSCOPE_API_KEY``) or ``dify`` (``DIFY_ENDPOINT``, ``DIFY_API_KEY``). ``endpoint`` is
    the platform's API root, ``biz_params`` whether the asker's nick and the group's name go to a Bailian
    application as parameters, ``timeout_seconds`` (``TIMEOUT``) how long one answer may take."""

    kind: str = "chat"
    endpoint: str = ""
    api_key: str = ""
    app_id: str = ""
    biz_params: bool = False
    timeout_seconds: float = 55.0

    def __repr__(self) -> str:  # never the key
        return f"BrainSettings(kind={self.kind!r}, endpoint={self.endpoint!r}, app_id={self.app_id!r})"

    @classmethod
    def read(cls, read: EnvReader, timeout: float) -> "BrainSettings":
        kind = read.choice("BRAIN", "chat", BRAINS)
        if kind == "bailian":
            return cls(kind, read.url("DASHSCOPE_ENDPOINT", DEFAULT_DASHSCOPE_ENDPOINT).rstrip("/"),
                       read.required("DASHSCOPE_API_KEY", "BRAIN=bailian needs the Bailian (DashScope) API key",
                                     "BRAIN=bailian 需要百炼（DashScope）的 API Key"),
                       read.required("BAILIAN_APP_ID", "BRAIN=bailian needs the application's id",
                                     "BRAIN=bailian 需要百炼应用的 ID（应用管理页的应用卡片上）"),
                       read.choice("BAILIAN_BIZ_PARAMS", "off", ("off", "on")) == "on", timeout)
        if kind == "dify":
            endpoint = read.required("DIFY_ENDPOINT", "BRAIN=dify needs the app's API base, e.g. https://api.dify.ai/v1",
                                     "BRAIN=dify 需要应用的 API 地址（Dify「访问 API」页上的 API 服务器，"
                                     "例如 https://api.dify.ai/v1）")
            base = read.url("DIFY_ENDPOINT", "") if endpoint else ""
            # The API base as Dify's console shows it ends in /v1; a bare host gets it.
            return cls(kind, base if urlsplit(base).path or not base else base + "/v1",
                       read.required("DIFY_API_KEY", "BRAIN=dify needs the app's API key",
                                     "BRAIN=dify 需要应用的 API 密钥（「访问 API」页右上角）"), timeout_seconds=timeout)
        return cls(kind, timeout_seconds=timeout)

    def choices(self, read: EnvReader, chat_ready: bool) -> Tuple["BrainSettings", ...]:
        """The brains a conversation may switch to: this one, the chat model when its key is set
        (``chat_ready``), and each platform whose variables are all set. Those are read apart, so a platform
        set only half costs the choice, never the start-up."""
        choices = []
        for kind in BRAINS:
            if kind == self.kind:
                choices.append(self)
            elif kind == "chat":
                choices += [BrainSettings(timeout_seconds=self.timeout_seconds)] if chat_ready else []
            else:
                apart = EnvReader({**read.env, "BRAIN": kind})
                other = BrainSettings.read(apart, self.timeout_seconds)
                choices += [] if apart.problems else [other]
        return tuple(choices)
