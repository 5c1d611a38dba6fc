#!/usr/bin/env python3
"""``make doctor``: check a configuration before or after deploying; each check prints OK or what to fix.

Reads ``.env`` (the file ``s deploy`` uses) and the environment, and reports every problem it finds
in one run. Optional live checks (pass them as make doctor ARGS="--url https://...  --check-llm"):
  --oss-dir PATH   an existing directory (the OSS mount on FC) is writable; nothing is created
  --check-llm      one tiny request to the model endpoint with the configured key
  --check-dingtalk the app key and secret get an access token (free: token calls are not counted)
  --check-oss      OSS_BUCKET through the OSS API, signed V4 with ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET:
                   a write, read and delete, the bucket's versioning, and the folder FC mounts
  --url URL        the deployed receiver answers a signed probe (a signed empty body: 400 means the
                   signature was accepted and nothing was invoked; 403 means the secret differs)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.dotenv import read_dotenv, reply_environment  # noqa: E402
from devstack.fake_dingtalk import signed_headers  # noqa: E402
from devstack.fc_context import Credentials  # noqa: E402
from shared.common.errors import ConfigError  # noqa: E402
from shared.receiver.config import ReceiverConfig  # noqa: E402
from shared.reply.config import ReplyConfig  # noqa: E402
from shared.reply.dingtalk.openapi import OpenApiError, TokenCache  # noqa: E402
from shared.reply.oss.blobs import ApiBlobs, MountBlobs  # noqa: E402
from shared.reply.oss.quota import QuotaMemo  # noqa: E402
from shared.reply.oss.storage import API_PREFIX, DATA_FOLDER, VERSIONED_LOSS  # noqa: E402

# s.yaml mounts the bucket's /dingbot at OSS_MOUNT_POINT; FC refuses to mount a folder that does not exist.
MOUNTED_FOLDER = "dingbot/"
ROLE_ARN = re.compile(r"^acs:ram::\d+:role/[\w.\-]+$", re.I)
BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
OSS_ENDPOINT = re.compile(r"^https?://oss-[a-z0-9-]+(-internal)?\.aliyuncs\.com/?$")
# Values that must be the user's own: a .env still holding .env.example's sample would deploy against it.
PERSONAL = ("FC_ROLE_ARN", "OSS_BUCKET")


@dataclass
class Result:
    ok: bool
    name: str
    detail: str

    def line(self) -> str:
        return f"{'OK ' if self.ok else 'FIX'}  {self.name}: {self.detail}"


def check_dotenv(path: Path) -> List[Result]:
    dotenv = read_dotenv(path)
    if not dotenv.exists:
        return [Result(False, ".env", f"no {path} here: cp .env.example .env, then fill it in")]
    results = [Result(False, ".env", warning) for warning in dotenv.warnings]
    if dotenv.values.get("ENDPOINT"):
        results.append(Result(False, "ENDPOINT", "in .env this name is ambiguous (the FC API for the receiver, the "
                                                 "model for the reply): name the model service LLM_ENDPOINT; the "
                                                 "receiver finds the FC API by itself"))
    return results or [Result(True, ".env", f"{len(dotenv.values)} settings read from {path.name}")]


def _problems(read: Callable[[Mapping[str, str]], object], env: Mapping[str, str], check: str,
              summary: Callable[[object], str]) -> List[Result]:
    try:
        config = read(env)
    except ConfigError as exc:
        return [Result(False, f"{check}: {problem.variable}", problem.problem) for problem in exc.all]
    return [Result(True, check, summary(config))]


def check_receiver_config(env: Mapping[str, str]) -> List[Result]:
    def summary(config: ReceiverConfig) -> str:
        api = f"FC 2.0 API, service {config.service_name}" if config.uses_fc2_api else "FC 3.0 API"
        endpoint = config.fc_endpoint or "<account>.<region>-internal.fc.aliyuncs.com (derived at run time)"
        return f"invokes {config.reply_function} via {api} at {endpoint}"

    return _problems(ReceiverConfig.from_env, {k: v for k, v in env.items() if k != "ENDPOINT"}, "receiver settings",
                     summary)


def check_reply_config(env: Mapping[str, str]) -> List[Result]:
    def summary(config: ReplyConfig) -> str:
        return f"model {config.model} at {config.llm_base_url}, {config.history_length} turns of history"

    return _problems(ReplyConfig.from_env, reply_environment(env), "reply settings", summary)


def check_pattern(env: Mapping[str, str], name: str, pattern: re.Pattern, fix: str) -> Result:
    value = env.get(name, "").strip()
    if not value:
        return Result(False, name, f"not set; {fix}")
    if not pattern.match(value):
        return Result(False, name, f"{value!r} looks wrong; {fix}")
    return Result(True, name, value)


def check_quota_note(directory: Path) -> Optional[Result]:
    """What an instance noted on the mount about DingTalk's monthly API quota (``oss/quota.py``)."""
    memo = QuotaMemo(MountBlobs(directory / DATA_FOLDER))
    until = memo.paused_until()
    if until is None:
        return None
    return Result(False, "DingTalk API quota", "the organisation's monthly API quota is spent: cards and the robot "
                  f"OpenAPI are paused until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(until))} (a paid plan "
                  "or the next month restores them; delete dingbot/state/dingtalk-api-quota.json to retry at once)")


def live_check_config(env: Mapping[str, str], check: str) -> Tuple[Optional[ReplyConfig], Optional[Result]]:
    """The reply settings a live check needs, or the result saying why it could not run."""
    try:
        return ReplyConfig.from_env(reply_environment(env)), None
    except ConfigError as exc:
        return None, Result(False, check, f"not checked: {exc}")


def check_dingtalk_app(env: Mapping[str, str]) -> Result:
    config, skipped = live_check_config(env, "DingTalk app")
    if config is None:
        return skipped
    if config.app is None:
        return Result(False, "DingTalk app", "DINGTALK_APP_KEY is not set (cards, pictures and files need it)")
    try:
        TokenCache().get(config.app, requests.Session())
    except OpenApiError as exc:
        return Result(False, "DingTalk app", f"DingTalk refused the key and secret: {exc}")
    cards = "built-in AI card" if config.card and config.card.builtin else "card template " + (
        config.card.template_id if config.card else "none (CARD_STREAMING=off)")
    return Result(True, "DingTalk app", f"{config.app.app_key} accepted; answers stream into the {cards}")


def check_oss_dir(directory: Path) -> Result:
    """Never creates the directory: on FC a missing mount point means the mount is not configured, and a
    directory made here would be a local one that the bot's history silently disappears into."""
    if not directory.is_dir():
        return Result(False, "OSS mount", f"{directory} does not exist or is not a directory: check the function's "
                                          f"OSS mount (mountDir) or OSS_MOUNT_POINT")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        return Result(False, "OSS mount", f"{directory} is not writable ({exc.strerror}); check that the mount is "
                                          f"read-write and the function role's OSS permissions")
    return Result(True, "OSS mount", f"{directory} is writable")


def check_llm(env: Mapping[str, str]) -> Result:
    config, skipped = live_check_config(env, "model endpoint")
    if config is None:
        return skipped
    import openai

    client = openai.OpenAI(base_url=config.llm_base_url, api_key=config.api_key, timeout=20, max_retries=0)
    started = time.monotonic()
    try:
        client.chat.completions.create(model=config.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
    except openai.AuthenticationError:
        return Result(False, "model endpoint", "the key was refused (401): check CHATGPT_API_KEY / USER_API_KEY")
    except openai.NotFoundError as exc:
        return Result(False, "model endpoint", f"404 ({exc.message}): check MODEL and the endpoint's path")
    except openai.APIStatusError as exc:
        return Result(False, "model endpoint", f"HTTP {exc.status_code}: {exc.message}")
    except openai.APIConnectionError:
        return Result(False, "model endpoint", f"cannot connect to {config.llm_base_url}")
    return Result(True, "model endpoint", f"{config.model} answered in {(time.monotonic() - started) * 1000:.0f} ms")


def check_oss_api(env: Mapping[str, str]) -> List[Result]:
    """What the reply function does through the OSS API, from this machine: the bucket's public endpoint
    stands in for its ``-internal`` one, which only resolves inside Alibaba Cloud."""
    config, skipped = live_check_config(env, "OSS API")
    if config is None:
        return [skipped]
    if not config.oss_bucket:
        return [Result(False, "OSS API", "OSS_BUCKET is not set: claims stay on the mount (see README, reliability)")]
    key_id, secret = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID", ""), env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "")
    if not key_id or not secret:
        return [Result(False, "OSS API", "not checked: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                                         "ALIBABA_CLOUD_ACCESS_KEY_SECRET (an AccessKey allowed to use the bucket) "
                                         "in the shell for this check")]
    region = config.oss_region or env.get("REGION", "").strip()
    if not region:
        return [Result(False, "OSS API", "no region for V4 signatures: set OSS_REGION or REGION")]
    endpoint = config.oss_endpoint.replace("-internal.aliyuncs.com", ".aliyuncs.com")
    credentials = Credentials(key_id, secret, env.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""))
    blobs = ApiBlobs.connect(endpoint, config.oss_bucket, credentials, "", region)
    probe = f"{API_PREFIX}.doctor-{uuid.uuid4().hex}.json"
    try:
        created = blobs.create(probe, b"{}")
        read_back = blobs.read(probe)
        blobs.delete(probe)
        versioning = blobs.versioning()
        mounted = blobs.list(MOUNTED_FOLDER) or blobs.read(MOUNTED_FOLDER) is not None
    except OSError as exc:
        return [Result(False, "OSS API", f"{config.oss_bucket} at {endpoint} ({region}) refused a V4-signed request: "
                                         f"{exc}; check the AccessKey's permissions, OSS_ENDPOINT and OSS_REGION")]
    results = [Result(created and read_back == b"{}", "OSS API",
                      f"{config.oss_bucket} ({region}): V4-signed write, read and delete work")]
    results.append(Result(not versioning, "OSS versioning",
                          f"{versioning}: {VERSIONED_LOSS}" if versioning else "never turned on: claims are atomic"))
    results.append(Result(bool(mounted), "OSS mounted folder",
                          f"{MOUNTED_FOLDER} exists" if mounted else f"{MOUNTED_FOLDER} does not exist in "
                          f"{config.oss_bucket}: create that folder (FC mounts it at OSS_MOUNT_POINT)"))
    return results


def check_receiver_url(url: str, secret: str) -> Result:
    if not secret:
        return Result(False, "receiver URL", "DINGTALK_APP_SECRET is needed to sign the probe")
    try:
        response = requests.post(url, data=b"{}", headers=signed_headers(secret), timeout=15)
    except requests.RequestException as exc:
        return Result(False, "receiver URL", f"cannot reach {url}: {type(exc).__name__}")
    if response.status_code == 400:
        return Result(True, "receiver URL", "answers, and accepted the signature (probe carried no message)")
    if response.status_code == 403:
        return Result(False, "receiver URL", "signature refused: the function's DINGTALK_APP_SECRET differs from "
                                             "this one, it is unset, or a clock is more than 1 hour off")
    return Result(False, "receiver URL", f"unexpected HTTP {response.status_code}: {response.text[:200]}")


def check_deploy_values(env: Mapping[str, str], example: Dict[str, str]) -> List[Result]:
    results = [
        check_pattern(env, "REGION", re.compile(r"^[a-z]{2}-[a-z0-9-]+$"), "e.g. cn-hangzhou"),
        check_pattern(env, "FC_ROLE_ARN", ROLE_ARN, "acs:ram::<account id>:role/<name> of a RAM role"),
        check_pattern(env, "OSS_BUCKET", BUCKET, "the bucket name only, lower-case"),
        check_pattern(env, "OSS_ENDPOINT", OSS_ENDPOINT, "e.g. http://oss-cn-hangzhou-internal.aliyuncs.com"),
    ]
    for index, result in enumerate(results):
        sample = example.get(result.name)
        if result.ok and result.name in PERSONAL and sample and env.get(result.name, "").strip() == sample:
            results[index] = Result(False, result.name, f"still the example's placeholder {sample!r}; put yours")
    region, endpoint = env.get("REGION", "").strip(), env.get("OSS_ENDPOINT", "")
    if results[0].ok and results[3].ok and f"oss-{region}" not in endpoint:
        results.append(Result(False, "OSS_ENDPOINT", f"is not in REGION {region}: the OSS mount needs the bucket's "
                                                     f"endpoint in the functions' region"))
    return results


def run_checks(env: Mapping[str, str], args: argparse.Namespace) -> List[Result]:
    results = check_dotenv(args.env_file) + check_receiver_config(env) + check_reply_config(env)
    if args.deploy:
        results += check_deploy_values(env, read_dotenv(ROOT / ".env.example").values)
    if args.oss_dir:
        results.append(check_oss_dir(args.oss_dir))
        quota = check_quota_note(args.oss_dir) if results[-1].ok else None
        if quota:
            results.append(quota)
    if args.check_oss:
        results += check_oss_api(env)
    if args.check_dingtalk:
        results.append(check_dingtalk_app(env))
    if args.check_llm:
        results.append(check_llm(env))
    if args.url:
        results.append(check_receiver_url(args.url, env.get("DINGTALK_APP_SECRET", "")))
    return results


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--no-deploy", dest="deploy", action="store_false",
                        help="skip the s deploy settings (REGION, FC_ROLE_ARN, OSS_*)")
    parser.add_argument("--oss-dir", type=Path)
    parser.add_argument("--check-llm", action="store_true")
    parser.add_argument("--check-dingtalk", action="store_true")
    parser.add_argument("--check-oss", action="store_true")
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    env = read_dotenv(args.env_file).merged()
    results = run_checks(env, args)
    for result in results:
        print(result.line())
    failed = sum(not r.ok for r in results)
    print(f"\n{len(results) - failed} OK, {failed} to fix")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
