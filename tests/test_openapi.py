"""The hand-written DingTalk OpenAPI client sends what the official SDK (``alibabacloud-dingtalk``) sends.

Each case makes the same call both ways against the loopback DingTalk and compares the two
requests as DingTalk receives them: method, path, token header and JSON body.
"""

import json

import pytest

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.address import ChatAddress
from shared.reply.config import BUILTIN_CARD_TEMPLATE, CardSettings, DingTalkApp
from shared.reply.dingtalk.cards import BUILTIN_ORDER, CardStream
from shared.reply.dingtalk.openapi import OpenApi, OpenApiError, TokenCache

alibabacloud_dingtalk = pytest.importorskip("alibabacloud_dingtalk", reason="the official SDK is a test dependency")


def official(sink, module: str):
    """The official SDK client for ``module`` (e.g. ``card_1_0``), pointed at the loopback DingTalk."""
    from importlib import import_module

    from alibabacloud_tea_openapi import models as open_api_models

    client = import_module(f"alibabacloud_dingtalk.{module}.client").Client
    config = open_api_models.Config(protocol="http", region_id="central", endpoint=sink.url.split("://")[1])
    return client(config), import_module(f"alibabacloud_dingtalk.{module}.models")


def runtime():
    from alibabacloud_tea_util import models

    return models.RuntimeOptions(read_timeout=5000, connect_timeout=5000)


def last_call(sink):
    call = sink.api_calls[-1]
    return call["method"], call["path"], call["headers"].get("x-acs-dingtalk-access-token"), call["body"]


@pytest.fixture
def app(sink):
    return DingTalkApp(sink.app_key, sink.app_secret, sink.url)


@pytest.fixture
def api(app):
    return OpenApi(app, tokens=TokenCache())


def address(group=True):
    body = callback_body("你好", webhook_base="https://oapi.dingtalk.com", group=group, conversation_id="cid-x",
                         sender_staff_id="staff-1", sender_nick="张三")
    return ChatAddress.of(parse_callback(json.dumps(body).encode()))


def test_access_token_request_matches_the_official_sdk(sink, api):
    client, models = official(sink, "oauth2_1_0")
    client.get_access_token_with_options(models.GetAccessTokenRequest(app_key=sink.app_key,
                                                                      app_secret=sink.app_secret), {}, runtime())
    expected = last_call(sink)
    api.tokens.get(api.app, api.session)
    assert last_call(sink) == expected


@pytest.mark.parametrize("group", [True, False], ids=["group", "direct"])
def test_card_create_and_deliver_matches_the_official_sdk(sink, api, group):
    card = CardStream(CardSettings("tpl.schema", "content", 0.3, 3000, 25), api, address(group))
    card.start()
    ours = last_call(sink)
    client, models = official(sink, "card_1_0")
    space = {"open_space_id": ours[3]["openSpaceId"]}
    if group:
        space["im_group_open_space_model"] = models.CreateAndDeliverRequestImGroupOpenSpaceModel(support_forward=True)
        space["im_group_open_deliver_model"] = models.CreateAndDeliverRequestImGroupOpenDeliverModel(
            robot_code="ding-local-app", at_user_ids={"staff-1": "张三"})
    else:
        space["im_robot_open_space_model"] = models.CreateAndDeliverRequestImRobotOpenSpaceModel(support_forward=True)
        space["im_robot_open_deliver_model"] = models.CreateAndDeliverRequestImRobotOpenDeliverModel(
            space_type="IM_ROBOT", robot_code="ding-local-app")
    request = models.CreateAndDeliverRequest(
        card_template_id="tpl.schema", out_track_id=card.cards[0].out_track_id, callback_type="STREAM", user_id_type=1,
        card_data=models.CreateAndDeliverRequestCardData(card_param_map={"content": ""}), **space)
    token = api.tokens.get(api.app, api.session)
    client.create_and_deliver_with_options(request, models.CreateAndDeliverHeaders(
        x_acs_dingtalk_access_token=token), runtime())
    assert last_call(sink) == ours


def finished_card(sink, api, template, key, text):
    """A card streamed and finished by ours: its id, the last request, and the official client to compare."""
    card = CardStream(CardSettings(template, key, 0.0, 3000, 25), api, address())
    card.start()
    card.finish(text)
    client, models = official(sink, "card_1_0")
    return card.cards[0].out_track_id, last_call(sink), client, models, api.tokens.get(api.app, api.session)


def test_card_streaming_update_matches_the_official_sdk(sink, api):
    track, ours, client, models, token = finished_card(sink, api, "tpl.schema", "content", "最终答案")
    client.streaming_update_with_options(models.StreamingUpdateRequest(
        out_track_id=track, guid=ours[3]["guid"], key="content", content="最终答案", is_full=True,
        is_finalize=True, is_error=False), models.StreamingUpdateHeaders(x_acs_dingtalk_access_token=token), runtime())
    assert last_call(sink) == ours


def test_a_refused_secret_is_an_error_that_names_dingtalks_code(sink):
    api = OpenApi(DingTalkApp(sink.app_key, "wrong-secret", sink.url), tokens=TokenCache())
    with pytest.raises(OpenApiError, match="invalidClientIdOrSecret"):
        api.call("anything", "POST", "/v1.0/card/instances/createAndDeliver", {})


def test_builtin_card_status_update_matches_the_official_sdk(sink, api):
    track, ours, client, models, token = finished_card(sink, api, BUILTIN_CARD_TEMPLATE, "msgContent", "答案")
    client.update_card_with_options(models.UpdateCardRequest(
        out_track_id=track, card_data=models.UpdateCardRequestCardData(card_param_map={
            "msgContent": "答案", "staticMsgContent": "", "flowStatus": "3", "sys_full_json_obj": BUILTIN_ORDER}),
        card_update_options=models.UpdateCardRequestCardUpdateOptions(update_card_data_by_key=True)),
        models.UpdateCardHeaders(x_acs_dingtalk_access_token=token), runtime())
    assert last_call(sink) == ours


def test_builtin_card_data_follows_the_official_ai_markdown_card():
    """AIMarkdownCardInstance (dingtalk-stream, card_instance.py): the component order and AICardStatus values."""
    assert json.loads(BUILTIN_ORDER)["order"] == ["msgTitle", "msgContent", "staticMsgContent", "msgTextList",
                                                  "msgImages", "msgSlider", "msgButtons"]
    from shared.reply.dingtalk import cards
    assert (cards.PROCESSING, cards.INPUTTING, cards.FINISHED, cards.FAILED) == ("1", "2", "3", "5")


def test_a_card_data_update_without_merge_replaces_the_cards_data_as_dingtalk_does(sink, api):
    card = CardStream(CardSettings(BUILTIN_CARD_TEMPLATE, "msgContent", 0.0, 3000, 25), api, address())
    card.start()
    card.show("流式写入的内容")
    track = card.cards[0].out_track_id
    api.call("status only", "PUT", "/v1.0/card/instances",
             {"outTrackId": track, "cardData": {"cardParamMap": {"flowStatus": "2"}}})
    assert sink.cards[track]["content"] == "" and "msgContent" not in sink.cards[track]["params"]
    card.finish("最终答案")
    assert sink.cards[track]["content"] == "最终答案" and sink.cards[track]["params"]["flowStatus"] == "3"


def test_a_card_delivered_to_nobody_is_a_failed_card_and_the_answer_comes_by_webhook(sink, api):
    from shared.reply.dingtalk.cards import CardError
    sink.undeliverable = "机器人不在群内"
    card = CardStream(CardSettings(BUILTIN_CARD_TEMPLATE, "msgContent", 0.0, 3000, 25), api, address())
    with pytest.raises(CardError, match="机器人不在群内"):
        card.start()


@pytest.mark.parametrize("group", [True, False], ids=["group", "direct"])
def test_robot_messages_match_the_official_sdk(sink, api, group):
    from shared.reply.dingtalk.robot import RobotSender

    RobotSender(api, address(group)).send({"msgtype": "markdown", "markdown": {"title": "标题", "text": "**答案**"}})
    ours = last_call(sink)
    client, models = official(sink, "robot_1_0")
    token = api.tokens.get(api.app, api.session)
    param = json.dumps({"title": "标题", "text": "**答案**"}, ensure_ascii=False)
    if group:
        client.org_group_send_with_options(models.OrgGroupSendRequest(
            robot_code="ding-local-app", open_conversation_id="cid-x", msg_key="sampleMarkdown", msg_param=param),
            models.OrgGroupSendHeaders(x_acs_dingtalk_access_token=token), runtime())
    else:
        client.batch_send_otowith_options(models.BatchSendOTORequest(
            robot_code="ding-local-app", user_ids=["staff-1"], msg_key="sampleMarkdown", msg_param=param),
            models.BatchSendOTOHeaders(x_acs_dingtalk_access_token=token), runtime())
    assert last_call(sink) == ours
