"""The console zips work on their own: unpacked, only the zip (plus what FC's python3.10 runtime
provides, at the runtime's own versions: requests 2.28.1 with urllib3 1.26, oss2 2.16.0, aliyun-fc2
2.5.2) on ``sys.path``, under a real CPython 3.10."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import fixtures
import pytest
from conftest import API_KEY

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import package  # noqa: E402

PYTHON310 = package.find_python310()
# Imported only when someone sends a file, or (oss2) when OSS_BUCKET is set.
LAZY = {"pypdf", "defusedxml", "oss2"}
FC_RUNTIME = ROOT / "devstack" / "fc-python310-runtime.txt"
needs_310 = pytest.mark.skipif(PYTHON310 is None, reason="no CPython 3.10 on this machine to act as the FC runtime")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--build-dir", str(out / "build"),
                    "--dist-dir", str(out / "dist")], check=True, capture_output=True)
    runtime = out / "runtime"
    if PYTHON310:
        # What FC's python3.10 provides, at the versions it ships.
        subprocess.run([PYTHON310, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
                        str(runtime), "-r", str(FC_RUNTIME)], check=True, capture_output=True,
                       env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
    return out / "dist", runtime


def unpack(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(into)
    return into


def reply_with_a_message(built, tmp_path: Path, sink) -> tuple:
    """The reply zip unpacked, the runtime beside it, an empty OSS mount and a message for it."""
    dist, runtime = built
    code = unpack(dist / "dingtalk_chatgpt_reply.zip", tmp_path / "code")
    (tmp_path / "oss").mkdir()
    return code, runtime, parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()


def run_isolated(code_dir: Path, runtime: Path, script: str, env: dict) -> dict:
    bootstrap = f"import sys; sys.path[:0] = [{str(code_dir)!r}, {str(runtime)!r}]\n" + script
    result = subprocess.run([PYTHON310, "-I", "-S", "-c", bootstrap], capture_output=True, text=True,
                            env=env, cwd=code_dir, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("function", package.FUNCTIONS)
def test_zip_has_index_at_root_shared_and_no_tests_or_foreign_caches(built, function):
    dist, _ = built
    names = zipfile.ZipFile(dist / f"{function}.zip").namelist()
    own, other = ("receiver", "reply") if function == "dingtalk_conversation" else ("reply", "receiver")
    assert "index.py" in names and "shared/common/settings.py" in names and f"shared/{own}/app.py" in names
    assert not any(n.startswith(f"shared/{other}/") for n in names)
    assert not any(n.startswith(("tests/", "devstack/", "scripts/")) for n in names)
    assert not any("/tests/" in n for n in names)
    caches = [n for n in names if n.endswith(".pyc")]
    if PYTHON310:
        assert caches and all(".cpython-310." in n for n in caches)
        assert "shared/common/__pycache__/settings.cpython-310.pyc" in names


def test_receiver_zip_carries_no_third_party_package_and_stays_under_one_mib(built):
    dist, _ = built
    archive = zipfile.ZipFile(dist / "dingtalk_conversation.zip")
    assert {name.split("/")[0] for name in archive.namelist()} <= {"index.py", "shared", "__pycache__"}
    assert (dist / "dingtalk_conversation.zip").stat().st_size < 1024 * 1024


def test_reply_zip_carries_no_mcp_sdk_and_stays_under_18_mib(built):
    """The MCP client is our own (tools/mcp.py): the SDK and its web-server kin (about 8 MB) stay out."""
    dist, _ = built
    archive = zipfile.ZipFile(dist / "dingtalk_chatgpt_reply.zip")
    tops = {name.split("/")[0] for name in archive.namelist()}
    assert not tops & {"mcp", "mcp_types", "starlette", "uvicorn", "cryptography", "opentelemetry", "lxml",
                       "readability", "chardet"}
    assert (dist / "dingtalk_chatgpt_reply.zip").stat().st_size <= 12 * 1024 * 1024


def test_every_bundled_distribution_is_pinned_by_the_lock(built):
    dist, _ = built
    names = zipfile.ZipFile(dist / "dingtalk_chatgpt_reply.zip").namelist()
    dist_infos = {n.split("/")[0][:-len(".dist-info")] for n in names if n.split("/")[0].endswith(".dist-info")}
    shipped = {f"{package.normal_name(name)}=={version}" for name, version in (d.rsplit("-", 1) for d in dist_infos)}
    assert shipped and shipped == set(package.bundled_pins("dingtalk_chatgpt_reply"))


@needs_310
def test_receiver_zip_invokes_through_the_fc3_api_on_python310(built, tmp_path, fc_api):
    dist, runtime = built
    code = unpack(dist / "dingtalk_conversation.zip", tmp_path / "code")
    script = """
import json, sys, time, index
from shared.receiver.dingtalk.signature import compute_sign
ts = str(int(time.time() * 1000))
body = json.dumps({"msgtype": "text", "text": {"content": "hi"}, "msgId": "m1", "conversationId": "c",
                   "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=x"})
event = json.dumps({"headers": {"Timestamp": ts, "Sign": compute_sign("s3cret", ts)}, "body": body,
                    "requestContext": {"http": {"method": "POST"}}}).encode()
class Creds:
    access_key_id, access_key_secret, security_token = "STS.local-ak", "local-sk-secret", "local-sts-token"
class Ctx: credentials = Creds(); request_id = "r"; account_id = "1"; region = "cn-hangzhou"
result = index.handler(event, Ctx())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alibabacloud_fc20230330", "aiohttp", "cryptography"))
print(json.dumps({"status": result["statusCode"], "file": index.__file__, "heavy": heavy}))
"""
    env = {"DINGTALK_APP_SECRET": "s3cret", "ENDPOINT": fc_api.url, "PATH": "/usr/bin:/bin"}
    outcome = run_isolated(code, runtime, script, env)
    assert (outcome["status"], outcome["heavy"]) == (200, [])
    assert outcome["file"].startswith(str(code))
    [invocation] = fc_api.invocations
    assert invocation["api"] == "fc3" and invocation["payload"]["question"] == "hi"


@needs_310
def test_reply_zip_answers_on_python310_and_carries_nothing_a_webhook_answer_does_not_import(
        built, tmp_path, llm, sink):
    code, runtime, event = reply_with_a_message(built, tmp_path, sink)
    script = f"""
import json, sys, index
class Ctx: request_id = "r"; credentials = None
status = json.loads(index.handler({event!r}, Ctx()))["status"]
print(json.dumps({{"status": status, "modules": sorted({{m.split(".")[0] for m in sys.modules}}),
                  "openai": sys.modules["openai"].__file__}}))
"""
    env = {"PATH": "/usr/bin:/bin", "CHATGPT_API_KEY": API_KEY, "ENDPOINT": llm.url,
           "OSS_MOUNT_POINT": str(tmp_path / "oss"), "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1"}
    outcome = run_isolated(code, runtime, script, env)
    assert outcome["status"] == "answered" and outcome["openai"].startswith(str(code))
    assert "你好" in sink.wait_for(1)[0]["text"]["content"]
    carried = {p.name.removesuffix(".py") for p in code.iterdir() if (p.is_dir() or p.suffix == ".py")
               and p.name not in ("index.py", "__pycache__") and not p.name.endswith(".dist-info")}
    assert carried - set(outcome["modules"]) == LAZY
    assert not LAZY & set(outcome["modules"])


@needs_310
def test_reply_zip_reads_pdf_docx_and_web_pages_on_python310(built, tmp_path):
    dist, runtime = built
    code = unpack(dist / "dingtalk_chatgpt_reply.zip", tmp_path / "code")
    (tmp_path / "a.pdf").write_bytes(fixtures.pdf("Quarterly report: revenue grew"))
    (tmp_path / "a.docx").write_bytes(fixtures.docx(["第一段", "第二段"]))
    page = "<html><head><title>公告</title></head><body><nav>菜单</nav><article>" + "<p>下周一全员放假一天。</p>" * 5 \
        + "</article></body></html>"
    script = f"""
import json, sys
from shared.reply.documents import read_document
from shared.reply.tools.reader import main_text
pdf = read_document("a.pdf", open({str(tmp_path / "a.pdf")!r}, "rb").read(), 1000).text
docx = read_document("a.docx", open({str(tmp_path / "a.docx")!r}, "rb").read(), 1000).text
page = main_text({page!r})
print(json.dumps({{"pdf": pdf, "docx": docx, "page": page}}, ensure_ascii=False))
"""
    outcome = run_isolated(code, runtime, script, {"PATH": "/usr/bin:/bin"})
    assert "revenue grew" in outcome["pdf"] and outcome["docx"] == "第一段\n第二段"
    assert "下周一全员放假一天" in outcome["page"] and "菜单" not in outcome["page"]


@needs_310
def test_reply_zip_shows_the_card_before_it_loads_the_model_stage(built, tmp_path, llm, sink):
    """The card goes out before the model stage is imported; the SDK meanwhile loads on a thread of its own
    (preload.py), and the model stage takes the client that thread built."""
    code, runtime, event = reply_with_a_message(built, tmp_path, sink)
    script = f"""
import json, sys, threading, index
from shared.reply.dingtalk.openapi import OpenApi
loaded, loading, call = [], [], OpenApi.call
def noting(self, what, *args, **kwargs):
    if what == "card create and deliver":
        loaded.extend(sorted(m for m in sys.modules if m.startswith(("openai", "shared.reply"))))
        loading.extend(t.name for t in threading.enumerate())
    return call(self, what, *args, **kwargs)
OpenApi.call = noting
class Ctx: request_id = "r"; credentials = None
status = json.loads(index.handler({event!r}, Ctx()))["status"]
from shared.reply.llm.client import cached_client
info = cached_client.cache_info()
print(json.dumps({{"status": status, "loaded": loaded, "loading": loading, "built": info.misses, "hits": info.hits}}))
"""
    env = {"PATH": "/usr/bin:/bin", "CHATGPT_API_KEY": API_KEY, "ENDPOINT": llm.url,
           "OSS_MOUNT_POINT": str(tmp_path / "oss"), "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1",
           "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret, "DINGTALK_API_ENDPOINT": sink.url}
    outcome = run_isolated(code, runtime, script, env)
    assert outcome["status"] == "answered" and "shared.reply.dingtalk.cards" in outcome["loaded"]
    later = ("shared.reply.llm.model", "shared.reply.llm.loop", "shared.reply.brains.chat", "shared.reply.tools",
             "shared.reply.knowledge", "shared.reply.streaming")
    assert [m for m in outcome["loaded"] if m.startswith(later)] == []
    assert "load-model-sdk" in outcome["loading"]
    assert outcome["built"] == 1 and outcome["hits"] >= 1  # one client, built by the preload, used by the answer


@needs_310
def test_the_runtime_for_these_tests_has_fcs_own_versions(built):
    _, runtime = built
    script = """
import json, requests, urllib3, oss2, fc2
print(json.dumps([requests.__version__, urllib3.__version__[:5], oss2.__version__, fc2.__version__]))
"""
    assert run_isolated(runtime, runtime, script, {"PATH": "/usr/bin:/bin"}) == ["2.28.1", "1.26.", "2.16.0", "2.5.2"]


@needs_310
def test_reply_zip_claims_through_the_oss_api_signed_v4_over_fcs_old_oss2(built, tmp_path, llm, sink):
    from devstack.fake_oss import FakeOSS
    code, runtime, event = reply_with_a_message(built, tmp_path, sink)
    script = f"""
import json, index
class Creds:
    access_key_id, access_key_secret, security_token = "STS.local-ak", "local-sk-secret", "local-sts-token"
class Ctx: request_id = "r"; credentials = Creds(); region = "cn-local"
statuses = [json.loads(index.handler({event!r}, Ctx()))["status"] for _ in range(2)]
import oss2
print(json.dumps({{"statuses": statuses, "oss2": [oss2.__version__, oss2.__file__]}}))
"""
    server = FakeOSS().start()
    try:
        env = {"PATH": "/usr/bin:/bin", "CHATGPT_API_KEY": API_KEY, "ENDPOINT": llm.url,
               "OSS_MOUNT_POINT": str(tmp_path / "oss"), "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1",
               "OSS_BUCKET": server.bucket, "OSS_ENDPOINT": server.endpoint}
        outcome = run_isolated(code, runtime, script, env)
        assert outcome["statuses"] == ["answered", "duplicate"]
        assert outcome["oss2"][0] >= "2.18.4" and outcome["oss2"][1].startswith(str(code))
        assert server.refused == {} and any(key.startswith("dingbot/claims/") for key in server.objects)
    finally:
        server.stop()


@needs_310
@pytest.mark.parametrize("brain", ["bailian", "dify"])
def test_reply_zip_answers_through_an_application_platform_over_fcs_urllib3(built, tmp_path, sink, brain):
    from devstack.fake_bailian import APP_ID, FakeBailian
    from devstack.fake_dify import FakeDify

    code, runtime, event = reply_with_a_message(built, tmp_path, sink)
    again = parse_callback(json.dumps(callback_body("你好", webhook_base=sink.url)).encode()).to_payload()
    script = """
import json, index
class Ctx: request_id = "r"
print(json.dumps([json.loads(index.handler({event!r}, Ctx()))["status"]]))
"""
    server = (FakeBailian() if brain == "bailian" else FakeDify()).start()
    try:
        env = {"PATH": "/usr/bin:/bin", "OSS_MOUNT_POINT": str(tmp_path / "oss"),
               "ALLOWED_WEBHOOK_HOSTS": "127.0.0.1", "TIMEOUT": "1", "BRAIN": brain}
        if brain == "bailian":
            env.update({"DASHSCOPE_API_KEY": server.api_key, "DASHSCOPE_ENDPOINT": server.endpoint,
                        "BAILIAN_APP_ID": APP_ID})
        else:
            env.update({"DIFY_API_KEY": server.api_key, "DIFY_ENDPOINT": server.endpoint})
        assert run_isolated(code, runtime, script.format(event=event), env) == ["answered"]
        assert "你问：你好" in json.dumps(sink.wait_for(1)[-1], ensure_ascii=False)
        server.fail_next({"silent": 3.0})  # a platform that sends its headers and then nothing
        assert run_isolated(code, runtime, script.format(event=again), env) == ["llm-error"]
        assert "请求超时，请稍后再试。" in json.dumps(sink.wait_for(2)[-1], ensure_ascii=False)
    finally:
        server.stop()
