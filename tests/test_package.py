"""The console zips work on their own: unpacked, only the zip (plus what FC's python3.10 runtime
provides) on ``sys.path``, under a real CPython 3.10."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import package  # noqa: E402

PYTHON310 = package.find_python310()
needs_310 = pytest.mark.skipif(PYTHON310 is None, reason="no CPython 3.10 on this machine to act as the FC runtime")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--build-dir", str(out / "build"),
                    "--dist-dir", str(out / "dist")], check=True, capture_output=True)
    runtime = out / "runtime"
    if PYTHON310:
        subprocess.run([PYTHON310, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
                        str(runtime), "requests", "aliyun-fc2"], check=True, capture_output=True)
    return out / "dist", runtime


def unpack(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(into)
    return into


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


@needs_310
def test_receiver_zip_serves_a_request_on_python310(built, tmp_path):
    dist, runtime = built
    code = unpack(dist / "dingtalk_conversation.zip", tmp_path / "code")
    script = """
import json, time, index
from shared.receiver.dingtalk.signature import compute_sign
ts = str(int(time.time() * 1000))
body = json.dumps({"msgtype": "text", "text": {"content": "hi"}, "msgId": "m1", "conversationId": "c",
                   "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=x"})
event = json.dumps({"headers": {"Timestamp": ts, "Sign": compute_sign("s3cret", ts)}, "body": body,
                    "requestContext": {"http": {"method": "POST"}}}).encode()
class Creds: access_key_id = "ak"; access_key_secret = "sk"; security_token = "tok"
class Ctx: credentials = Creds(); request_id = "r"; account_id = "1"; region = "cn-hangzhou"
result = index.handler(event, Ctx())
import alibabacloud_fc20230330.client, fc2
print(json.dumps({"status": result["statusCode"], "file": index.__file__}))
"""
    env = {"DINGTALK_APP_SECRET": "s3cret", "ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    outcome = run_isolated(code, runtime, script, env)
    assert outcome["status"] == 502
    assert outcome["file"].startswith(str(code))


@needs_310
def test_reply_zip_imports_the_openai_sdk_on_python310(built, tmp_path):
    dist, runtime = built
    code = unpack(dist / "dingtalk_chatgpt_reply.zip", tmp_path / "code")
    script = """
import json, index, openai
from alibabacloud_dingtalk.card_1_0.client import Client as CardClient
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
print(json.dumps({"status": json.loads(index.handler(b"not json", None))["status"], "openai": openai.__file__}))
"""
    outcome = run_isolated(code, runtime, script, {"PATH": "/usr/bin:/bin"})
    assert outcome["status"] == "malformed" and outcome["openai"].startswith(str(code))
