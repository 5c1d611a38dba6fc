import json

import pytest

from devstack.fake_dingtalk import callback_body, encode
from shared.common.errors import MalformedRequest
from shared.common.message import IncomingMessage
from shared.receiver.dingtalk.callback import parse_callback

BASE = "https://oapi.dingtalk.com"


def test_group_text_loses_the_space_left_by_the_mention():
    message = parse_callback(encode(callback_body("  \\clear ", webhook_base=BASE)))
    assert message.question == "\\clear"
    assert message.is_group and message.senderStaffId == "staff-zhangsan"


def test_rich_text_parts_are_joined():
    body = callback_body("", webhook_base=BASE, msgtype="richText")
    body["content"] = {"richText": [{"text": "第一段"}, {"downloadCode": "pic", "type": "picture"}, {"text": "第二段"}]}
    assert parse_callback(encode(body)).question == "第一段第二段"


def test_audio_is_answered_from_its_recognition():
    assert parse_callback(encode(callback_body("今天天气怎么样", webhook_base=BASE, msgtype="audio"))).question == "今天天气怎么样"


@pytest.mark.parametrize("msgtype", ["picture", "file", "video"])
def test_media_messages_parse_with_no_question(msgtype):
    message = parse_callback(encode(callback_body("", webhook_base=BASE, msgtype=msgtype)))
    assert message.msgtype == msgtype and message.question == ""


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps({"msgtype": "text"}).encode(),
                                  json.dumps({"sessionWebhook": BASE}).encode(),
                                  json.dumps({"msgtype": "text", "sessionWebhook": BASE, "text": {"content": 5}}).encode(),
                                  json.dumps({"msgtype": "text", "sessionWebhook": BASE,
                                              "sessionWebhookExpiredTime": "soon"}).encode()])
def test_malformed_bodies_raise(body):
    with pytest.raises(MalformedRequest):
        parse_callback(body)


def test_payload_round_trips_and_stays_small():
    message = parse_callback(encode(callback_body("问" * 20000, webhook_base=BASE)))
    payload = message.to_payload()
    assert len(payload) < 64 * 1024
    assert IncomingMessage.from_payload(payload) == message


def test_tutorial_receiver_payload_is_still_understood():
    legacy = {"sessionExpiredTime": "2023-05-19 18:00:00", "sessionWebhook": BASE + "/robot/sendBySession?session=x",
              "question": " 你好", "id": "张三"}
    message = IncomingMessage.from_payload(json.dumps(legacy))
    assert message.question == "你好" and message.conversationId == "nick:张三"
    assert message.sessionWebhook == legacy["sessionWebhook"]
