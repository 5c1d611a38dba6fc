"""KB_BACKEND=dashvector: the knowledge folder kept in a DashVector collection (a loopback one, built from the
HTTP API documentation), with the same answers and sources as the embedded index and no index in memory."""

import json
import shutil
from pathlib import Path

import pytest
import requests
from test_knowledge import SAMPLES, ask

from devstack.fake_dashvector import FakeDashVector
from shared.common.errors import ConfigError
from shared.reply.config import ReplyConfig
from shared.reply.knowledge import remote, retrieve
from shared.reply.knowledge.dashvector import DashVector, DashVectorError


@pytest.fixture(autouse=True)
def new_instance():
    retrieve._LOADED.clear()


@pytest.fixture
def dashvector():
    server = FakeDashVector().start()
    yield server
    server.stop()


@pytest.fixture
def kb(oss):
    folder = oss / "dingbot" / "knowledge"
    shutil.copytree(SAMPLES, folder)
    return folder


@pytest.fixture
def dv_env(reply_env, dashvector):
    return {**reply_env, "EMBEDDING_MODEL": "offline-embedding", "KB_MIN_SCORE": "0.18", "KB_BACKEND": "dashvector",
            "DASHVECTOR_ENDPOINT": dashvector.url, "DASHVECTOR_API_KEY": dashvector.api_key}


def age_the_last_look():
    for loaded in retrieve._LOADED.values():
        loaded.checked_at -= retrieve.CHECK_SECONDS + 1


def test_an_answer_comes_from_the_collection_with_its_source_and_no_index_in_memory(reply, dv_env, use_env, llm,
                                                                                    sink, kb, dashvector):
    use_env(dv_env)
    status, answer = ask(reply, sink, "差旅报销要在多少天内提交？")
    assert status == "answered" and "来源：员工手册.md「报销」" in answer.splitlines()[-1]
    collection = dashvector.collections["dingbot_knowledge"]
    assert collection["metric"] == "dotproduct" and collection["docs"] and dashvector.queries == 1
    assert not (kb / ".index" / "index.json").exists() and not list((kb / ".index").glob("vectors-*"))
    ledger = json.loads((kb / ".index" / remote.LEDGER).read_text("utf-8"))["files"]
    assert sorted(i for entry in ledger.values() for i in entry["ids"]) == sorted(collection["docs"])
    assert all(loaded.index is None for loaded in retrieve._LOADED.values())


def test_a_changed_document_is_sent_again_alone_and_a_removed_one_leaves_the_collection(reply, dv_env, use_env, llm,
                                                                                       sink, kb, dashvector):
    use_env(dv_env)
    ask(reply, sink, "差旅报销要在多少天内提交？")
    docs = dashvector.docs("dingbot_knowledge")
    before, embedded = dict(docs), llm.embedded
    handbook = [i for i, d in docs.items() if d["fields"]["source"] == "员工手册.md"]
    (kb / "员工手册.md").write_text("# 报销\n\n差旅报销要在 30 天内提交。\n", "utf-8")
    removed = [p for p in kb.iterdir() if p.is_file() and p.name != "员工手册.md"][0]
    removed.unlink()
    age_the_last_look()
    _, answer = ask(reply, sink, "差旅报销要在多少天内提交？")
    assert "30 天" in json.dumps(llm.requests[-1]["messages"], ensure_ascii=False)
    assert llm.embedded - embedded == 2  # the changed document's one chunk and the question
    assert not set(handbook) & set(docs)
    assert not any(d["fields"]["source"] == removed.name for d in docs.values())
    kept = {i for i, d in before.items() if d["fields"]["source"] not in ("员工手册.md", removed.name)}
    assert kept <= set(docs)


def test_a_code_in_a_chunk_admits_it_below_the_floor_as_the_embedded_index_does(reply, dv_env, use_env, llm, sink,
                                                                                 kb):
    use_env({**dv_env, "KB_MIN_SCORE": "0.99"})
    _, answer = ask(reply, sink, "How do I reset the DB-200?")
    assert "来源：" in answer.splitlines()[-1]
    _, answer = ask(reply, sink, "今天天气怎么样")
    assert "来源：" not in answer


def test_the_collection_down_costs_the_knowledge_not_the_answer(reply, dv_env, use_env, llm, sink, kb, dashvector,
                                                                caplog):
    use_env({**dv_env, "DASHVECTOR_API_KEY": "sk-wrong"})
    status, answer = ask(reply, sink, "差旅报销要在多少天内提交？")
    assert status == "answered" and "来源：" not in answer
    assert "DashVector" in caplog.text and "sk-wrong" not in caplog.text


def test_kb_backend_dashvector_needs_its_endpoint_and_key(reply_env):
    with pytest.raises(ConfigError) as raised:
        ReplyConfig.from_env({**reply_env, "KB_BACKEND": "dashvector"})
    assert raised.value.variable == "DASHVECTOR_ENDPOINT"
    with pytest.raises(ConfigError) as raised:
        ReplyConfig.from_env({**reply_env, "KB_BACKEND": "elastic"})
    assert raised.value.variable == "KB_BACKEND"


def test_the_loopback_refuses_what_dashvector_refuses(dashvector):
    headers = {"dashvector-auth-token": dashvector.api_key}
    answer = requests.post(f"{dashvector.url}/v1/collections/none/query", json={"vector": [1.0], "topk": 1},
                           headers=headers, timeout=5).json()
    assert answer["code"] == -2021
    assert requests.get(f"{dashvector.url}/v1/collections/none", timeout=5).status_code == 401
    engine = DashVector(dashvector.url, dashvector.api_key, "c", 5)
    engine.ensure(3)
    with pytest.raises(DashVectorError, match="dimension 3"):
        engine.ensure(4)
    from shared.reply.knowledge.chunking import Chunk
    with pytest.raises(DashVectorError, match="-2019"):
        engine.upsert([("a-0", Chunk("a.md", None, "", "x"), [1.0, 0.0])])
    answer = requests.post(f"{dashvector.url}/v1/collections/c/query", json={"vector": [1.0, 0, 0], "topk": 2000},
                           headers=headers, timeout=5).json()
    assert answer["code"] == -2041


def test_make_kb_fills_the_collection(tmp_path, dashvector, capsys):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import kb as make_kb

    folder = tmp_path / "dingbot" / "knowledge"
    shutil.copytree(SAMPLES, folder)
    env = tmp_path / "dv.env"
    env.write_text(f"KB_BACKEND=dashvector\nDASHVECTOR_ENDPOINT={dashvector.url}\n"
                   f"DASHVECTOR_API_KEY={dashvector.api_key}\n", "utf-8")
    assert make_kb.main(["--oss-dir", str(tmp_path), "--offline", "--env-file", str(env)]) == 0
    out = capsys.readouterr().out
    assert "新增  员工手册.md" in out and "DashVector 集合 dingbot_knowledge" in out
    assert dashvector.docs("dingbot_knowledge")
