import json

import pytest

from devstack.fake_dingtalk import callback_body, encode
from shared.common.errors import MalformedRequest
from shared.common.message import IncomingMessage, Part
from shared.receiver.dingtalk.callback import parse_callback

BASE = "https://oapi.dingtalk.com"


def test_group_text_loses_the_space_left_by_the_mention():
    message = parse_callback(encode(callback_body("  \\clear ", webhook_base=BASE)))
    assert message.question == "\\clear"
    assert message.is_group and message.senderStaffId == "staff-zhangsan"


def test_rich_text_keeps_its_text_and_its_pictures_in_order():
    body = callback_body("", webhook_base=BASE, msgtype="richText")
    body["content"] = {"richText": [{"text": "第一段"}, {"downloadCode": "pic", "type": "picture"}, {"text": "第二段"}]}
    message = parse_callback(encode(body))
    assert message.question == "第一段第二段"
    assert message.parts == (Part("text", "第一段"), Part("picture", downloadCode="pic"), Part("text", "第二段"))


def test_text_only_rich_text_carries_no_parts():
    body = callback_body("", webhook_base=BASE, msgtype="richText")
    body["content"] = {"richText": [{"text": "只有"}, {"text": "文字"}]}
    assert parse_callback(encode(body)).parts == ()


def test_pictures_and_files_carry_their_download_codes():
    picture = parse_callback(encode(callback_body("", webhook_base=BASE, msgtype="picture")))
    assert picture.parts == (Part("picture", downloadCode="dc-media"),)
    body = callback_body("", webhook_base=BASE, msgtype="file", group=False)
    body["content"] = {"downloadCode": "dc-file", "fileName": "报告.pdf", "fileId": "f", "spaceId": "s"}
    assert parse_callback(encode(body)).parts == (Part("file", downloadCode="dc-file", fileName="报告.pdf"),)


@pytest.mark.parametrize("replied, expected", [
    ({"msgType": "text", "content": {"content": "原来那句话"}}, (Part("text", "原来那句话"),)),
    ({"msgType": "richText", "content": json.dumps({"richText": [{"text": "看图"},
                                                                 {"type": "picture", "downloadCode": "q-pic"}]})},
     (Part("text", "看图"), Part("picture", downloadCode="q-pic"))),
    ({"msgType": "picture", "content": {"downloadCode": "q-pic"}}, (Part("picture", downloadCode="q-pic"),)),
    ({"msgType": "text", "content": {"text": "原来那句话"}}, (Part("text", "原来那句话"),)),
    ({"msgType": "text", "content": json.dumps({"content": "原来那句话"})}, (Part("text", "原来那句话"),)),
    ({"msgType": "text", "content": "原来那句话"}, (Part("text", "原来那句话"),)),
    ({"content": {"text": "原来那句话"}}, (Part("text", "原来那句话"),)),
    ({"msgType": "richText", "content": {"richText": [{"text": "看图"}, {"downloadCode": "q-pic"},
                                                      {"pictureDownloadCode": "q-pic2"}]}},
     (Part("text", "看图"), Part("picture", downloadCode="q-pic"), Part("picture", downloadCode="q-pic2"))),
    ({"msgType": "richText", "content": json.dumps({"richText": [{"downloadCode": "q-pic"}, {"text": "说明"}]})},
     (Part("picture", downloadCode="q-pic"), Part("text", "说明"))),
], ids=["text", "rich-text-json-string", "picture", "content.text", "text-json-string", "plain-string",
        "no-msgType", "rich-text-untyped-pictures", "untyped-pictures-json-string"])
def test_a_quoted_message_travels_with_the_question(replied, expected):
    body = callback_body("这句话什么意思？", webhook_base=BASE)
    body["text"].update({"isReplyMsg": True, "repliedMsg": {"msgId": "old", "senderId": "u", **replied}})
    message = parse_callback(encode(body))
    assert message.question == "这句话什么意思？" and message.quoted == expected
    assert IncomingMessage.from_payload(message.to_payload()) == message


def test_rich_text_pictures_without_a_type_are_known_by_their_download_code():
    body = callback_body("", webhook_base=BASE, msgtype="richText")
    body["content"] = {"richText": [{"text": "看这张"}, {"downloadCode": "pic", "pictureDownloadCode": "pdc"}]}
    assert parse_callback(encode(body)).parts == (Part("text", "看这张"), Part("picture", downloadCode="pic"))


@pytest.mark.parametrize("created", [1_700_000_000_123, "1700000000123"], ids=["number", "digit-string"])
def test_create_at_may_be_a_number_or_a_digit_string(created):
    body = callback_body("你好", webhook_base=BASE)
    body["createAt"] = created
    message = parse_callback(encode(body))
    assert message.createAt == 1_700_000_000_123
    assert IncomingMessage.from_payload(message.to_payload()).createAt == 1_700_000_000_123


@pytest.mark.parametrize("created", ["soon", "１７００", "-1", "1e12", "9" * 40])
def test_create_at_strings_that_are_not_plain_digits_are_refused(created):
    body = callback_body("你好", webhook_base=BASE)
    body["createAt"] = created
    with pytest.raises(MalformedRequest):
        parse_callback(encode(body))


def test_audio_is_answered_from_its_recognition():
    body = callback_body("今天天气怎么样", webhook_base=BASE, msgtype="audio")
    assert parse_callback(encode(body)).question == "今天天气怎么样"


@pytest.mark.parametrize("msgtype", ["picture", "file", "video"])
def test_media_messages_parse_with_no_question(msgtype):
    message = parse_callback(encode(callback_body("", webhook_base=BASE, msgtype=msgtype)))
    assert message.msgtype == msgtype and message.question == ""


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps({"msgtype": "text"}).encode(),
                                  json.dumps({"sessionWebhook": BASE}).encode(),
                                  json.dumps({"msgtype": "text", "sessionWebhook": BASE,
                                              "text": {"content": 5}}).encode(),
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


def payload_with(**changes):
    document = json.loads(parse_callback(encode(callback_body("hi", webhook_base=BASE))).to_payload())
    document.update(changes)
    return json.dumps(document)


@pytest.mark.parametrize("changes", [{"isAdmin": "no"}, {"isAdmin": 1}, {"msgId": 5}, {"msgId": None},
                                     {"createAt": "soon"}, {"createAt": 1.5}, {"question": ["hi"]},
                                     {"parts": "picture"}, {"parts": [{"type": "exe", "downloadCode": "x"}]},
                                     {"quoted": [{"type": "text", "text": 5}]}, {"sessionWebhook": {}}])
def test_the_reply_side_checks_every_payload_type_too(changes):
    with pytest.raises(MalformedRequest):
        IncomingMessage.from_payload(payload_with(**changes))


def test_is_admin_is_true_only_when_it_is_true():
    assert IncomingMessage.from_payload(payload_with(isAdmin=True)).isAdmin
    assert not IncomingMessage.from_payload(payload_with(isAdmin=False)).isAdmin


def test_rich_text_with_more_items_than_a_payload_carries_keeps_the_first_ones():
    body = callback_body("", webhook_base=BASE, msgtype="richText")
    body["content"] = {"richText": [{"text": f"段{i}"} if i % 2 else {"type": "picture", "downloadCode": f"p{i}"}
                                    for i in range(120)]}
    message = parse_callback(encode(body))
    assert len(message.parts) == 40 and message.parts[0].downloadCode == "p0"
    assert IncomingMessage.from_payload(message.to_payload()) == message


def test_a_message_with_parts_carries_its_text_once_and_stays_under_fcs_async_limit():
    body = callback_body("", webhook_base=BASE, msgtype="richText")
    body["content"] = {"richText": [{"text": "字" * 900} if i % 2 else {"type": "picture", "downloadCode": f"p{i}"}
                                    for i in range(40)]}
    message = parse_callback(encode(body))
    payload = message.to_payload()
    assert len(payload) < len(encode(body)) + 2048 < 128 * 1024
    assert IncomingMessage.from_payload(payload).question == message.question == "字" * 8000
