#!/usr/bin/env python3
"""``make doctor``：部署前后检查配置，每一项打印「正常」或需要怎么改。

读取 ``.env``（``s deploy`` 用的同一个文件）和环境变量，一次列出发现的所有问题。可选的在线检查
（写在 ARGS 里，例如 make doctor ARGS="--url https://... --check-llm"）：
  --oss-dir 目录     已存在的目录（FC 上的 OSS 挂载）可写；不会创建任何目录
  --check-llm        用配置的 Key 向模型服务（或 BRAIN 指定的百炼应用 / Dify 应用）发一个极小的请求
  --check-dingtalk   用应用的 AppKey/AppSecret 取一次 access token（取 token 不计调用额度）
  --check-oss        经 OSS API 访问 OSS_BUCKET（V4 签名，用 ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET）：
                     写、读、删一个小对象，查看桶的版本控制和 FC 挂载的目录
  --url 地址         已部署的接收函数能否通过签名探测（签名的空消息：400 表示签名通过且不会触发回复；
                     403 表示密钥不同）
  --register-card-callback
                     与 --url 一起用：把接收函数的 /card-callback 登记为卡片按钮的回调地址（每个机器人一次，
                     需要 AppKey/AppSecret；CARD_BUTTONS=on 时用）
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

from devstack.dotenv import dotenv_name, read_dotenv, reply_environment, unused_key_note  # noqa: E402
from devstack.fake_dingtalk import signed_headers  # noqa: E402
from devstack.fc_context import Credentials  # noqa: E402
from devstack.terminal import unreachable  # noqa: E402
from shared.common.bots import parse_bots, robot_environment  # noqa: E402
from shared.common.errors import ConfigError  # noqa: E402
from shared.receiver.config import ReceiverConfig  # noqa: E402
from shared.reply.config import ReplyConfig  # noqa: E402
from shared.reply.config.model import COMPLETIONS_PATH, llm_base_url  # noqa: E402
from shared.reply.dingtalk.callbacks import register_card_callback  # noqa: E402
from shared.reply.dingtalk.openapi import OpenApiError, TokenCache  # noqa: E402
from shared.reply.oss.blobs import ApiBlobs, MountBlobs  # noqa: E402
from shared.reply.oss.quota import QuotaMemo  # noqa: E402
from shared.reply.oss.storage import API_PREFIX, DATA_FOLDER  # noqa: E402

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
        return f"{'正常  ' if self.ok else '需修改'}  {self.name}：{self.detail}"


def check_dotenv(path: Path) -> List[Result]:
    dotenv = read_dotenv(path)
    if not dotenv.exists:
        return [Result(False, ".env", f"没有 {path}：先运行 cp .env.example .env，再填写")]
    results = [Result(False, ".env", warning) for warning in dotenv.warnings]
    if dotenv.values.get("ENDPOINT"):
        results.append(Result(False, "ENDPOINT", "在 .env 里这个名字有歧义（对接收函数是 FC API，"
                                                 "对回复函数是模型服务）：模型服务请写成 LLM_ENDPOINT；"
                                                 "接收函数会自己找到 FC API"))
    llm = dotenv.values.get("LLM_ENDPOINT", "").strip().rstrip("/")
    if llm.endswith(COMPLETIONS_PATH):
        results.append(Result(True, "LLM_ENDPOINT", f"写的是完整的 …{COMPLETIONS_PATH} 地址，已按 "
                                                    f"{llm_base_url(llm)} 使用（SDK 会自己加上 {COMPLETIONS_PATH}）"))
    return results or [Result(True, ".env", f"从 {path.name} 读到 {len(dotenv.values)} 项设置")]


def _problems(read: Callable[[Mapping[str, str]], object], env: Mapping[str, str], check: str,
              summary: Callable[[object], str]) -> List[Result]:
    try:
        config = read(env)
    except ConfigError as exc:
        return [Result(False, f"{check}：{dotenv_name(problem.variable)}", problem.hint) for problem in exc.all]
    return [Result(True, check, summary(config))]


def check_receiver_config(env: Mapping[str, str]) -> List[Result]:
    def summary(config: ReceiverConfig) -> str:
        api = f"FC 2.0 API（服务 {config.service_name}）" if config.uses_fc2_api else "FC 3.0 API"
        endpoint = config.fc_endpoint or "<账号ID>.<地域>-internal.fc.aliyuncs.com（运行时自动得出）"
        return f"经 {api} 调用 {config.reply_function}，地址 {endpoint}"

    return _problems(ReceiverConfig.from_env, {k: v for k, v in env.items() if k != "ENDPOINT"}, "接收函数的设置",
                     summary)


def check_reply_config(env: Mapping[str, str]) -> List[Result]:
    def summary(config: ReplyConfig) -> str:
        return (f"模型 {config.model.model}，地址 {config.model.base_url}，"
                f"保留 {config.conversation.history_length} 轮上下文")

    reply = reply_environment(env)
    results = _problems(ReplyConfig.from_env, reply, "回复函数的设置", summary)
    try:
        bots = parse_bots(env.get("BOTS") or "")
    except ConfigError:  # the receiver's check names it
        bots = {}
    for name in bots:  # each robot's messages are answered with its own settings
        results += _problems(ReplyConfig.from_env, robot_environment(reply, bots, name), f"机器人 {name} 的设置",
                             summary)
    note = unused_key_note(env)
    return results + ([Result(True, "USER_API_KEY", note)] if note else [])


def check_pattern(env: Mapping[str, str], name: str, pattern: re.Pattern, fix: str) -> Result:
    value = env.get(name, "").strip()
    if not value:
        return Result(False, name, f"没有设置；{fix}")
    if not pattern.match(value):
        return Result(False, name, f"{value!r} 看起来不对；{fix}")
    return Result(True, name, value)


def check_quota_note(directory: Path) -> Optional[Result]:
    """What an instance noted on the mount about DingTalk's monthly API quota (``oss/quota.py``)."""
    memo = QuotaMemo(MountBlobs(directory / DATA_FOLDER))
    until = memo.paused_until()
    if until is None:
        return None
    return Result(False, "钉钉接口额度", "本组织本月的钉钉接口调用额度已用完：卡片和机器人 OpenAPI 暂停到 "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(until))}（升级套餐或下个月恢复；删除 "
                  "dingbot/state/dingtalk-api-quota.json 可立即重试）")


def live_check_config(env: Mapping[str, str], check: str) -> Tuple[Optional[ReplyConfig], Optional[Result]]:
    """The reply settings a live check needs, or the result saying why it could not run."""
    try:
        return ReplyConfig.from_env(reply_environment(env)), None
    except ConfigError as exc:
        return None, Result(False, check, f"没有检查：{dotenv_name(exc.variable)} {exc.hint}")


def check_dingtalk_app(env: Mapping[str, str]) -> Result:
    config, skipped = live_check_config(env, "钉钉应用")
    if config is None:
        return skipped
    if config.app is None:
        return Result(False, "钉钉应用", "没有设置 DINGTALK_APP_KEY（卡片、图片和文件都需要它）")
    try:
        TokenCache().get(config.app, requests.Session())
    except OpenApiError as exc:
        return Result(False, "钉钉应用", f"钉钉拒绝了 AppKey 和 AppSecret：{exc}")
    cards = "钉钉内置的 AI 卡片" if config.card and config.card.builtin else (
        f"卡片模板 {config.card.template_id}" if config.card else "普通消息（CARD_STREAMING=off）")
    return Result(True, "钉钉应用", f"{config.app.app_key} 验证通过；回答用{cards}显示")


def check_oss_dir(directory: Path) -> Result:
    """Never creates the directory: on FC a missing mount point means the mount is not configured, and a
    directory made here would be a local one that the bot's history silently disappears into."""
    if not directory.is_dir():
        return Result(False, "OSS 挂载", f"{directory} 不存在或不是目录：检查函数的 OSS 挂载（mountDir）"
                                         f"或 OSS_MOUNT_POINT")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        return Result(False, "OSS 挂载", f"{directory} 不可写（{exc.strerror}）：确认挂载是读写的，"
                                         f"以及函数角色的 OSS 权限")
    return Result(True, "OSS 挂载", f"{directory} 可写")


def check_platform(config: ReplyConfig) -> Result:
    """A Bailian application or a Dify app asked one short question, exactly as the reply function asks it."""
    from shared.common.errors import LLMError
    from shared.reply.address import ChatAddress
    from shared.reply.brains.base import Ask
    from shared.reply.oss.history import Conversation
    from shared.reply.provenance import Provenance
    from shared.reply.question import Question
    from shared.reply.texts import PLATFORM_NAMES

    if config.brain.kind == "bailian":
        from shared.reply.brains.bailian import BailianBrain as Brain
    else:
        from shared.reply.brains.dify import DifyBrain as Brain
    name = PLATFORM_NAMES[config.brain.kind]
    brain = Brain(config.brain)
    ask = Ask(Question("你好，请只回复一个字：在", ""), Conversation("dingbot-doctor"),
              ChatAddress("dingbot-doctor", False, "", "dingbot-doctor", "doctor", ""), "", Provenance())
    started = time.monotonic()
    try:
        written = "".join(event.text for event in brain.run(ask, streamed=True) if event.kind == "text")
    except LLMError as exc:
        return Result(False, name, f"{exc.user_message}（{exc}）")
    return Result(True, name, f"{config.brain.endpoint} 用 {(time.monotonic() - started) * 1000:.0f} 毫秒作答："
                              f"{written[:30]}")


def check_llm(env: Mapping[str, str]) -> Result:
    config, skipped = live_check_config(env, "模型服务")
    if config is None:
        return skipped
    if config.brain.kind != "chat":
        return check_platform(config)
    import openai

    model = config.model
    client = openai.OpenAI(base_url=model.base_url, api_key=model.api_key, timeout=20, max_retries=0)
    started = time.monotonic()
    try:
        client.chat.completions.create(model=model.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
    except openai.AuthenticationError:
        return Result(False, "模型服务", "Key 被拒绝（401）：检查 CHATGPT_API_KEY / USER_API_KEY")
    except openai.NotFoundError as exc:
        return Result(False, "模型服务", f"404（{exc.message}）：检查 MODEL 和 LLM_ENDPOINT 的路径")
    except openai.APIStatusError as exc:
        return Result(False, "模型服务", f"HTTP {exc.status_code}：{exc.message}")
    except openai.APIConnectionError:
        return Result(False, "模型服务", f"连不上 {model.base_url}")
    return Result(True, "模型服务", f"{model.model} 用 {(time.monotonic() - started) * 1000:.0f} 毫秒作答")


def check_oss_api(env: Mapping[str, str]) -> List[Result]:
    """What the reply function does through the OSS API, from this machine: the bucket's public endpoint
    stands in for its ``-internal`` one, which only resolves inside Alibaba Cloud."""
    config, skipped = live_check_config(env, "OSS API")
    if config is None:
        return [skipped]
    storage = config.storage
    if not storage.bucket:
        return [Result(False, "OSS API", "没有设置 OSS_BUCKET：认领记录只在挂载上（见 README 的可靠性一节）")]
    key_id, secret = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID", ""), env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "")
    if not key_id or not secret:
        return [Result(False, "OSS API", "没有检查：请在 shell 里设置 ALIBABA_CLOUD_ACCESS_KEY_ID 和 "
                                         "ALIBABA_CLOUD_ACCESS_KEY_SECRET（一个能读写该桶的 AccessKey）")]
    region = storage.region or env.get("REGION", "").strip()
    if not region:
        return [Result(False, "OSS API", "不知道 V4 签名用的地域：请设置 OSS_REGION 或 REGION")]
    endpoint = storage.endpoint.replace("-internal.aliyuncs.com", ".aliyuncs.com")
    credentials = Credentials(key_id, secret, env.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""))
    blobs = ApiBlobs.connect(endpoint, storage.bucket, credentials, "", region)
    probe = f"{API_PREFIX}.doctor-{uuid.uuid4().hex}.json"
    try:
        created = blobs.create(probe, b"{}")
        read_back = blobs.read(probe)
        blobs.delete(probe)
        versioning = blobs.versioning()
        mounted = blobs.list(MOUNTED_FOLDER) or blobs.read(MOUNTED_FOLDER) is not None
    except OSError as exc:
        return [Result(False, "OSS API", f"{storage.bucket}（{endpoint}，{region}）拒绝了 V4 签名的请求：{exc}；"
                                         f"检查 AccessKey 的权限、OSS_ENDPOINT 和 OSS_REGION")]
    results = [Result(created and read_back == b"{}", "OSS API",
                      f"{storage.bucket}（{region}）：V4 签名的写、读、删都正常")]
    results.append(Result(not versioning, "OSS 版本控制",
                          f"{versioning}：OSS 在开启过版本控制的桶上忽略防覆盖，认领会改回挂载，两个实例在同一次往返内"
                          f"可能都回答同一条消息；请换一个从未开启过版本控制的桶" if versioning
                          else "从未开启：认领是原子的"))
    results.append(Result(bool(mounted), "OSS 挂载目录",
                          f"{MOUNTED_FOLDER} 存在" if mounted else f"{storage.bucket} 里没有 {MOUNTED_FOLDER}："
                          f"请创建这个目录（FC 把它挂载到 OSS_MOUNT_POINT）"))
    return results


def check_receiver_url(url: str, secret: str) -> Result:
    if not secret:
        return Result(False, "接收函数地址", "需要 DINGTALK_APP_SECRET 来签名探测请求")
    try:
        response = requests.post(url, data=b"{}", headers=signed_headers(secret), timeout=15)
    except requests.RequestException as exc:
        return Result(False, "接收函数地址", unreachable(url, exc))
    if response.status_code == 400:
        return Result(True, "接收函数地址", "有应答，签名通过（探测请求不含消息，不会触发回复）")
    if response.status_code == 403:
        return Result(False, "接收函数地址", "签名被拒绝：函数里的 DINGTALK_APP_SECRET 与这里的不同、没有设置，"
                                             "或两边时钟相差超过 1 小时")
    return Result(False, "接收函数地址", f"意外的 HTTP {response.status_code}：{response.text[:200]}")


def check_deploy_values(env: Mapping[str, str], example: Dict[str, str]) -> List[Result]:
    results = [
        check_pattern(env, "REGION", re.compile(r"^[a-z]{2}-[a-z0-9-]+$"), "例如 cn-hangzhou"),
        check_pattern(env, "FC_ROLE_ARN", ROLE_ARN, "RAM 角色的 acs:ram::<账号ID>:role/<角色名>"),
        check_pattern(env, "OSS_BUCKET", BUCKET, "只写桶名，小写"),
        check_pattern(env, "OSS_ENDPOINT", OSS_ENDPOINT, "例如 http://oss-cn-hangzhou-internal.aliyuncs.com"),
    ]
    for index, result in enumerate(results):
        sample = example.get(result.name)
        if result.ok and result.name in PERSONAL and sample and env.get(result.name, "").strip() == sample:
            results[index] = Result(False, result.name, f"还是示例里的占位值 {sample!r}，请换成你自己的")
    region, endpoint = env.get("REGION", "").strip(), env.get("OSS_ENDPOINT", "")
    if results[0].ok and results[3].ok and f"oss-{region}" not in endpoint:
        results.append(Result(False, "OSS_ENDPOINT", f"不在 REGION {region}：OSS 挂载需要与函数同地域的桶地址"))
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
    if args.register_card_callback:
        results += register_card_callbacks(env, args.url)
    return results


def register_card_callbacks(env: Mapping[str, str], url: Optional[str]) -> List[Result]:
    """The receiver's card-callback URL registered for the deployment's robot and each of BOTS with an app."""
    if not url:
        return [Result(False, "卡片回调", "登记回调地址需要接收函数的地址：make doctor ARGS=\"--url https://… "
                                       "--register-card-callback\"")]
    try:
        bots = parse_bots(env.get("BOTS") or "")
    except ConfigError as exc:
        return [Result(False, "卡片回调", f"BOTS 有误：{exc.hint}")]
    results = []
    for robot in ["", *bots]:
        name = f"卡片回调（机器人 {robot}）" if robot else "卡片回调"
        try:
            config = ReplyConfig.from_env(reply_environment(robot_environment(env, bots, robot)))
        except ConfigError as exc:
            results.append(Result(False, name, f"{dotenv_name(exc.variable)} {exc.hint}"))
            continue
        if config.app is None:
            if not robot:
                results.append(Result(False, name, "没有设置 DINGTALK_APP_KEY：按钮需要应用的 AppKey/AppSecret"))
            continue
        try:
            done = register_card_callback(config.app, url, robot)
        except OpenApiError as exc:
            results.append(Result(False, name, f"钉钉拒绝了登记：{exc}"))
            continue
        buttons = "" if config.card and config.card.buttons else "（CARD_BUTTONS 还没有打开）"
        results.append(Result(True, name, f"{done['routeKey']} → {done['url'] or url}{buttons}"))
    return results


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", help="读取哪个 .env（默认仓库根目录的 .env）")
    parser.add_argument("--no-deploy", dest="deploy", action="store_false",
                        help="不检查 s deploy 用的设置（REGION、FC_ROLE_ARN、OSS_*）")
    parser.add_argument("--oss-dir", type=Path, help="检查这个已存在的 OSS 挂载目录")
    parser.add_argument("--check-llm", action="store_true", help="向模型服务发一个极小的请求")
    parser.add_argument("--check-dingtalk", action="store_true", help="用 AppKey/AppSecret 取一次 access token")
    parser.add_argument("--check-oss", action="store_true", help="经 OSS API 检查 OSS_BUCKET")
    parser.add_argument("--url", help="签名探测已部署的接收函数")
    parser.add_argument("--register-card-callback", action="store_true",
                        help="把 --url 的 /card-callback 登记为卡片按钮的回调地址")
    args = parser.parse_args(argv)
    env = read_dotenv(args.env_file).merged()
    results = run_checks(env, args)
    for result in results:
        print(result.line())
    failed = sum(not r.ok for r in results)
    print(f"\n{len(results) - failed} 项正常，{failed} 项需修改")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
