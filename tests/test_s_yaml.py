"""``s.yaml`` is valid for the fc3 component and renders with the real Serverless Devs CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "reference" / "fc3-schema.json"
CLI_DIR = ROOT / ".local" / "serverless-devs"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ENV_CALL = re.compile(r"\$\{env\('([A-Z0-9_]+)'(?:,\s*'([^']*)')?\)\}")
VARS_REF = re.compile(r"\$\{vars\.([A-Za-z0-9_]+)\}")


def example_env() -> dict:
    pairs = (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
             if line and not line.startswith("#"))
    env = dict(pairs)
    env["DINGTALK_APP_SECRET"] = "example-secret"
    return env


def resolve(value, env, variables):
    """What Serverless Devs does with ``${env('X', 'default')}`` and ``${vars.x}``."""
    if isinstance(value, dict):
        return {k: resolve(v, env, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, env, variables) for v in value]
    if isinstance(value, str):
        def env_value(match):
            name, default = match.group(1), match.group(2)
            if env.get(name):
                return env[name]
            assert default is not None, f"{name} has no value and no default"
            return default
        return VARS_REF.sub(lambda m: str(variables[m.group(1)]), ENV_CALL.sub(env_value, value))
    return value


@pytest.fixture(scope="module")
def rendered():
    document = yaml.safe_load((ROOT / "s.yaml").read_text())
    env = example_env()
    variables = resolve(document["vars"], env, {})
    return resolve(document, env, variables)


@pytest.fixture(scope="module")
def schema():
    if not SCHEMA.is_file():
        pytest.skip(f"{SCHEMA} is not beside the repository")
    return json.loads(SCHEMA.read_text())


def test_yaml_is_serverless_devs_3_with_fc3_resources(rendered):
    assert rendered["edition"] == "3.0.0"
    assert {r["component"] for r in rendered["resources"].values()} == {"fc3"}


@pytest.mark.parametrize("resource", ["receiver", "reply"])
def test_every_resource_validates_against_the_fc3_schema(rendered, schema, resource):
    jsonschema.validate(rendered["resources"][resource]["props"], schema)


def test_receiver_has_an_anonymous_post_trigger_and_names_the_reply_function(rendered):
    receiver, reply = rendered["resources"]["receiver"]["props"], rendered["resources"]["reply"]["props"]
    [trigger] = receiver["triggers"]
    assert trigger["triggerType"] == "http"
    assert trigger["triggerConfig"] == {"authType": "anonymous", "methods": ["POST"]}
    assert receiver["environmentVariables"]["CHATGPT_FUNCTION"] == reply["functionName"]
    assert "SERVICE_NAME" not in receiver["environmentVariables"]


def test_reply_mounts_oss_where_it_keeps_history_and_is_never_retried_blindly(rendered):
    reply = rendered["resources"]["reply"]["props"]
    [mount] = reply["ossMountConfig"]["mountPoints"]
    assert mount["mountDir"] == reply["environmentVariables"]["OSS_MOUNT_POINT"] == "/mnt/oss"
    assert reply["asyncInvokeConfig"]["maxAsyncRetryAttempts"] == 0
    assert reply["timeout"] > int(reply["environmentVariables"]["TIMEOUT"])


def test_both_functions_keep_queryable_logs(rendered):
    """Without a log config FC keeps no logs to search; ``auto`` has Serverless Devs create the SLS store."""
    assert {name: r["props"].get("logConfig") for name, r in rendered["resources"].items()} == \
        {"reply": "auto", "receiver": "auto"}


def test_secrets_come_from_the_environment_not_the_file():
    text = (ROOT / "s.yaml").read_text()
    for name in ("DINGTALK_APP_SECRET", "CHATGPT_API_KEY", "USER_API_KEY", "FC_ROLE_ARN", "OSS_BUCKET"):
        assert f"env('{name}'" in text
    assert set(ENV_CALL.findall(text) and [m[0] for m in ENV_CALL.findall(text)]) <= set(example_env())


def _serverless_devs() -> Path:
    """The pinned CLI that `make serverless-devs` installs, else one on PATH; never installed from here."""
    for candidate in (CLI_DIR / "node_modules" / ".bin" / "s", shutil.which("s")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    pytest.skip("the Serverless Devs CLI is not installed, so `s preview` was not run: `make serverless-devs` "
                "(npm, @serverless-devs/s pinned in the Makefile) or `npm install -g @serverless-devs/s`")


def test_s_preview_renders_the_same_props(rendered, schema, tmp_path):
    binary = _serverless_devs()
    shutil.copy(ROOT / "s.yaml", tmp_path / "s.yaml")
    (tmp_path / ".env").write_text("\n".join(f"{k}={v}" for k, v in example_env().items()) + "\n")
    result = subprocess.run([str(binary), "preview"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), "CI": "true"})
    output = ANSI.sub("", result.stdout)
    assert result.returncode == 0 and "resources:" in output, result.stdout + result.stderr
    previewed = yaml.safe_load(output[output.index("edition:"):])
    for name, resource in previewed["resources"].items():
        # The preview prints values unquoted; environment values are strings in s.yaml itself.
        variables = resource["props"]["environmentVariables"]
        resource["props"]["environmentVariables"] = {k: "" if v is None else str(v) for k, v in variables.items()}
        jsonschema.validate(resource["props"], schema)
        expected = dict(rendered["resources"][name]["props"])
        assert resource["props"]["functionName"] == expected["functionName"]
        assert resource["props"]["triggers" if name == "receiver" else "ossMountConfig"] == \
            expected["triggers" if name == "receiver" else "ossMountConfig"]


def test_every_function_variable_takes_the_dotenv_name_the_local_tools_read():
    """One name per meaning: s.yaml, make run, make doctor and make send read .env the same way."""
    from devstack.dotenv import REPLY_RENAMES

    document = yaml.safe_load((ROOT / "s.yaml").read_text())
    for resource in ("receiver", "reply"):
        for variable, value in document["resources"][resource]["props"]["environmentVariables"].items():
            source = ENV_CALL.fullmatch(str(value))
            if source:
                renamed = REPLY_RENAMES.get(source.group(1)) if resource == "reply" else None
                assert variable in (source.group(1), renamed), (resource, variable, source.group(1))


def test_the_reply_function_ticks_every_minute_and_never_answers_hours_late(rendered):
    reply = rendered["resources"]["reply"]["props"]
    [timer] = reply["triggers"]
    assert timer["triggerType"] == "timer" and timer["triggerConfig"]["enable"] is True
    assert timer["triggerConfig"]["cronExpression"] == "0 * * * * *"
    assert reply["asyncInvokeConfig"]["maxAsyncEventAgeInSeconds"] <= 600
