"""Receiver: in-process handler time (FC call stubbed) and ack latency over loopback HTTP."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import requests

from bench.stats import Section, median, percentile
from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.fake_fc import die_with_parent
from devstack.fc_context import FCContext, FunctionMeta
from devstack.http_runtime import fc3_event, wsgi_environ

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "dingtalk_conversation"
BASELINE = ROOT / "bench" / "baseline" / "dingtalk_conversation"
NOOP = ROOT / "bench" / "noop"
SECRET = "bench-app-secret"
WEBHOOK = "https://oapi.dingtalk.com"


def load(function_dir: Path, name: str):
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(name, function_dir / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def receiver_env(fc_url: str, fc2: bool) -> Dict[str, str]:
    env = {"DINGTALK_APP_SECRET": SECRET, "ENDPOINT": fc_url, "CHATGPT_FUNCTION": "dingtalk_chatgpt_reply",
           "VERBOSE": "20"}
    if fc2:
        env["SERVICE_NAME"] = "dingbot"
    return env


@contextmanager
def environment(values: Dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    if "SERVICE_NAME" not in values:
        os.environ.pop("SERVICE_NAME", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def stubbed_fc_calls() -> Iterator[None]:
    """Replace the network call only: the FC 2.0 SDK's client is built, and the FC 3.0 request signed,
    as each receiver does it."""
    import fc2

    class Accepted:
        headers = {"x-fc-request-id": "stub"}
        status_code = 202

    saved = fc2.Client.invoke_function, requests.Session.post
    fc2.Client.invoke_function = lambda self, *a, **k: Accepted()
    requests.Session.post = lambda self, *a, **k: Accepted()
    try:
        yield
    finally:
        fc2.Client.invoke_function, requests.Session.post = saved


def _time_per_call(call: Callable[[], object], count: int) -> float:
    for _ in range(20):
        call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def handler_microseconds(section: Section, count: int = 2000) -> None:
    ours, baseline = load(OURS, "bench_ours_receiver"), load(BASELINE, "bench_baseline_receiver")
    context = FCContext(FunctionMeta("dingtalk_conversation"))
    body = encode(callback_body("你好", webhook_base=WEBHOOK))

    def wsgi(handler):
        def call():
            headers = {k.lower(): v for k, v in signed_headers(SECRET).items()}
            list(handler(wsgi_environ("POST", "/", headers, body, context), lambda status, headers: None))
        return call

    def event(handler):
        return lambda: handler(fc3_event("POST", "/", signed_headers(SECRET), body), context)

    with stubbed_fc_calls():
        with environment(receiver_env("http://127.0.0.1:9", fc2=True)):
            base = _time_per_call(wsgi(baseline), count)
            ours_fc2 = _time_per_call(wsgi(ours), count)
        with environment(receiver_env("http://127.0.0.1:9", fc2=False)):
            ours_fc3 = _time_per_call(event(ours), count)
    section.add("handler per message, FC 2.0 form (signature + parse + invoke, FC call stubbed)", ours_fc2, base, "µs")
    section.add("handler per message, FC 3.0 form (same; ours only, the baseline has no FC 3.0 form)", ours_fc3, base,
                "µs")


@contextmanager
def process_serving(*args: str, env: Optional[Dict[str, str]] = None) -> Iterator[str]:
    """``python -m <args>`` in its own process (its own GIL); yields the URL it prints."""
    process = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
                               preexec_fn=die_with_parent)
    try:
        yield json.loads(process.stdout.readline())["url"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def served(function_dir: Path, env: Dict[str, str], fc2: bool):
    return process_serving("devstack.http_runtime", str(function_dir), *(["--fc2"] if fc2 else []), env=env)


def ack_latencies(url: str, clients: int, per_client: int) -> List[float]:
    body = encode(callback_body("你好", webhook_base=WEBHOOK))
    latencies: List[float] = []
    lock = threading.Lock()

    def client(_: int) -> None:
        session = requests.Session()
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            response = session.post(url, data=body, headers=signed_headers(SECRET), timeout=30)
            mine.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        with lock:
            latencies.extend(mine)

    client(0)
    latencies.clear()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies


def ack_latency(section: Section, quick: bool) -> None:
    plans = [(1, 100 if quick else 300), (50, 4 if quick else 20)]
    with process_serving("devstack.fake_fc") as fc_url:
        variants = {
            "baseline": (BASELINE, receiver_env(fc_url, True), True),
            "ours FC 2.0": (OURS, receiver_env(fc_url, True), True),
            "ours FC 3.0": (OURS, receiver_env(fc_url, False), False),
            "floor": (NOOP, {}, False),
        }
        results: Dict[str, Dict[int, List[float]]] = {}
        for name, (directory, env, fc2) in variants.items():
            with served(directory, env, fc2) as url:
                results[name] = {clients: ack_latencies(url, clients, n) for clients, n in plans}
    base, floor = results["baseline"], results["floor"]
    for name in ("ours FC 2.0", "ours FC 3.0"):
        for clients, _ in plans:
            for q in (50, 99):
                ours = percentile(results[name][clients], q)
                row = section.add(f"ack p{q}, {clients} concurrent client(s), {name}", ours,
                                  percentile(base[clients], q), "ms")
                if clients == 50 and q == 99:
                    row.target, row.met = "< 50 ms", ours < 50
    for clients, _ in plans:
        section.add(f"floor: a no-op function, same runtime and load, p99 at {clients} client(s)",
                    percentile(floor[clients], 99), None, "ms")
    section.notes.append("Ack = signed callback in → HTTP 200 out. The receiver is served by the local FC runtime "
                         "(one Python process, a thread per request) and invokes an FC API fake in another process; "
                         "the load comes from Python threads in a third. FC itself runs concurrent requests on "
                         "separate instances; here the two cores and one interpreter are shared, so the no-op floor "
                         "shows what the harness alone costs at each concurrency.")
    section.notes.append(f"median single-client ack: baseline {median(base[1]):.2f} ms")
