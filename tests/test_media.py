"""Pictures, rich text, quoted messages and files, read through the loopback DingTalk open platform
(``messageFiles/download``) and sent to the model as OpenAI content parts."""

import base64
import json

import fixtures
import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback


@pytest.fixture
def media_env(reply_env, sink):
    return {**reply_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
            "DINGTALK_API_ENDPOINT": sink.url, "CARD_STREAMING": "off", "VISION_MODEL": "vision-model"}


def send(reply, sink, text="", **kwargs):
    body = callback_body(text, webhook_base=sink.url, **kwargs)
    event = parse_callback(json.dumps(body).encode()).to_payload()
    return json.loads(reply(event, context("reply")))["status"], event


def said(sink):
    return [m.get("text", {}).get("content") or m["markdown"]["text"] for m in sink.wait_for(1)]


def prompt_parts(llm):
    return llm.requests[-1]["messages"][-1]["content"]


def history(oss):
    return [json.loads(p.read_text("utf-8")) for p in (oss / "dingbot" / "history").glob("*/*-turn-*")]


def picture(sink, code="pic-1", data=None):
    sink.files[code] = data if data is not None else fixtures.png()
    return {"downloadCode": code, "pictureDownloadCode": "unused"}


# --- pictures ------------------------------------------------------------------------------------

def test_a_picture_reaches_the_vision_model_as_an_image_part(reply, media_env, use_env, llm, sink, oss):
    use_env(media_env)
    status, event = send(reply, sink, msgtype="picture", content=picture(sink))
    assert status == "answered" and "看到了 1 张图片" in said(sink)[0]
    request = llm.requests[-1]
    [image, ask] = request["messages"][-1]["content"]
    assert request["model"] == "vision-model" and ask["type"] == "text"
    header, encoded = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64" and base64.b64decode(encoded) == fixtures.png()
    assert len(event) < 2048 and [t["question"] for t in history(oss)] == ["[图片]"]


def test_rich_text_keeps_pictures_between_sentences_in_order(reply, media_env, use_env, llm, sink, oss):
    use_env(media_env)
    content = {"richText": [{"text": "第一张："}, {"type": "picture", **picture(sink, "p1")}, {"text": "第二张："},
                            {"type": "picture", **picture(sink, "p2", fixtures.png(rgb=(0, 0, 255)))},
                            {"text": "有什么不同？"}]}
    assert send(reply, sink, msgtype="richText", content=content)[0] == "answered"
    parts = prompt_parts(llm)
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert parts[0]["text"] == "第一张：" and parts[4]["text"] == "有什么不同？"
    assert history(oss)[0]["question"] == "第一张：[图片]第二张：[图片]有什么不同？"
    assert "base64" not in json.dumps(history(oss), ensure_ascii=False)


def test_a_model_that_cannot_see_gets_one_readable_sentence(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    llm.vision = False
    assert send(reply, sink, msgtype="picture", content=picture(sink))[0] == "llm-error"
    assert said(sink) == ["当前模型看不了图片，请联系管理员设置支持图片的 VISION_MODEL，或改用文字描述。"]


def test_a_picture_that_is_not_an_image_is_refused_politely(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    assert send(reply, sink, msgtype="picture", content=picture(sink, data=b"not an image"))[0] == "media-error"
    assert said(sink) == ["这张图片的格式识别不了，请换成 PNG 或 JPG 再发。"] and llm.requests == []


# --- quoted messages -------------------------------------------------------------------------------

def test_a_quoted_text_becomes_part_of_the_question(reply, media_env, use_env, llm, sink, oss):
    use_env(media_env)
    replied = {"msgType": "text", "content": {"content": "Serverless 是一种按需付费的计算方式。"}}
    assert send(reply, sink, "这句话什么意思？", replied=replied)[0] == "answered"
    question = prompt_parts(llm)
    assert isinstance(question, str) and "Serverless 是一种按需付费的计算方式。" in question
    assert question.index("Serverless") < question.index("这句话什么意思？")
    assert history(oss)[0]["question"] == "[引用：Serverless 是一种按需付费的计算方式。] 这句话什么意思？"


@pytest.mark.parametrize("replied", [
    {"msgType": "text", "content": {"text": "Serverless 是一种按需付费的计算方式。"}},
    {"msgType": "text", "content": json.dumps({"content": "Serverless 是一种按需付费的计算方式。"},
                                              ensure_ascii=False)},
    {"msgType": "richText", "content": {"richText": [{"text": "Serverless 是一种按需付费的计算方式。"}]}},
], ids=["content.text", "json-string", "rich-text"])
def test_every_quote_shape_reaches_the_model(replied, reply, media_env, use_env, llm, sink):
    use_env(media_env)
    assert send(reply, sink, "这句话什么意思？", replied=replied)[0] == "answered"
    assert "Serverless 是一种按需付费的计算方式。" in json.dumps(prompt_parts(llm), ensure_ascii=False)


def test_a_quoted_picture_is_seen_with_the_question(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    sink.files["old-pic"] = fixtures.png()
    replied = {"msgType": "picture", "content": {"downloadCode": "old-pic"}}
    assert send(reply, sink, "图里是什么？", replied=replied)[0] == "answered"
    assert [p["type"] for p in prompt_parts(llm)] == ["text", "image_url", "text", "text"]


# --- files ---------------------------------------------------------------------------------------

def file_message(sink, name, data):
    sink.files[f"file-{name}"] = data
    return {"msgtype": "file", "group": False, "conversation_id": "cid-dm-files",
            "content": {"downloadCode": f"file-{name}", "fileName": name, "fileId": "f", "spaceId": "s"}}


@pytest.mark.parametrize("name, data, expected", [
    ("report.pdf", fixtures.pdf("Revenue grew 12 percent in Q3"), "Revenue grew 12 percent in Q3"),
    ("方案.docx", fixtures.docx(["项目目标：上线", "负责人：张三"]), "项目目标：上线\n负责人：张三"),
    ("notes.md", "# 标题\n\n- 要点一".encode("utf-8"), "# 标题\n\n- 要点一"),
    ("旧文件.txt", "用 GB18030 保存的中文".encode("gb18030"), "用 GB18030 保存的中文"),
    ("main.py", b"print('hello')\n", "print('hello')"),
])
def test_a_file_is_read_into_the_question_under_its_name(name, data, expected, reply, media_env, use_env, llm, sink,
                                                         oss):
    use_env(media_env)
    assert send(reply, sink, **file_message(sink, name, data))[0] == "answered"
    question = prompt_parts(llm)
    assert isinstance(question, str) and f"【文件：{name}】\n{expected}\n【文件结束】" in question
    assert history(oss)[0]["question"] == f"[文件 {name}]"


def test_a_picture_sent_as_a_file_is_seen_as_a_picture(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    assert send(reply, sink, **file_message(sink, "截图.png", fixtures.png()))[0] == "answered"
    assert prompt_parts(llm)[0]["type"] == "image_url"


def test_a_long_file_is_cut_to_the_budget_and_the_user_is_told(reply, media_env, use_env, llm, sink):
    use_env({**media_env, "FILE_TEXT_CHARS": "1000"})
    assert send(reply, sink, **file_message(sink, "notes.txt", ("内容很多。" * 1000).encode()))[0] == "answered"
    assert len(prompt_parts(llm)) < 1200
    assert "".join(said(sink)).endswith("（「notes.txt」较长，只读了前 1000 字。）")


def test_a_file_over_the_size_limit_is_refused_before_the_model_is_asked(reply, media_env, use_env, llm, sink):
    use_env({**media_env, "MAX_FILE_MB": "1"})
    assert send(reply, sink, **file_message(sink, "big.txt", b"x" * (1024 * 1024 + 1)))[0] == "media-error"
    assert said(sink) == ["文件太大了（最大 1 MB），请压缩或拆分后再发。"] and llm.requests == []


@pytest.mark.parametrize("name, data, expected", [
    ("archive.zip", b"PK\x03\x04" + b"\x00" * 100, "暂时读不了「archive.zip」这种文件"),
    ("locked.pdf", fixtures.encrypted_pdf(), "「locked.pdf」设置了密码"),
    ("bomb.docx", fixtures.docx_with_entity_bomb(), "「bomb.docx」读不出来"),
    ("broken.pdf", b"%PDF-1.4 not really", "「broken.pdf」读不出来"),
    ("scan.pdf", fixtures.pdf(""), "「scan.pdf」里没有能读的文字"),
])
def test_files_that_cannot_be_read_get_one_clear_sentence(name, data, expected, reply, media_env, use_env, llm, sink):
    use_env(media_env)
    assert send(reply, sink, **file_message(sink, name, data))[0] == "media-error"
    [sentence] = said(sink)
    assert sentence.startswith(expected) and llm.requests == []


def test_a_video_gets_a_clear_sentence(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    assert send(reply, sink, msgtype="video", content={"downloadCode": "v", "duration": "3", "videoType": "mp4"})[0] \
        == "unsupported"
    assert said(sink) == ["暂时看不了视频，请描述一下视频内容，或截图发给我。"]


# --- failures ------------------------------------------------------------------------------------

def test_without_app_credentials_a_picture_says_what_to_configure_and_text_still_works(
        reply, reply_env, use_env, llm, sink):
    use_env(reply_env)
    assert send(reply, sink, msgtype="picture", content={"downloadCode": "x"})[0] == "needs-app"
    assert "DINGTALK_APP_KEY" in said(sink)[0] and llm.requests == []
    assert send(reply, sink, "你好")[0] == "answered"


@pytest.mark.parametrize("kind", ["rich-text", "quoted-picture"])
def test_text_with_a_picture_and_no_app_is_answered_with_one_sentence_about_the_picture(
        kind, reply, reply_env, use_env, llm, sink, oss):
    use_env(reply_env)
    if kind == "rich-text":
        content = {"richText": [{"text": "这张图里的产品叫什么？"}, {"type": "picture", "downloadCode": "p"}]}
        status, _ = send(reply, sink, msgtype="richText", content=content)
    else:
        status, _ = send(reply, sink, "这张图里的产品叫什么？",
                         replied={"msgType": "picture", "content": {"downloadCode": "p"}})
    assert status == "answered"
    asked = json.dumps(prompt_parts(llm), ensure_ascii=False)
    assert "这张图里的产品叫什么？" in asked and "[图片]" in asked and "image_url" not in asked
    [answer] = said(sink)
    assert answer.endswith("（消息里的图片或文件我没能看到：回复函数没有配置钉钉应用的 DINGTALK_APP_KEY，"
                           "以上只回答了文字部分。）")
    assert "[图片]" in history(oss)[0]["question"]


def test_text_with_a_picture_when_the_monthly_quota_is_spent_is_answered_with_one_sentence(
        reply, media_env, use_env, llm, sink):
    use_env(media_env)
    sink.quota_spent = True
    content = {"richText": [{"text": "图里写了什么？"}, {"type": "picture", **picture(sink)}]}
    assert send(reply, sink, msgtype="richText", content=content)[0] == "answered"
    assert said(sink)[0].endswith("钉钉接口本月的调用额度已用完，以上只回答了文字部分。）")


def test_a_failed_download_is_answered_once_with_a_readable_sentence(reply, media_env, use_env, llm, sink):
    use_env(media_env)
    status, event = send(reply, sink, msgtype="picture", content={"downloadCode": "expired-code"})
    assert status == "media-error" and said(sink) == ["图片或文件没能下载下来，请稍后重新发送。"]
    assert json.loads(reply(event, context("reply")))["status"] == "duplicate"
    assert len(sink.wait_for(1)) == 1 and llm.requests == []


def test_a_picture_streams_into_a_card_like_text(reply, media_env, use_env, llm, sink):
    use_env({**media_env, "CARD_STREAMING": "on"})
    assert send(reply, sink, msgtype="picture", content=picture(sink), conversation_id="cid-card-pic")[0] == "answered"
    [card] = sink.cards_in("cid-card-pic")
    assert "看到了 1 张图片" in card["content"] and sink.messages == []
