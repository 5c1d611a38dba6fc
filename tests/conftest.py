"""Fixtures: real loopback servers for the LLM, DingTalk and the FC API; a temp OSS mount."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devstack.fake_dingtalk import WebhookSink  # noqa: E402
from devstack.fake_fc import FakeFC  # noqa: E402
from devstack.fake_llm import FakeLLM  # noqa: E402
from devstack.fc_context import FCContext, FunctionMeta  # noqa: E402

APP_SECRET = "test-app-secret"
API_KEY = "sk-test-key-0123456789"


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM(api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink().start()
    yield server
    server.stop()


@pytest.fixture
def oss(tmp_path: Path) -> Path:
    mount = tmp_path / "oss"
    mount.mkdir()
    return mount


@pytest.fixture
def reply_env(llm: FakeLLM, oss: Path) -> Dict[str, str]:
    return {"CHATGPT_API_KEY": API_KEY, "ENDPOINT": llm.url, "OSS_MOUNT_POINT": str(oss),
            "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1", "HISTORY_LENGTH": "5", "TIMEOUT": "5", "LLM_MAX_RETRIES": "0"}


class RecordingPool:
    """Stands in for the reply workers behind the FC API: records what FC would run."""

    def __init__(self) -> None:
        self.submitted: List[Dict[str, Any]] = []
        self.lock = threading.Lock()

    def submit(self, request_id: str, payload: bytes, credentials: Dict[str, str]) -> None:
        with self.lock:
            self.submitted.append({"request_id": request_id, "payload": payload, "credentials": credentials})


@pytest.fixture
def fc_api() -> Iterator[FakeFC]:
    server = FakeFC(RecordingPool(), "dingtalk_chatgpt_reply").start()
    yield server
    server.stop()


@pytest.fixture
def receiver_env(fc_api: FakeFC) -> Dict[str, str]:
    return {"DINGTALK_APP_SECRET": APP_SECRET, "ENDPOINT": fc_api.url, "CHATGPT_FUNCTION": "dingtalk_chatgpt_reply"}


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch):
    """Replace the function's environment, as FC gives each function its own."""

    def apply(env: Dict[str, str]) -> None:
        for name in ("DINGTALK_APP_SECRET", "ENDPOINT", "SERVICE_NAME", "CHATGPT_FUNCTION", "CHATGPT_API_KEY",
                     "USER_API_KEY", "OSS_MOUNT_POINT", "HISTORY_LENGTH", "TIMEOUT", "VERBOSE", "MODEL",
                     "ALLOWED_WEBHOOK_HOSTS", "HISTORY_SCOPE", "SYSTEM_PROMPT", "TEMPERATURE", "LLM_MAX_RETRIES",
                     "SIGNATURE_WINDOW_SECONDS", "MAX_BODY_BYTES", "MAX_MESSAGE_BYTES"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


def context(name: str = "fn") -> FCContext:
    return FCContext(FunctionMeta(name))


@pytest.fixture
def receiver():
    return importlib.import_module("dingtalk_conversation.index").handler


@pytest.fixture
def reply():
    return importlib.import_module("dingtalk_chatgpt_reply.index").handler
