"""A local FC API: accepts async invocations (2.0 and 3.0 paths) and runs the reply function.

FC 2.0 requests must carry a valid ``FC <AccessKeyId>:<signature>`` made with the local STS
secret (checked with the ``fc2`` SDK's own signer); FC 3.0 requests a valid ``ACS3-HMAC-SHA256``
signature (checked with Alibaba Cloud's official signer). A receiver that signs wrongly fails
here as it would on FC. Accepted invocations answer 202 and go to worker processes that each hold
the reply function with its own environment. A repeated task id answers 409, as FC does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from devstack.fc_context import Credentials
from devstack.loopback import JsonHandler, LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
FC2_PREFIX = "/2016-08-15/services/"
FC3_PREFIX = "/2023-03-30/functions/"


def die_with_parent() -> None:
    """Children end with the stack even when it is killed outright (Linux; elsewhere a no-op).

    They also run in sessions of their own (``start_new_session``), so a Ctrl-C typed in the chat's
    terminal reaches only the chat, which stops waiting, and not the servers behind it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class FunctionPool:
    """``size`` worker processes of one event function, fed from one queue."""

    def __init__(self, function_dir: Path, env: Mapping[str, str], size: int = 2,
                 log_path: Optional[Path] = None) -> None:
        self.function_dir = function_dir
        self.tasks: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self.results: Dict[str, Dict[str, Any]] = {}
        self.done = threading.Condition()
        self.pending = 0
        child_env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")},
                     **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        # The workers keep the log open; this process needs it only while starting them.
        with open(log_path or os.devnull, "a") as log:
            self.processes = [self._spawn(child_env, log) for _ in range(size)]
        self.threads = [threading.Thread(target=self._feed, args=(p,), daemon=True) for p in self.processes]
        for thread in self.threads:
            thread.start()

    def _spawn(self, env: Dict[str, str], log: Any) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "devstack.worker", str(self.function_dir)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   env=env, cwd=str(self.function_dir), text=True, encoding="utf-8",
                                   preexec_fn=die_with_parent, start_new_session=True)
        ready = process.stdout.readline()
        if not ready:
            raise RuntimeError(f"the {self.function_dir.name} worker failed to start; see its log")
        return process

    def submit(self, request_id: str, payload: bytes, credentials: Dict[str, str]) -> None:
        with self.done:
            self.pending += 1
        self.tasks.put({"request_id": request_id, "payload": payload.decode("utf-8"), "credentials": credentials})

    def _feed(self, process: subprocess.Popen) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                return
            process.stdin.write(json.dumps(task, ensure_ascii=False) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
            result = json.loads(line) if line else {"request_id": task["request_id"], "error": "worker exited"}
            with self.done:
                self.results[task["request_id"]] = result
                self.pending -= 1
                self.done.notify_all()

    def wait(self, request_id: str, timeout: float = 30.0) -> Optional[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.done:
            while request_id not in self.results and time.monotonic() < deadline:
                self.done.wait(deadline - time.monotonic())
            return self.results.get(request_id)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.done:
            while self.pending and time.monotonic() < deadline:
                self.done.wait(deadline - time.monotonic())
            return not self.pending

    def close(self) -> None:
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes:
            if process.stdin:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


class FakeFC(LoopbackServer):
    """The FC API on loopback for one reply function, reachable by service/function name."""

    def __init__(self, pool: FunctionPool, function_name: str, service_name: str = "dingbot",
                 credentials: Credentials = Credentials(), port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.pool = pool
        self.function_name = function_name
        self.service_name = service_name
        self.credentials = credentials
        self.invocations: List[Dict[str, Any]] = []
        self.task_ids: set[str] = set()
        self.lock = threading.Lock()

    def accept(self, api: str, task_id: Optional[str], payload: bytes) -> tuple[int, str]:
        with self.lock:
            if task_id and task_id in self.task_ids:
                return 409, ""
            if task_id:
                self.task_ids.add(task_id)
            request_id = str(uuid.uuid4())
            self.invocations.append({"api": api, "task_id": task_id, "request_id": request_id,
                                     "payload": json.loads(payload)})
        self.run(request_id, payload)
        return 202, request_id

    def run(self, request_id: str, payload: bytes) -> None:
        """Hand ``payload`` to the function as FC does, with the function's role credentials in its context."""
        creds = self.credentials
        self.pool.submit(request_id, payload, {"access_key_id": creds.access_key_id,
                                               "access_key_secret": creds.access_key_secret,
                                               "security_token": creds.security_token})


def _fc2_signature_ok(handler: JsonHandler, credentials: Credentials) -> bool:
    from fc2.auth import Auth

    headers = {k.lower(): v for k, v in handler.headers.items()}
    expected = Auth(credentials.access_key_id, credentials.access_key_secret,
                    credentials.security_token).sign_request("POST", handler.path.split("?")[0], headers)
    return headers.get("authorization") == expected and headers.get("x-fc-security-token") == credentials.security_token


def _fc3_signature_ok(handler: JsonHandler, credentials: Credentials, body: bytes) -> bool:
    """Recompute the ACS3-HMAC-SHA256 signature over the headers the request says it signed, with the
    official signer (``alibabacloud_openapi_util``), as the FC API does; the STS token must match too."""
    from types import SimpleNamespace

    from alibabacloud_openapi_util.client import Client as OfficialSigner

    authorization = handler.headers.get("Authorization") or ""
    match = re.fullmatch(r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]+)",
                         authorization)
    if not match or match.group(1) != credentials.access_key_id:
        return False
    received = {k.lower(): v for k, v in handler.headers.items()}
    signed = match.group(2).split(";")
    payload_hash = hashlib.sha256(body).hexdigest()
    if received.get("x-acs-content-sha256") != payload_hash or not {"host", "x-acs-date"} <= set(signed):
        return False
    request = SimpleNamespace(method=handler.command, pathname=handler.path.split("?")[0], query={},
                              headers={name: received.get(name, "") for name in signed})
    expected = OfficialSigner.get_authorization(request, "ACS3-HMAC-SHA256", payload_hash, credentials.access_key_id,
                                                credentials.access_key_secret)
    return hmac.compare_digest(expected, authorization) and \
        received.get("x-acs-security-token") == credentials.security_token


class _Handler(JsonHandler):
    server: FakeFC

    def _error(self, status: int, code: str, message: str) -> None:
        self.send_json(status, {"ErrorCode": code, "ErrorMessage": message}, {"x-fc-request-id": str(uuid.uuid4())})

    def do_POST(self) -> None:
        payload = self.read_body()
        path = self.path.split("?")[0]
        fc = self.server
        if path == f"{FC2_PREFIX}{fc.service_name}/functions/{fc.function_name}/invocations":
            api, task_header = "fc2", "x-fc-stateful-async-invocation-id"
            if not _fc2_signature_ok(self, fc.credentials):
                return self._error(403, "SignatureNotMatch", "the FC signature does not match")
        elif path == f"{FC3_PREFIX}{fc.function_name}/invocations":
            api, task_header = "fc3", "x-fc-async-task-id"
            if not _fc3_signature_ok(self, fc.credentials, payload):
                return self._error(403, "SignatureNotMatch", "the ACS3 signature or the STS token does not match")
        else:
            return self._error(404, "FunctionNotFound", f"no function at {path}")
        if (self.headers.get("x-fc-invocation-type") or "").lower() != "async":
            return self._error(400, "InvalidArgument", "the local FC API only runs async invocations")
        status, request_id = fc.accept(api, self.headers.get(task_header), payload)
        if status == 202:
            self.send_response(202)
            self.send_header("x-fc-request-id", request_id)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif status == 409:
            self._error(409, "ResourceExist", "an async task with this id already exists")
        else:
            self._error(status, "InjectedFault", "injected FC API fault")


class NullPool:
    """Accepts invocations and runs nothing: for measuring the receiver alone."""

    def submit(self, request_id: str, payload: bytes, credentials: Dict[str, str]) -> None:
        pass


def main() -> None:
    """``python -m devstack.fake_fc``: the FC API in its own process, accepting and dropping invocations."""
    FakeFC(NullPool(), sys.argv[1] if len(sys.argv) > 1 else "dingtalk_chatgpt_reply").serve_as_process()


if __name__ == "__main__":
    main()
