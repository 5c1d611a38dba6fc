"""Several robots, one deployment: each callback checked against every robot's secret, each robot answering as
itself with its own history, persona, settings and app."""

import json

import pytest
from conftest import APP_SECRET, context

from devstack.fake_dingtalk import callback_body, encode, signed_headers
from devstack.http_runtime import fc3_event, wsgi_environ
from devstack.stack import LocalStack, StackSettings
from shared.common.bots import parse_bots, robot_environment
from shared.common.errors import ConfigError
from shared.receiver.dingtalk.callback import parse_callback
from shared.receiver.fc import invoke
from shared.reply import texts

WEBHOOK = "https://oapi.dingtalk.com"
HR_SECRET, SALES_SECRET = "hr-app-secret", "sales-app-secret"
BOTS = {"hr": {"DINGTALK_APP_SECRET": HR_SECRET, "SYSTEM_PROMPT": "你是 HR 助理"},
        "sales": {"DINGTALK_APP_SECRET": SALES_SECRET, "MODEL": "qwen-max"}}


def call_fc3(handler, body, headers, path="/"):
    result = handler(fc3_event("POST", path, {k.lower(): v for k, v in headers.items()}, body), context("receiver"))
    return result["statusCode"]


def call_fc2(handler, body, headers, path="/"):
    status = []
    environ = wsgi_environ("POST", path, {k.lower(): v for k, v in headers.items()}, body, context("receiver"))
    handler(environ, lambda s, h: status.append(s))
    return int(status[0].split()[0])


FORMS = pytest.mark.parametrize("call", [call_fc3, call_fc2], ids=["fc3-event", "fc2-wsgi"])


@pytest.fixture
def robots_env(receiver_env):
    return {**receiver_env, "BOTS": json.dumps(BOTS)}


@FORMS
def test_one_receiver_url_accepts_every_configured_robot_and_says_which(call, receiver, robots_env, use_env, fc_api):
    use_env(robots_env)
    body = callback_body("你好", webhook_base=WEBHOOK, msg_id="msg-shared")
    for secret in (APP_SECRET, HR_SECRET, SALES_SECRET):
        assert call(receiver, encode(body), signed_headers(secret)) == 200
    assert [i["payload"].get("robot", "") for i in fc_api.invocations] == ["", "hr", "sales"]
    # One message to two robots in a group is two tasks, never a duplicate FC refuses.
    tasks = [i["task_id"] for i in fc_api.invocations]
    assert tasks[0] == invoke.task_id_for("msg-shared") and len(set(tasks)) == 3


@FORMS
def test_a_callback_signed_by_an_unknown_secret_is_refused(call, receiver, robots_env, use_env, fc_api):
    use_env(robots_env)
    body = encode(callback_body("你好", webhook_base=WEBHOOK))
    assert call(receiver, body, signed_headers("a-third-secret")) == 403
    assert fc_api.invocations == []


@FORMS
def test_a_path_per_robot_accepts_that_robot_only(call, receiver, robots_env, use_env, fc_api):
    use_env(robots_env)
    body = encode(callback_body("你好", webhook_base=WEBHOOK))
    assert call(receiver, body, signed_headers(HR_SECRET), "/bots/hr") == 200
    assert call(receiver, body, signed_headers(SALES_SECRET), "/bots/hr") == 403
    assert call(receiver, body, signed_headers(APP_SECRET), "/bots/hr") == 403
    assert call(receiver, body, signed_headers(HR_SECRET), "/bots/nobody") == 403
    assert call(receiver, body, signed_headers(APP_SECRET), "/bots/") == 403
    assert [i["payload"]["robot"] for i in fc_api.invocations] == ["hr"]


def test_with_bots_the_deployments_own_secret_is_optional(receiver, receiver_env, use_env, fc_api):
    env = {k: v for k, v in receiver_env.items() if k != "DINGTALK_APP_SECRET"}
    use_env({**env, "BOTS": json.dumps(BOTS)})
    body = encode(callback_body("你好", webhook_base=WEBHOOK))
    assert call_fc3(receiver, body, signed_headers(HR_SECRET)) == 200
    assert call_fc3(receiver, body, signed_headers(APP_SECRET)) == 403


def test_a_broken_bots_setting_keeps_the_receiver_shut(receiver, receiver_env, use_env, fc_api, caplog):
    use_env({**receiver_env, "BOTS": '{"HR": {}}'})
    assert call_fc3(receiver, encode(callback_body("你好", webhook_base=WEBHOOK)), signed_headers(APP_SECRET)) == 500
    assert "BOTS" in caplog.text and fc_api.invocations == []


@pytest.mark.parametrize("text, problem", [
    ("[]", "not an object"), ("{x", "not JSON"), ('{"HR": {"DINGTALK_APP_SECRET": "s"}}', "robot name"),
    ('{"hr": {"MODEL": "m"}}', "no DINGTALK_APP_SECRET"), ('{"hr": "s"}', "not an object of settings"),
    ('{"hr": {"DINGTALK_APP_SECRET": "s", "OSS_MOUNT_POINT": "/x"}}', "the deployment's"),
    ('{"hr": {"DINGTALK_APP_SECRET": "s", "HISTORY_LENGTH": true}}', "must be a string")])
def test_bots_problems_name_the_variable(text, problem):
    with pytest.raises(ConfigError) as error:
        parse_bots(text)
    assert error.value.variable == "BOTS" and problem in str(error.value)


def test_a_robot_never_inherits_the_deployments_app():
    env = {"DINGTALK_APP_KEY": "own-key", "DINGTALK_APP_SECRET": "own", "DINGTALK_CARD_TEMPLATE_ID": "t",
           "MODEL": "qwen-plus", "OSS_MOUNT_POINT": "/mnt/oss"}
    hr = robot_environment(env, parse_bots(json.dumps(BOTS)), "hr")
    assert hr == {"DINGTALK_APP_SECRET": HR_SECRET, "SYSTEM_PROMPT": "你是 HR 助理", "MODEL": "qwen-plus",
                  "OSS_MOUNT_POINT": "/mnt/oss"}
    assert robot_environment(env, {}, "") == env


# --- the reply function, as each robot -------------------------------------------------------------

def ask(reply, sink, text, robot="", **kwargs):
    body = callback_body(text, webhook_base=sink.url, **kwargs)
    message = parse_callback(json.dumps(body).encode())
    payload = json.loads(message.to_payload())
    event = json.dumps({**payload, "robot": robot}).encode()
    status = json.loads(reply(event, context("reply")))["status"]
    last = sink.wait_for(1)[-1]
    return status, last["text"]["content"] if "text" in last else last["markdown"]["text"]


@pytest.fixture
def robots_reply_env(reply_env):
    return {**reply_env, "BOTS": json.dumps(BOTS), "SYSTEM_PROMPT": "你是通用助手"}


def test_two_robots_in_one_group_keep_separate_histories_and_personas(reply, robots_reply_env, use_env, llm, sink):
    use_env(robots_reply_env)
    ask(reply, sink, "我是默认机器人的第一个问题")
    ask(reply, sink, "我是问 HR 的第一个问题", "hr")
    ask(reply, sink, "问 HR 的第二个问题", "hr")
    hr = llm.requests[-1]["messages"]
    assert hr[0] == {"role": "system", "content": "你是 HR 助理"}
    assert [m["content"] for m in hr if m["role"] == "user"] == ["我是问 HR 的第一个问题", "问 HR 的第二个问题"]
    ask(reply, sink, "默认机器人的第二个问题")
    own = llm.requests[-1]["messages"]
    assert own[0]["content"] == "你是通用助手"
    asked = [m["content"] for m in own if m["role"] == "user"]
    assert asked == ["我是默认机器人的第一个问题", "默认机器人的第二个问题"]
    ask(reply, sink, "你好", "sales")
    assert llm.requests[-1]["model"] == "qwen-max"


def test_a_clear_and_a_setting_belong_to_the_robot_they_were_given_to(reply, robots_reply_env, use_env, llm, sink):
    use_env({**robots_reply_env, "ALLOWED_MODELS": "qwen-long"})
    ask(reply, sink, "记住这句", "hr")
    ask(reply, sink, "默认机器人也记住")
    assert ask(reply, sink, "\\clear", "hr")[0] == "cleared"
    assert ask(reply, sink, "\\设置 模型 qwen-long", is_admin=True)[0] == "setting-set"
    ask(reply, sink, "还记得吗", "hr")
    assert [m["role"] for m in llm.requests[-1]["messages"]] == ["system", "user"]
    assert llm.requests[-1]["model"] != "qwen-long"
    ask(reply, sink, "还记得吗")
    assert llm.requests[-1]["model"] == "qwen-long" and len(llm.requests[-1]["messages"]) == 4


def test_a_message_for_a_robot_that_was_removed_says_so(reply, robots_reply_env, use_env, llm, sink):
    use_env(robots_reply_env)
    assert ask(reply, sink, "你好", "finance") == ("misconfigured", texts.MISCONFIGURED.format(variable="BOTS"))
    assert llm.requests == []


def test_a_robot_answers_through_its_own_app(reply, reply_env, use_env, llm, sink):
    sink.add_app("ding-hr-app", HR_SECRET)
    bots = {"hr": {"DINGTALK_APP_KEY": "ding-hr-app", "DINGTALK_APP_SECRET": HR_SECRET}}
    use_env({**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
             "DINGTALK_API_ENDPOINT": sink.url, "BOTS": json.dumps(bots)})
    body = callback_body("你好", webhook_base=sink.url, robot_code="ding-hr-app")
    event = json.dumps({**json.loads(parse_callback(json.dumps(body).encode()).to_payload()), "robot": "hr"})
    assert json.loads(reply(event.encode(), context("reply")))["status"] == "answered"
    tokens = [c["body"].get("appKey") for c in sink.api_calls if c["path"] == "/v1.0/oauth2/accessToken"]
    created = [c for c in sink.api_calls if c["path"].endswith("createAndDeliver")]
    assert tokens == ["ding-hr-app"] and created
    assert created[0]["body"]["imGroupOpenDeliverModel"]["robotCode"] == "ding-hr-app"
    assert created[0]["headers"]["x-acs-dingtalk-access-token"] == sink.apps["ding-hr-app"][1]


def test_the_local_stack_runs_two_robots_in_one_group(tmp_path):
    bots = {"hr": {"DINGTALK_APP_KEY": "ding-local-hr", "DINGTALK_APP_SECRET": "local-hr-secret",
                   "SYSTEM_PROMPT": "你是 HR 助理"}}
    with LocalStack(StackSettings(state_dir=tmp_path, bots=bots)) as stack:
        stack.send("第一个问题", conversation_id="cid-two")
        first_hr = stack.send("问 HR", conversation_id="cid-two", robot="hr")
        second = stack.send("第二个问题", conversation_id="cid-two")
    assert first_hr.outcome == second.outcome == "answered"
    assert "上下文中有 0 轮" in first_hr.replies[0]["text"]["content"]
    assert "上下文中有 1 轮" in second.replies[0]["text"]["content"]
    assert stack.fc.invocations[1]["payload"]["robot"] == "hr"


@FORMS
def test_card_clicks_are_checked_against_each_robot_s_registered_secret(call, receiver, robots_env, use_env, fc_api):
    """A click on a card is signed with the apiSecret registered for the robot's app, never the app secret itself."""
    from shared.common.card_actions import callback_secret

    use_env(robots_env)
    body = json.dumps({"outTrackId": "card-1", "userId": "staff-a", "spaceId": "cid-1", "type": "actionCallback",
                       "content": json.dumps({"cardPrivateData": {"actionIds": ["good"], "params": {}}})}).encode()
    assert call(receiver, body, signed_headers(callback_secret(HR_SECRET)), "/bots/hr/card-callback") == 200
    assert call(receiver, body, signed_headers(callback_secret(APP_SECRET)), "/bots/hr/card-callback") == 403
    assert call(receiver, body, signed_headers(HR_SECRET), "/bots/hr/card-callback") == 403
    assert call(receiver, body, signed_headers(callback_secret(APP_SECRET)), "/card-callback") == 200
    assert call(receiver, b'{"outTrackId": "card-1"}', signed_headers(callback_secret(APP_SECRET)),
                "/card-callback") == 400
    actions = [i["payload"]["cardAction"] for i in fc_api.invocations]
    assert [(a["robot"], a["action"], a["out_track_id"]) for a in actions] == [("hr", "good", "card-1"),
                                                                               ("", "good", "card-1")]
