"""What a new user meets first: `make run` with their .env, restarting it, mistakes on the command line,
`make send` — answered with what to do, never a traceback."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import APP_SECRET

from devstack.dotenv import read_dotenv
from devstack.fake_llm import FakeLLM
from devstack.loopback import LoopbackServer, PortInUse, free_port
from devstack.settings import real_model
from devstack.stack import LocalStack, StackSettings

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **(env or {})})


# --- one name for the model endpoint -------------------------------------------------------------

def test_make_run_uses_the_provider_key_and_model_that_dotenv_names(tmp_path):
    provider = FakeLLM(api_key="sk-provider-key").start()
    try:
        model, notes = real_model({"LLM_ENDPOINT": provider.url, "USER_API_KEY": "sk-provider-key",
                                   "CHATGPT_API_KEY": "sk-openai-key", "MODEL": "provider-model",
                                   "ENDPOINT": "https://api.openai.com"})
        assert notes == [] and model.env["ENDPOINT"] == provider.url
        with LocalStack(StackSettings(state_dir=tmp_path, real_model=model)) as stack:
            exchange = stack.send("你好", conversation_id="cid-provider")
        assert exchange.outcome == "answered" and "你好" in exchange.replies[0]["text"]["content"]
        assert [r["model"] for r in provider.requests] == ["provider-model"]
    finally:
        provider.stop()


@pytest.mark.parametrize("env, note", [
    ({"LLM_ENDPOINT": "https://api.deepseek.com", "CHATGPT_API_KEY": "sk-x"}, None),
    ({"LLM_ENDPOINT": "https://api.openai.com", "USER_API_KEY": "sk-x"}, "CHATGPT_API_KEY"),
    ({"OPENAI_API_KEY": "sk-x"}, "不读取 OPENAI_API_KEY"),
    ({}, None),
])
def test_without_a_key_for_the_named_provider_make_run_stays_offline_and_says_why(env, note):
    model, notes = real_model(env)
    if env.get("LLM_ENDPOINT", "").endswith("deepseek.com"):
        assert model is not None and model.env["CHATGPT_API_KEY"] == "sk-x"  # the tutorial's fallback key
        return
    assert model is None
    assert (note is None and notes == []) or any(note in n for n in notes)


# --- restarting ----------------------------------------------------------------------------------

def test_make_run_starts_again_at_once_on_the_same_port(tmp_path):
    port = free_port()
    with LocalStack(StackSettings(state_dir=tmp_path, receiver_port=port)) as stack:
        assert stack.send("第一次").outcome == "answered"
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # the previous run left connections in TIME_WAIT
    with LocalStack(StackSettings(state_dir=tmp_path, receiver_port=port)) as stack:
        assert stack.send("第二次").outcome == "answered"


def test_a_port_a_live_program_listens_on_is_named_with_the_option_to_change_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for option in ("--receiver-port", "--fc-port", "--llm-port", "--dingtalk-port"):
            with pytest.raises(PortInUse, match=f"已被正在运行的程序占用.*{option}"):
                LoopbackServer.ensure_free(port, option)


# --- mistakes on the command line ----------------------------------------------------------------

@pytest.mark.parametrize("args, env, message", [
    (["--receiver-port", "70000"], {}, "'70000' 不是端口号"),
    ([], {"RECEIVER_PORT": "abc"}, "'abc' 不是端口号"),
    (["--fc-port", "-1"], {}, "'-1' 不是端口号"),
])
def test_a_wrong_port_is_one_usage_line_not_a_traceback(args, env, message):
    result = run_script("scripts/chat.py", *args, env=env)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_dotenv_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# comment\nMODEL=gpt\nnot a setting\nexport TIMEOUT=30\nSYSTEM_PROMPT='unclosed\n")
    dotenv = read_dotenv(path, environ={})
    assert dotenv.values == {"MODEL": "gpt", "TIMEOUT": "30", "SYSTEM_PROMPT": "'unclosed"}
    assert len(dotenv.warnings) == 2
    assert "第 3 行" in dotenv.warnings[0] and "第 5 行" in dotenv.warnings[1]


def test_ctrl_c_while_an_answer_streams_presses_stop_and_the_stack_keeps_answering(tmp_path):
    """With --stream the cards have buttons: Ctrl-C while an answer streams is the 停止 button."""
    chat = subprocess.Popen([sys.executable, "-u", "scripts/chat.py", "--offline", "--stream", "--receiver-port", "0",
                             "--state-dir", str(tmp_path)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={"PATH": os.environ["PATH"]},
                            start_new_session=True)
    seen: list = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: chat.stdout.read(1), "")), daemon=True)
    reader.start()

    def wait_for(text):
        deadline = time.monotonic() + 30
        while text not in "".join(seen):
            assert time.monotonic() < deadline and chat.poll() is None, "".join(seen)
            time.sleep(0.05)

    try:
        chat.stdin.write("写一篇长文\n")
        chat.stdin.flush()
        wait_for("第 1 段")
        os.killpg(chat.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        wait_for("已按下停止")
        wait_for("已停止\n")
        chat.stdin.write("你好\n")
        chat.stdin.flush()
        wait_for("收到：「你好」")
        chat.stdin.write("/quit\n")
        chat.stdin.flush()
        err = chat.stderr.read()
        chat.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        chat.kill()
    assert chat.returncode == 0 and "Traceback" not in err and "".join(seen).rstrip().endswith("已停止。")


# --- make send -----------------------------------------------------------------------------------

def test_make_send_signs_with_the_dotenv_secret_and_reaches_the_receiver(tmp_path, receiver_env):
    env = {**receiver_env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "devstack.http_runtime", str(ROOT / "dingtalk_conversation")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        (tmp_path / ".env").write_text(f"DINGTALK_APP_SECRET={APP_SECRET}\nRECEIVER_URL={url}\n")
        result = run_script("scripts/send_test_message.py", "--env-file", str(tmp_path / ".env"), "你好")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.returncode == 0 and result.stdout.startswith("HTTP 200")


def test_make_send_to_nothing_is_one_readable_line():
    result = run_script("scripts/send_test_message.py", "--secret", "s", "--url", f"http://127.0.0.1:{free_port()}",
                        "hi")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "没有程序在应答" in result.stderr


@pytest.mark.parametrize("args, conversation", [(["你好", "世界"], "cid-group-演示群"),
                                                (["--dm", "你好", "世界"], "cid-dm-")])
def test_make_send_to_the_local_stack_shows_the_answer_and_dm_is_one_to_one(tmp_path, args, conversation):
    with LocalStack(StackSettings(state_dir=tmp_path)) as stack:
        result = run_script("scripts/send_test_message.py", "--url", stack.receiver_url, "--state-dir", str(tmp_path),
                            "--env-file", str(tmp_path / "none.env"), *args)
        [invocation] = stack.fc.invocations
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("HTTP 200") and "收到：「你好 世界」" in result.stdout
    assert invocation["payload"]["conversationId"].startswith(conversation)
    assert (invocation["payload"]["conversationType"] == "1") == ("--dm" in args)


def test_a_dotenv_saved_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / ".env").write_bytes("\ufeffDINGTALK_APP_SECRET=abc\nMODEL=m\n".encode("utf-8"))
    dotenv = read_dotenv(tmp_path / ".env")
    assert dotenv.values == {"DINGTALK_APP_SECRET": "abc", "MODEL": "m"} and dotenv.warnings == []



def test_two_local_services_on_one_port_is_one_line_naming_both_settings(tmp_path):
    port = free_port()
    result = run_script("scripts/chat.py", "--state-dir", str(tmp_path), env={"RECEIVER_PORT": str(port),
                                                                               "FC_PORT": str(port)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "--receiver-port 和 --fc-port 都设成了" in line
    assert not (tmp_path / "logs" / "receiver.log").exists() or "Traceback" not in (
        tmp_path / "logs" / "receiver.log").read_text()


def test_make_run_names_llm_endpoint_and_says_when_user_api_key_is_not_used():
    _, notes = real_model({"LLM_ENDPOINT": "ftp://x", "USER_API_KEY": "k"})
    assert notes and all("LLM_ENDPOINT" in n for n in notes)
    model, notes = real_model({"CHATGPT_API_KEY": "sk-o", "USER_API_KEY": "sk-other"})
    assert model is not None and any("USER_API_KEY 没有使用" in n for n in notes)
