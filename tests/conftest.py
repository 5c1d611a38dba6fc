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
from shared.receiver import config as receiver_config  # noqa: E402
from shared.reply import config as reply_config  # noqa: E402
from shared.reply import delivery  # noqa: E402
from shared.reply.dingtalk.openapi import TOKENS  # noqa: E402
from shared.reply.knowledge import retrieve  # noqa: E402
from shared.reply.llm import model  # noqa: E402
from shared.reply.oss import operator, storage  # noqa: E402
from shared.reply.tools import mcp  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """pytest makes ``--basetemp`` (``.local/pytest``) but not its parents; a fresh clone has no ``.local``."""
    if config.option.basetemp:
        Path(config.option.basetemp).parent.mkdir(parents=True, exist_ok=True)


APP_SECRET = "test-app-secret"
API_KEY = "sk-test-key-0123456789"

# Everything the functions, the local stack and the scripts read from the environment, plus the
# proxy settings requests honours: the suite must pass whatever the caller's shell exports.
CALLER_ENVIRONMENT = sorted(set(receiver_config.VARIABLES) | set(reply_config.VARIABLES) | {
    "REGION", "FC_ROLE_ARN", "OSS_BUCKET", "OSS_ENDPOINT", "LLM_ENDPOINT", "OPENAI_API_KEY", "RECEIVER_URL",
    "RECEIVER_PORT", "FC_PORT", "DINGTALK_PORT", "LLM_PORT", "DINGTALK_APP_KEY", "SERVICE_NAME",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
})


@pytest.fixture(autouse=True)
def fresh_instance() -> None:
    """Each test is a new FC instance: no access token cached from another test's DingTalk, no bucket
    already checked, nothing already logged once."""
    TOKENS._tokens.clear()
    storage._API_CLAIMS_CHECKED.clear()
    delivery._told.clear()
    model._NO_TOOLS.clear()
    model._NO_STREAM_OPTIONS.clear()
    retrieve._LOADED.clear()
    mcp._LISTED.clear()
    operator._READ.clear()


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in CALLER_ENVIRONMENT:
            patch.delenv(name, raising=False)
        yield


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
        for name in CALLER_ENVIRONMENT:
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
