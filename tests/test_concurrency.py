"""FC 3.0 runs one request per instance: instances share the OSS mount and nothing else.

These tests run each "instance" as its own process (no shared memory, no shared locks) over a
mount where every operation takes a network round trip, and line the processes up with a
barrier so that their reads and writes overlap for certain, not by luck.
"""

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.fake_oss import FakeOSS
from devstack.fc_context import Credentials
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.oss.blobs import ApiBlobs, MountBlobs
from shared.reply.oss.claims import Claims
from shared.reply.oss.history import HistoryStore

INSTANCES = 8
ROUND_TRIP = 0.02
# Each instance a fresh process from a clean server process: fork() of this multi-threaded test process
# is deprecated (Python 3.12 warns) and could copy a held lock.
instances = multiprocessing.get_context("forkserver")


class RemoteMount(MountBlobs):
    """The OSS mount as another machine sees it: every operation is a round trip."""

    def __init__(self, root: Path, latency: float = ROUND_TRIP) -> None:
        super().__init__(root)
        self.latency = latency

    def _trip(self) -> None:
        time.sleep(self.latency)

    def list(self, prefix):
        self._trip()
        return super().list(prefix)

    def entries(self, prefix):
        self._trip()
        return super().entries(prefix)

    def read(self, name):
        self._trip()
        return super().read(name)

    def create(self, name, data):
        self._trip()
        return super().create(name, data)

    def write(self, name, data):
        self._trip()
        super().write(name, data)

    def delete(self, name):
        self._trip()
        super().delete(name)


def run_instances(target, *args):
    """Start one process per instance, all released at once; return their exit codes."""
    barrier = instances.Barrier(INSTANCES)
    processes = [instances.Process(target=target, args=(index, barrier, *args)) for index in range(INSTANCES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    return [process.exitcode for process in processes]


def answer_one_turn(index, barrier, root):
    history = HistoryStore(RemoteMount(root))
    history.load("cid", 20)
    barrier.wait()
    history.add_turn("cid", f"m{index}", 1000 + index, f"q{index}", "a")


def naive_read_modify_write(index, barrier, path):
    document = json.loads(path.read_text())
    time.sleep(ROUND_TRIP)
    barrier.wait()
    document["turns"].append(f"q{index}")
    path.write_text(json.dumps(document))


def claim_one_message(index, barrier, root, oss_endpoint, bucket):
    if oss_endpoint:
        blobs = ApiBlobs.connect(oss_endpoint, bucket, Credentials(), "dingbot/", "cn-local")
        claims = Claims(blobs, atomic_create=True)
    else:
        claims = Claims(RemoteMount(root), atomic_create=False)
    barrier.wait()
    raise SystemExit(0 if claims.claim("cid", "the-same-msg", 60_000) else 1)


def test_concurrent_instances_keep_every_turn(tmp_path):
    assert run_instances(answer_one_turn, tmp_path) == [0] * INSTANCES
    turns = HistoryStore(MountBlobs(tmp_path)).load("cid", 20).turns
    assert sorted(t["question"] for t in turns) == sorted(f"q{i}" for i in range(INSTANCES))


def test_the_harness_sees_the_turns_a_read_modify_write_loses(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"turns": []}))
    assert run_instances(naive_read_modify_write, path) == [0] * INSTANCES
    assert len(json.loads(path.read_text())["turns"]) < INSTANCES


@pytest.mark.parametrize("through", ["mount", "oss-api"])
def test_concurrent_deliveries_of_one_message_let_exactly_one_instance_answer(tmp_path, through):
    server = FakeOSS().start() if through == "oss-api" else None
    try:
        codes = run_instances(claim_one_message, tmp_path, server.endpoint if server else "",
                              server.bucket if server else "")
    finally:
        if server:
            server.stop()
    assert sorted(codes) == [0] + [1] * (INSTANCES - 1)


def reply_in_an_instance(index, barrier, reply, events, env):
    import shared.reply.oss.storage as storage

    storage.MountBlobs = RemoteMount
    for name, value in env.items():
        os.environ[name] = value
    barrier.wait()
    result = json.loads(reply(events[index], context("reply")))["status"]
    raise SystemExit(0 if result == "answered" else 1)


def test_messages_of_one_conversation_answered_on_separate_instances_all_stay_in_history(
        reply, reply_env, llm, sink, oss):
    env = {**reply_env, "HISTORY_LENGTH": "20"}
    events = [parse_callback(json.dumps(callback_body(f"问题{i}", webhook_base=sink.url,
                                                      conversation_id="cid-busy")).encode()).to_payload()
              for i in range(INSTANCES)]
    llm.fail_next(*[{"delay": 0.2}] * INSTANCES)
    assert run_instances(reply_in_an_instance, reply, events, env) == [0] * INSTANCES
    assert len(sink.wait_for(INSTANCES)) == INSTANCES
    turns = HistoryStore(MountBlobs(oss / "dingbot")).load("cid-busy", 20).turns
    assert sorted(t["question"] for t in turns) == sorted(f"问题{i}" for i in range(INSTANCES))


def test_one_message_delivered_to_many_instances_at_once_is_answered_once(reply, reply_env, llm, sink):
    event = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()
    llm.fail_next({"delay": 0.3})
    codes = run_instances(reply_in_an_instance, reply, [event] * INSTANCES, reply_env)
    assert sorted(codes) == [0] + [1] * (INSTANCES - 1)
    assert len(llm.requests) == 1 and len(sink.wait_for(1)) == 1
