"""The whole chain on loopback: DingTalk → receiver → FC API → reply → LLM → sessionWebhook.

The receiver runs in its own process as FC would serve it, the reply function in worker
processes with its own environment; DingTalk and the LLM are in-process fakes (or the real
model when an API key is configured).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

from devstack.fake_bailian import FakeBailian
from devstack.fake_dify import FakeDify
from devstack.fake_dingtalk import WebhookSink, callback_body, encode, signed_headers
from devstack.fake_fc import FakeFC, FunctionPool, die_with_parent
from devstack.fake_llm import FakeLLM
from devstack.fake_search import FakeSearch
from devstack.loopback import LoopbackServer, PortInUse, free_port
from shared.reply.config.dingtalk import DingTalkApp
from shared.reply.dingtalk.callbacks import register_card_callback

ROOT = Path(__file__).resolve().parent.parent
RECEIVER_DIR = ROOT / "dingtalk_conversation"
REPLY_DIR = ROOT / "dingtalk_chatgpt_reply"
REPLY_FUNCTION = "dingtalk_chatgpt_reply"
OFFLINE_KEY = "sk-offline-local-key"
LOCAL_APP_SECRET = "local-app-secret"
STACK_FILE = "stack.json"
# The template with buttons as the local DingTalk knows it (cards/ai-card-with-buttons.json), and its text variable.
LOCAL_BUTTONS_TEMPLATE = "dingbot-ai-card-with-buttons.schema"
BUTTONS_CONTENT_KEY = "content"
SAMPLE_KNOWLEDGE = ROOT / "devstack" / "sample_knowledge"


@dataclass
class RealModel:
    """A real OpenAI-compatible endpoint: the reply function's model settings, named as on FC."""

    env: Dict[str, str]
    description: str


@dataclass
class StackSettings:
    state_dir: Path = ROOT / ".local"
    app_secret: str = LOCAL_APP_SECRET
    fc2: bool = False
    receiver_port: int = 0
    fc_port: int = 0
    dingtalk_port: int = 0
    llm_port: int = 0
    workers: int = 2
    stream: bool = False
    stream_delay: float = 0.0
    history_length: int = 5
    real_model: Optional[RealModel] = None
    reply_env: Dict[str, str] = field(default_factory=dict)
    sample_knowledge: bool = False  # make run and make demo turn it on: the offline demo of the knowledge folder
    brain: str = "chat"  # "bailian" or "dify": a loopback platform of that kind answers (BRAIN)
    receiver_env: Dict[str, str] = field(default_factory=dict)
    # More robots of this deployment (BOTS): name -> their settings, each with its own app key and secret.
    bots: Dict[str, Dict[str, str]] = field(default_factory=dict)
    receiver_dir: Path = RECEIVER_DIR
    reply_dir: Path = REPLY_DIR
    # Answers' cards carry 停止, 重新回答 and 👍/👎 (CARD_BUTTONS=on with the shipped template); with stream.
    buttons: bool = False


@dataclass
class Exchange:
    """One message sent and what came back: the receiver's status and the bot's messages."""

    status: int
    callback: Dict[str, Any]
    outcome: Optional[str]
    replies: List[Dict[str, Any]]
    cards: List[Dict[str, Any]] = field(default_factory=list)


class LocalStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.oss_dir = settings.state_dir / "oss"
        self.log_dir = settings.state_dir / "logs"
        self.llm: Optional[FakeLLM] = None
        self.search: Optional[FakeSearch] = None
        self.platform: Optional[Any] = None  # the loopback Bailian or Dify when another brain answers
        self.sink: Optional[WebhookSink] = None
        self.pool: Optional[FunctionPool] = None
        self.fc: Optional[FakeFC] = None
        self.receiver: Optional[subprocess.Popen] = None
        self.receiver_url = ""
        self.http = requests.Session()
        self.http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))

    def reply_environment(self) -> Dict[str, str]:
        s = self.settings
        env = {"OSS_MOUNT_POINT": str(self.oss_dir), "HISTORY_LENGTH": str(s.history_length),
               "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1", "TIMEOUT": "30", "VERBOSE": "20",
               # Locally \定时 每分钟 shows a scheduled message within a minute.
               "SCHEDULE_MIN_INTERVAL_MINUTES": "1"}
        if s.real_model:
            env.update(s.real_model.env)
        else:
            host, port = self.search.address
            env.update({"ENDPOINT": self.llm.url, "CHATGPT_API_KEY": OFFLINE_KEY, "USER_API_KEY": OFFLINE_KEY,
                        "MODEL": "offline-demo", "EMBEDDING_MODEL": "offline-embedding",
                        # Offline, "搜索 …" goes to a local search service whose results the link reader opens.
                        "SEARCH_PROVIDER": "searxng", "SEARCH_ENDPOINT": self.search.url,
                        "TOOL_ALLOW_HOSTS": f"{host}:{port}",
                        # The offline embedding is cruder than a real one: its similarities run lower.
                        "KB_MIN_SCORE": "0.18"})
        if isinstance(self.platform, FakeBailian):
            env.update({"BRAIN": "bailian", "BAILIAN_APP_ID": self.platform.app_id,
                        "DASHSCOPE_API_KEY": self.platform.api_key, "DASHSCOPE_ENDPOINT": self.platform.endpoint})
        elif isinstance(self.platform, FakeDify):
            env.update({"BRAIN": "dify", "DIFY_API_KEY": self.platform.api_key,
                        "DIFY_ENDPOINT": self.platform.endpoint})
        # The local DingTalk app: pictures and files download through it; cards only with --stream.
        env.update({"DINGTALK_APP_KEY": self.sink.app_key, "DINGTALK_APP_SECRET": self.sink.app_secret,
                    "DINGTALK_API_ENDPOINT": self.sink.url, "CARD_STREAMING": "on" if s.stream else "off"})
        if s.buttons:
            env.update({"CARD_BUTTONS": "on", "DINGTALK_CARD_TEMPLATE_ID": LOCAL_BUTTONS_TEMPLATE,
                        "DINGTALK_CARD_CONTENT_KEY": BUTTONS_CONTENT_KEY})
        if s.bots:
            env["BOTS"] = json.dumps(s.bots, ensure_ascii=False)
        env.update(s.reply_env)
        return env

    def receiver_environment(self) -> Dict[str, str]:
        env = {"DINGTALK_APP_SECRET": self.settings.app_secret, "ENDPOINT": self.fc.url,
               "CHATGPT_FUNCTION": REPLY_FUNCTION, "VERBOSE": "20"}
        if self.settings.bots:
            env["BOTS"] = json.dumps(self.settings.bots, ensure_ascii=False)
        if self.settings.fc2:
            env["SERVICE_NAME"] = self.fc.service_name
        env.update(self.settings.receiver_env)
        return env

    def start(self) -> "LocalStack":
        s = self.settings
        chosen = [(port, option) for port, option in ((s.receiver_port, "--receiver-port"), (s.fc_port, "--fc-port"),
                                                      (s.dingtalk_port, "--dingtalk-port"), (s.llm_port, "--llm-port"))
                  if port]
        for index, (port, option) in enumerate(chosen):
            for other_port, other in chosen[:index]:
                if port == other_port:
                    raise PortInUse(f"{other} 和 {option} 都设成了 {port}：两个本地服务不能用同一个端口，请改掉其中一个"
                                    f"（或把它设为 0，自动选一个空闲端口）")
            LoopbackServer.ensure_free(port, option)
        self.oss_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        knowledge = self.oss_dir / "dingbot" / "knowledge"
        if not s.real_model and s.sample_knowledge and not knowledge.exists():
            # Offline, the demo shows answers from documents: sample files, embedded by the offline model.
            shutil.copytree(SAMPLE_KNOWLEDGE, knowledge)
        try:
            if not s.real_model:
                self.llm = FakeLLM(s.llm_port, api_key=OFFLINE_KEY).start()
                self.llm.stream_delay = s.stream_delay
                self.search = FakeSearch().start()
            if s.brain != "chat":
                self.platform = (FakeBailian() if s.brain == "bailian" else FakeDify()).start()
                self.platform.stream_delay = s.stream_delay
            self.sink = WebhookSink(s.dingtalk_port, app_secret=s.app_secret).start()
            for bot in s.bots.values():
                if bot.get("DINGTALK_APP_KEY"):
                    self.sink.add_app(bot["DINGTALK_APP_KEY"], bot["DINGTALK_APP_SECRET"])
            self.pool = FunctionPool(s.reply_dir, self.reply_environment(), s.workers, self.log_dir / "reply.log")
            self.fc = FakeFC(self.pool, REPLY_FUNCTION, port=s.fc_port).start()
            self._start_receiver()
            if s.buttons:
                self._register_card_callbacks()
        except BaseException:
            self.stop()
            raise
        self.address_file.write_text(json.dumps({"receiver": self.receiver_url, "dingtalk": self.sink.url,
                                                 "pid": os.getpid()}))
        return self

    @property
    def address_file(self) -> Path:
        """Where a running stack says where it is, for ``make send`` (removed when it stops)."""
        return self.settings.state_dir / STACK_FILE

    def _start_receiver(self) -> None:
        port = self.settings.receiver_port or free_port()
        command = [sys.executable, "-m", "devstack.http_runtime", str(self.settings.receiver_dir), "--port", str(port)]
        if self.settings.fc2:
            command.append("--fc2")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env.update(self.receiver_environment(), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        with open(self.log_dir / "receiver.log", "a") as log:
            self.receiver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env,
                                             cwd=str(self.settings.receiver_dir), text=True,
                                             preexec_fn=die_with_parent, start_new_session=True)
        line = self.receiver.stdout.readline()
        if not line:
            raise PortInUse(f"the receiver could not start on port {port}; see {self.log_dir / 'receiver.log'}")
        self.receiver_url = json.loads(line)["url"]

    def _register_card_callbacks(self) -> None:
        """As ``make doctor --register-card-callback`` does on FC: the receiver's /card-callback for each app."""
        register_card_callback(DingTalkApp(self.sink.app_key, self.sink.app_secret, self.sink.url), self.receiver_url)
        for name, bot in self.settings.bots.items():
            if bot.get("DINGTALK_APP_KEY"):
                register_card_callback(DingTalkApp(bot["DINGTALK_APP_KEY"], bot["DINGTALK_APP_SECRET"], self.sink.url),
                                       self.receiver_url, name)

    def last_card(self, conversation_id: str = "cid-group-demo") -> Optional[Dict[str, Any]]:
        cards = self.sink.cards_in(conversation_id)
        return cards[-1] if cards else None

    def click(self, action: str, *, conversation_id: str = "cid-group-demo", user: str = "staff-zhangsan",
              card: Optional[str] = None, wait: float = 60.0) -> Dict[str, Any]:
        """Press a button (``stop``, ``again``, ``good``, ``bad``) on the conversation's last card, as DingTalk
        would send the click; what the reply function did with it (``{"status": ...}``)."""
        target = card or (self.last_card(conversation_id) or {}).get("outTrackId")
        if not target:
            return {"status": "no-card"}
        before = len(self.fc.invocations)
        response = self.sink.click(target, user, action)
        if response.status_code != 200:
            return {"status": f"http-{response.status_code}"}
        for invocation in self.fc.invocations[before:]:
            if (invocation["payload"].get("cardAction") or {}).get("out_track_id") == target:
                result = self.pool.wait(invocation["request_id"], timeout=wait) or {}
                try:
                    return json.loads(result.get("result") or "{}")
                except ValueError:
                    return {"error": result.get("error") or result.get("result")}
        return {"status": "not-handed-off"}

    def attach(self, data: bytes) -> str:
        """Put a picture or file on the local DingTalk; the download code a message carries for it."""
        code = f"local-{uuid.uuid4().hex}"
        self.sink.files[code] = data
        return code

    def send(self, text: str, *, wait: float = 60.0, robot: str = "", **callback: Any) -> Exchange:
        """Send one signed callback as DingTalk would and wait for the reply function to finish. ``robot``: one
        of ``bots`` (the callback then carries its app key and its signature)."""
        if robot:
            callback.setdefault("robot_code", self.settings.bots[robot].get("DINGTALK_APP_KEY", robot))
        return self.deliver(callback_body(text, webhook_base=self.sink.url, **callback), wait=wait, robot=robot)

    def deliver(self, body: Dict[str, Any], *, wait: float = 60.0, robot: str = "") -> Exchange:
        """POST a callback body (a new one, or one DingTalk delivers again) and wait for its answer."""
        secret = self.settings.bots[robot]["DINGTALK_APP_SECRET"] if robot else self.settings.app_secret
        response = self.http.post(self.receiver_url, data=encode(body), timeout=10, headers=signed_headers(secret))
        outcome = None
        request_id = self._request_id_for(body["sessionWebhook"])
        if response.status_code == 200 and request_id:
            outcome = _outcome(self.pool.wait(request_id, timeout=wait) or {})
        return Exchange(response.status_code, body, outcome, self.sink.for_session(body["sessionWebhook"]),
                        self.sink.cards_for_message(body))

    def tick(self, at: Optional[dt.datetime] = None, *, wait: float = 60.0) -> Dict[str, Any]:
        """What FC's timer trigger does every minute: invoke the reply function with a timer event for ``at``
        (now by default), and wait for it."""
        fired = (at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        event = {"triggerTime": fired.strftime("%Y-%m-%dT%H:%M:%SZ"), "triggerName": "schedule", "payload": ""}
        request_id = f"tick-{uuid.uuid4().hex}"
        self.fc.run(request_id, json.dumps(event).encode())
        result = self.pool.wait(request_id, timeout=wait) or {}
        try:
            return json.loads(result.get("result") or "{}")
        except ValueError:
            return {"error": result.get("error") or result.get("result")}

    def _request_id_for(self, webhook: str) -> Optional[str]:
        """The invocation carrying this callback (each callback has its own session webhook)."""
        for invocation in reversed(self.fc.invocations):
            if invocation["payload"].get("sessionWebhook") == webhook:
                return invocation["request_id"]
        return None

    def stop(self) -> None:
        if self.receiver and self.receiver.poll() is None:
            self.receiver.terminate()
            try:
                self.receiver.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.receiver.kill()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.address_file.read_text()).get("pid") == os.getpid():
                self.address_file.unlink()
        for server in (self.fc, self.sink, self.llm, self.search, self.platform):
            if server:
                server.stop()
        if self.pool:
            self.pool.close()
        self.http.close()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _outcome(result: Dict[str, Any]) -> Optional[str]:
    """Our reply function returns ``{"status": ...}``; other handlers may return anything."""
    if "error" in result:
        return result["error"]
    try:
        return json.loads(result.get("result") or "null").get("status")
    except (ValueError, AttributeError):
        return str(result.get("result"))

