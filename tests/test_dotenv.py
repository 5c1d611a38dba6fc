"""``.env`` is read exactly as ``s deploy`` reads it (npm's dotenv and dotenv-expand inside Serverless Devs), so
``make run`` and FC never disagree on a value; the real CLI's ``s preview`` is the judge where it is installed."""

import re
import subprocess

import pytest
from test_s_yaml import ANSI, ROOT, _serverless_devs, example_env

from devstack.dotenv import read_dotenv

# (a line of .env, the variable s.yaml passes it to, the value the function gets)
LINES = [
    ("MODEL=gpt-4.1-mini  # cheap one", "MODEL", "gpt-4.1-mini"),
    ("export SYSTEM_PROMPT='你是助手 # 不是注释'", "SYSTEM_PROMPT", "你是助手 # 不是注释"),
    ('HISTORY_LENGTH="8" # quoted, then a comment', "HISTORY_LENGTH", "8"),
    ("TIMEOUT = 40", "TIMEOUT", "40"),
    ("VISION_MODEL=qwen-vl#no space before the comment", "VISION_MODEL", "qwen-vl"),
    ("SEARCH_PROVIDER: bocha", "SEARCH_PROVIDER", "bocha"),
    ("  export   IMAGE_MODEL=`wanx-v1`", "IMAGE_MODEL", "wanx-v1"),
    ("EMBEDDING_MODEL=text-embedding-v3   ", "EMBEDDING_MODEL", "text-embedding-v3"),
    ("LLM_ENDPOINT=https://${DASH_HOST}/compatible-mode", "ENDPOINT", "https://dashscope.aliyuncs.com/compatible-mode"),
    ("SEARCH_ENDPOINT=${NOT_SET:-https://api.bochaai.com}", "SEARCH_ENDPOINT", "https://api.bochaai.com"),
    ("EMBEDDING_ENDPOINT=$DASH_HOST", "EMBEDDING_ENDPOINT", "dashscope.aliyuncs.com"),
    # Serverless Devs expands the file twice: an escaped dollar survives the first pass only.
    ("ALLOWED_USERS=price\\$5", "ALLOWED_USERS", "price"),
    ("CLEAR_IN_GROUPS=\\$ADMINS_WORD", "CLEAR_IN_GROUPS", "admins"),
    ("QUOTA_EXEMPT_USERS=a$$b", "QUOTA_EXEMPT_USERS", "a$"),
    ("MODEL_PRICES=", "MODEL_PRICES", ""),
]
SUPPORT = ["DASH_HOST=dashscope.aliyuncs.com", "ADMINS_WORD=admins"]


def _dotenv_text():
    taken = {line.split("=", 1)[0].split(":", 1)[0].strip().removeprefix("export").strip() for line, _, _ in LINES}
    rest = [f"{k}={v}" for k, v in example_env().items() if k not in taken]
    return "\n".join(SUPPORT + rest + [line for line, _, _ in LINES]) + "\n"


@pytest.mark.parametrize("line, variable, value", LINES, ids=[variable for _, variable, _ in LINES])
def test_each_line_reads_as_the_deploy_tool_reads_it(line, variable, value, tmp_path):
    path = tmp_path / ".env"
    path.write_text("\n".join(SUPPORT + [line]) + "\n")
    name = "LLM_ENDPOINT" if variable == "ENDPOINT" else variable
    assert read_dotenv(path, environ={}).values[name] == value


def test_the_shell_wins_and_is_expanded_too(tmp_path):
    path = tmp_path / ".env"
    path.write_text("HOST=file.example\nMODEL=from-file\nLLM_ENDPOINT=https://$HOST/v1\n")
    dotenv = read_dotenv(path, environ={"MODEL": "from-shell-${HOST}", "HOST": "shell.example"})
    merged = dotenv.merged()
    assert merged["MODEL"] == "from-shell-shell.example" and merged["LLM_ENDPOINT"] == "https://shell.example/v1"


def test_double_quotes_turn_backslash_n_into_a_line_break_and_quotes_may_span_lines(tmp_path):
    path = tmp_path / ".env"
    path.write_text('SYSTEM_PROMPT="第一行\\n第二行"\nNOTE=\'跨\n行\'\nMODEL=m\n')
    values = read_dotenv(path, environ={}).values
    assert values == {"SYSTEM_PROMPT": "第一行\n第二行", "NOTE": "跨\n行", "MODEL": "m"}


def test_an_open_quote_is_reported_with_what_the_deploy_tool_will_read(tmp_path):
    path = tmp_path / ".env"
    path.write_text("MODEL=gpt\nSYSTEM_PROMPT='unclosed\n")
    dotenv = read_dotenv(path, environ={})
    assert dotenv.values == {"MODEL": "gpt", "SYSTEM_PROMPT": "'unclosed"}
    [warning] = dotenv.warnings
    assert "第 2 行" in warning and "SYSTEM_PROMPT" in warning and "引号" in warning


def test_s_preview_gives_every_function_the_values_read_here(tmp_path):
    binary = _serverless_devs()
    (tmp_path / "s.yaml").write_text((ROOT / "s.yaml").read_text())
    (tmp_path / ".env").write_text(_dotenv_text())
    result = subprocess.run([str(binary), "preview"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), "CI": "true"})
    output = ANSI.sub("", result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    # The preview prints each variable as "NAME: value" on a line of its own (the value unquoted).
    printed = {m.group(1): m.group(2).strip() for m in re.finditer(r"^ +([A-Z_]+): *(.*)$", output, re.M)}
    ours = read_dotenv(tmp_path / ".env", environ={}).values
    for line, variable, value in LINES:
        name = "LLM_ENDPOINT" if variable == "ENDPOINT" else variable
        shown = printed.get(variable, "")
        assert shown.strip("'\"") == ours[name] == value, (line, shown, ours[name])
