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
    assert code == 0 and not any(line.startswith("需修改") for line in out.splitlines())
    assert "8 项正常，0 项需修改" in out


@pytest.mark.parametrize("name, value, expected", [
    ("DINGTALK_APP_SECRET", "", "DINGTALK_APP_SECRET"),
    ("FC_ROLE_ARN", "dingbot-role", "acs:ram::"),
    ("OSS_ENDPOINT", "oss-cn-hangzhou.aliyuncs.com", "OSS_ENDPOINT"),
    ("HISTORY_LENGTH", "lots", "HISTORY_LENGTH"),
])
def test_each_broken_setting_is_named_with_its_fix(tmp_path, capsys, name, value, expected):
    code, out = run(tmp_path, {**GOOD, name: value}, capsys=capsys)
    assert code == 1
    assert any(line.startswith("需修改") and expected in line for line in out.splitlines())


def test_every_problem_is_reported_in_one_run(tmp_path, capsys):
    broken = {**GOOD, "DINGTALK_APP_SECRET": "", "HISTORY_LENGTH": "lots", "TIMEOUT": "0", "OSS_BUCKET": "Bad_Name"}
    code, out = run(tmp_path, broken, capsys=capsys)
    fixes = [line for line in out.splitlines() if line.startswith("需修改")]
    for name in ("DINGTALK_APP_SECRET", "HISTORY_LENGTH", "TIMEOUT", "OSS_BUCKET"):
        assert any(name in line for line in fixes), name
    assert code == 1 and "4 项需修改" in out


def test_the_examples_placeholders_are_not_taken_for_real_values(tmp_path, capsys):
    example = doctor.read_dotenv(ROOT / ".env.example").values
    code, out = run(tmp_path, {**GOOD, "FC_ROLE_ARN": example["FC_ROLE_ARN"], "OSS_BUCKET": example["OSS_BUCKET"]},
                    capsys=capsys)
    assert code == 1 and out.count("还是示例里的占位值") == 2


def test_without_a_dotenv_it_says_how_to_make_one(tmp_path, capsys):
    code = doctor.main(["--env-file", str(tmp_path / "missing.env")])
    assert code == 1 and "cp .env.example .env" in capsys.readouterr().out


def test_a_malformed_line_and_the_ambiguous_endpoint_name_are_reported(tmp_path, capsys):
    env_file = tmp_path / "doctor.env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in GOOD.items()) + "\nthis line is wrong\nENDPOINT=https://x\n")
    code = doctor.main(["--env-file", str(env_file)])
    out = capsys.readouterr().out
    assert code == 1 and f"第 {len(GOOD) + 1} 行不是「名称=值」的格式" in out
    assert "模型服务请写成 LLM_ENDPOINT" in out


def test_a_missing_mount_is_reported_and_never_created(tmp_path, capsys):
    code, out = run(tmp_path, GOOD, "--oss-dir", str(tmp_path / "mnt" / "oss"), capsys=capsys)
    assert code == 1 and "需修改  OSS 挂载" in out and "不存在" in out
    assert not (tmp_path / "mnt").exists()


def test_unwritable_oss_dir_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = run(tmp_path, GOOD, "--oss-dir", str(blocker / "sub"), capsys=capsys)
    assert code == 1 and "需修改  OSS 挂载" in out


def test_model_endpoint_check_uses_the_key(tmp_path, capsys, llm):
    code, out = run(tmp_path, {**GOOD, "LLM_ENDPOINT": llm.url}, "--check-llm", capsys=capsys)
    assert code == 0 and "正常    模型服务" in out
    code, out = run(tmp_path, {**GOOD, "LLM_ENDPOINT": llm.url, "CHATGPT_API_KEY": "sk-wrong"}, "--check-llm",
                    capsys=capsys)
    assert code == 1 and "Key 被拒绝" in out


def test_check_llm_asks_the_bailian_application_or_the_dify_app_the_brain_names(tmp_path, capsys):
    from devstack.fake_bailian import APP_ID, FakeBailian
    from devstack.fake_dify import FakeDify

    bailian, dify = FakeBailian().start(), FakeDify().start()
    try:
        bailian_env = {**GOOD, "BRAIN": "bailian", "BAILIAN_APP_ID": APP_ID, "DASHSCOPE_API_KEY": bailian.api_key,
                       "DASHSCOPE_ENDPOINT": bailian.endpoint}
        code, out = run(tmp_path, bailian_env, "--check-llm", capsys=capsys)
        assert code == 0 and "正常    百炼应用" in out and "【离线百炼应用】" in out
        code, out = run(tmp_path, {**bailian_env, "BAILIAN_APP_ID": "wrong"}, "--check-llm", capsys=capsys)
        assert code == 1 and "找不到百炼应用" in out
        dify_env = {**GOOD, "BRAIN": "dify", "DIFY_API_KEY": "app-wrong", "DIFY_ENDPOINT": dify.endpoint}
        code, out = run(tmp_path, dify_env, "--check-llm", capsys=capsys)
        assert code == 1 and "Dify 应用拒绝了 API Key" in out
    finally:
        bailian.stop()
        dify.stop()


def test_receiver_probe_tells_a_matching_secret_from_a_wrong_one(tmp_path, capsys, receiver_env):
    env = {**receiver_env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "devstack.http_runtime", str(ROOT / "dingtalk_conversation")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        code, out = run(tmp_path, GOOD, "--url", url, capsys=capsys)
        assert code == 0 and "签名通过" in out
        code, out = run(tmp_path, {**GOOD, "DINGTALK_APP_SECRET": "other"}, "--url", url, capsys=capsys)
        assert code == 1 and "签名被拒绝" in out
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_spent_dingtalk_quota_noted_on_the_mount_is_shown(tmp_path, capsys):
    from shared.reply.oss.blobs import MountBlobs
    from shared.reply.oss.quota import QuotaMemo

    (tmp_path / "oss").mkdir()
    QuotaMemo(MountBlobs(tmp_path / "oss" / "dingbot")).remember("Forbidden.AccessDenied.ApiCountLimitForOrg")
    code, out = run(tmp_path, GOOD, "--oss-dir", str(tmp_path / "oss"), capsys=capsys)
    assert code == 1 and "需修改  钉钉接口额度：本组织本月的钉钉接口调用额度已用完" in out


def test_the_dingtalk_app_check_gets_a_token_with_the_key_and_secret(tmp_path, capsys, sink):
    app = {"DINGTALK_APP_KEY": sink.app_key, "DINGTALK_API_ENDPOINT": sink.url}
    code, out = run(tmp_path, {**GOOD, **app, "DINGTALK_APP_SECRET": sink.app_secret}, "--no-deploy",
                    "--check-dingtalk", capsys=capsys)
    assert code == 0 and "正常    钉钉应用" in out and "钉钉内置的 AI 卡片" in out
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
    assert "正常    OSS API：" in out and "V4 签名的写、读、删都正常" in out
    assert "正常    OSS 挂载目录" in out and list(server.objects) == ["dingbot/"] and server.refused == {}
    if versioning:
        assert code == 1 and "需修改  OSS 版本控制：Enabled" in out and "可能都回答同一条消息" in out
    else:
        assert code == 0 and "正常    OSS 版本控制：从未开启" in out


def test_check_oss_names_the_missing_access_key_the_refusal_and_the_missing_folder(tmp_path, capsys):
    from devstack.fake_oss import FakeOSS
    server = FakeOSS().start()
    try:
        _, out = run(tmp_path, {**GOOD, "OSS_BUCKET": server.bucket}, "--no-deploy", "--check-oss", capsys=capsys)
        assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in out
        _, out = run(tmp_path, oss_env(server, OSS_REGION="cn-hangzhou"), "--no-deploy", "--check-oss", capsys=capsys)
        assert "需修改  OSS API：" in out and "InvalidArgument" in out and "OSS_REGION" in out
        _, out = run(tmp_path, oss_env(server), "--no-deploy", "--check-oss", capsys=capsys)
        assert "需修改  OSS 挂载目录：" in out and "里没有 dingbot/" in out
    finally:
        server.stop()



def test_problems_name_the_variable_as_dotenv_spells_it(tmp_path, capsys):
    code, out = run(tmp_path, {**GOOD, "LLM_ENDPOINT": "ftp://models.example"}, "--no-deploy", capsys=capsys)
    [line] = [line for line in out.splitlines() if "http(s)" in line]
    assert code == 1 and "LLM_ENDPOINT" in line and "ENDPOINT：" not in line.replace("LLM_ENDPOINT", "")
    assert "function's environment" not in out


def test_a_full_completions_url_is_accepted_and_said_so(tmp_path, capsys):
    code, out = run(tmp_path, {**GOOD, "LLM_ENDPOINT": "https://api.deepseek.com/v1/chat/completions",
                               "USER_API_KEY": "sk-d"}, "--no-deploy", capsys=capsys)
    assert code == 0 and "已按 https://api.deepseek.com/v1 使用" in out


def test_user_api_key_with_openai_says_it_was_not_used(tmp_path, capsys):
    code, out = run(tmp_path, {**GOOD, "USER_API_KEY": "sk-other"}, "--no-deploy", capsys=capsys)
    assert code == 0 and "USER_API_KEY 没有使用" in out


@pytest.mark.parametrize("url, sentence", [("xxx.fcapp.run", "不是 http(s) 地址"),
                                           ("http://127.0.0.1:9", "没有程序在应答")])
def test_the_receiver_probe_explains_a_bad_url_in_a_sentence(tmp_path, capsys, url, sentence):
    code, out = run(tmp_path, GOOD, "--no-deploy", "--url", url, capsys=capsys)
    [line] = [line for line in out.splitlines() if "接收函数地址" in line]
    assert code == 1 and sentence in line and "Error" not in line and "Exception" not in line


def test_each_robot_of_bots_is_checked_with_its_own_settings(tmp_path, capsys):
    (tmp_path / "oss").mkdir()
    bots = {"hr": {"DINGTALK_APP_SECRET": "hr-secret", "HISTORY_LENGTH": "lots"},
            "sales": {"DINGTALK_APP_SECRET": "sales-secret", "MODEL": "qwen-max"}}
    code, out = run(tmp_path, {**GOOD, "BOTS": json.dumps(bots)}, "--oss-dir", str(tmp_path / "oss"), capsys=capsys)
    lines = out.splitlines()
    assert code == 1 and any(line.startswith("需修改  机器人 hr 的设置：HISTORY_LENGTH") for line in lines)
    assert any(line.startswith("正常    机器人 sales 的设置：模型 qwen-max") for line in lines)
    code, out = run(tmp_path, {**GOOD, "BOTS": '{"hr": {}}'}, capsys=capsys)
    assert code == 1 and any(line.startswith("需修改") and "BOTS" in line for line in out.splitlines())
