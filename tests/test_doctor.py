"""``make doctor`` tells a good configuration from a broken one, naming what to fix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_KEY, APP_SECRET

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import doctor  # noqa: E402

GOOD = {"REGION": "cn-hangzhou", "FC_ROLE_ARN": "acs:ram::1234567890:role/dingbot", "OSS_BUCKET": "my-bot",
        "OSS_ENDPOINT": "http://oss-cn-hangzhou-internal.aliyuncs.com", "DINGTALK_APP_SECRET": APP_SECRET,
        "CHATGPT_API_KEY": API_KEY}


def run(tmp_path, env, *args, capsys=None):
    env_file = tmp_path / "doctor.env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env.items()))
    code = doctor.main(["--env-file", str(env_file), *args])
    return code, capsys.readouterr().out


@pytest.fixture(autouse=True)
def clean_environment(use_env):
    use_env({})


def test_good_configuration_is_all_ok(tmp_path, capsys):
    (tmp_path / "oss").mkdir()
    code, out = run(tmp_path, GOOD, "--oss-dir", str(tmp_path / "oss"), capsys=capsys)
    assert code == 0 and "FIX" not in out and "8 OK, 0 to fix" in out


@pytest.mark.parametrize("name, value, expected", [
    ("DINGTALK_APP_SECRET", "", "DINGTALK_APP_SECRET"),
    ("FC_ROLE_ARN", "dingbot-role", "acs:ram::"),
    ("OSS_ENDPOINT", "oss-cn-hangzhou.aliyuncs.com", "OSS_ENDPOINT"),
    ("HISTORY_LENGTH", "lots", "HISTORY_LENGTH"),
])
def test_each_broken_setting_is_named_with_its_fix(tmp_path, capsys, name, value, expected):
    code, out = run(tmp_path, {**GOOD, name: value}, capsys=capsys)
    assert code == 1
    assert any(line.startswith("FIX") and expected in line for line in out.splitlines())


def test_every_problem_is_reported_in_one_run(tmp_path, capsys):
    broken = {**GOOD, "DINGTALK_APP_SECRET": "", "HISTORY_LENGTH": "lots", "TIMEOUT": "0", "OSS_BUCKET": "Bad_Name"}
    code, out = run(tmp_path, broken, capsys=capsys)
    fixes = [line for line in out.splitlines() if line.startswith("FIX")]
    for name in ("DINGTALK_APP_SECRET", "HISTORY_LENGTH", "TIMEOUT", "OSS_BUCKET"):
        assert any(name in line for line in fixes), name
    assert code == 1 and "4 to fix" in out


def test_the_examples_placeholders_are_not_taken_for_real_values(tmp_path, capsys):
    example = doctor.read_dotenv(ROOT / ".env.example").values
    code, out = run(tmp_path, {**GOOD, "FC_ROLE_ARN": example["FC_ROLE_ARN"], "OSS_BUCKET": example["OSS_BUCKET"]},
                    capsys=capsys)
    assert code == 1 and out.count("still the example's placeholder") == 2


def test_without_a_dotenv_it_says_how_to_make_one(tmp_path, capsys):
    code = doctor.main(["--env-file", str(tmp_path / "missing.env")])
    assert code == 1 and "cp .env.example .env" in capsys.readouterr().out


def test_a_malformed_line_and_the_ambiguous_endpoint_name_are_reported(tmp_path, capsys):
    env_file = tmp_path / "doctor.env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in GOOD.items()) + "\nthis line is wrong\nENDPOINT=https://x\n")
    code = doctor.main(["--env-file", str(env_file)])
    out = capsys.readouterr().out
    assert code == 1 and f"line {len(GOOD) + 1} is not NAME=value" in out
    assert "name the model service LLM_ENDPOINT" in out


def test_a_missing_mount_is_reported_and_never_created(tmp_path, capsys):
    code, out = run(tmp_path, GOOD, "--oss-dir", str(tmp_path / "mnt" / "oss"), capsys=capsys)
    assert code == 1 and "FIX  OSS mount" in out and "does not exist" in out
    assert not (tmp_path / "mnt").exists()


def test_unwritable_oss_dir_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = run(tmp_path, GOOD, "--oss-dir", str(blocker / "sub"), capsys=capsys)
    assert code == 1 and "FIX  OSS mount" in out


def test_model_endpoint_check_uses_the_key(tmp_path, capsys, llm):
    code, out = run(tmp_path, {**GOOD, "LLM_ENDPOINT": llm.url}, "--check-llm", capsys=capsys)
    assert code == 0 and "OK   model endpoint" in out
    code, out = run(tmp_path, {**GOOD, "LLM_ENDPOINT": llm.url, "CHATGPT_API_KEY": "sk-wrong"}, "--check-llm",
                    capsys=capsys)
    assert code == 1 and "key was refused" in out


def test_receiver_probe_tells_a_matching_secret_from_a_wrong_one(tmp_path, capsys, receiver_env):
    env = {**receiver_env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "devstack.http_runtime", str(ROOT / "dingtalk_conversation")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        code, out = run(tmp_path, GOOD, "--url", url, capsys=capsys)
        assert code == 0 and "accepted the signature" in out
        code, out = run(tmp_path, {**GOOD, "DINGTALK_APP_SECRET": "other"}, "--url", url, capsys=capsys)
        assert code == 1 and "signature refused" in out
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_spent_dingtalk_quota_noted_on_the_mount_is_shown(tmp_path, capsys):
    from shared.reply.oss.blobs import MountBlobs
    from shared.reply.oss.quota import QuotaMemo

    (tmp_path / "oss").mkdir()
    QuotaMemo(MountBlobs(tmp_path / "oss" / "dingbot")).remember("Forbidden.AccessDenied.ApiCountLimitForOrg")
    code, out = run(tmp_path, GOOD, "--oss-dir", str(tmp_path / "oss"), capsys=capsys)
    assert code == 1 and "FIX  DingTalk API quota: the organisation's monthly API quota is spent" in out


def test_the_dingtalk_app_check_gets_a_token_with_the_key_and_secret(tmp_path, capsys, sink):
    app = {"DINGTALK_APP_KEY": sink.app_key, "DINGTALK_API_ENDPOINT": sink.url}
    code, out = run(tmp_path, {**GOOD, **app, "DINGTALK_APP_SECRET": sink.app_secret}, "--no-deploy",
                    "--check-dingtalk", capsys=capsys)
    assert code == 0 and "OK   DingTalk app" in out and "built-in AI card" in out
    code, out = run(tmp_path, {**GOOD, **app, "DINGTALK_APP_SECRET": "wrong"}, "--no-deploy", "--check-dingtalk",
                    capsys=capsys)
    assert code == 1 and "invalidClientIdOrSecret" in out


def oss_env(server, **extra):
    creds = server.credentials
    return {**GOOD, "OSS_BUCKET": server.bucket, "OSS_ENDPOINT": server.endpoint, "OSS_REGION": server.region,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": creds.access_key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET":
            creds.access_key_secret, "ALIBABA_CLOUD_SECURITY_TOKEN": creds.security_token, **extra}


@pytest.mark.parametrize("versioning", ["", "Enabled"])
def test_check_oss_writes_reads_and_deletes_signed_v4_and_reports_versioning(tmp_path, capsys, versioning):
    from devstack.fake_oss import FakeOSS
    server = FakeOSS(versioning=versioning).start()
    try:
        server.objects["dingbot/"] = (b"", 0.0)
        code, out = run(tmp_path, oss_env(server), "--no-deploy", "--check-oss", capsys=capsys)
    finally:
        server.stop()
    assert "OK   OSS API:" in out and "V4-signed write, read and delete work" in out
    assert "OK   OSS mounted folder" in out and list(server.objects) == ["dingbot/"] and server.refused == {}
    if versioning:
        assert code == 1 and "FIX  OSS versioning: Enabled" in out and "both answer" in out
    else:
        assert code == 0 and "OK   OSS versioning: never turned on" in out


def test_check_oss_names_the_missing_access_key_the_refusal_and_the_missing_folder(tmp_path, capsys):
    from devstack.fake_oss import FakeOSS
    server = FakeOSS().start()
    try:
        _, out = run(tmp_path, {**GOOD, "OSS_BUCKET": server.bucket}, "--no-deploy", "--check-oss", capsys=capsys)
        assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in out
        _, out = run(tmp_path, oss_env(server, OSS_REGION="cn-hangzhou"), "--no-deploy", "--check-oss", capsys=capsys)
        assert "FIX  OSS API:" in out and "InvalidArgument" in out and "OSS_REGION" in out
        _, out = run(tmp_path, oss_env(server), "--no-deploy", "--check-oss", capsys=capsys)
        assert "FIX  OSS mounted folder: dingbot/ does not exist" in out
    finally:
        server.stop()
