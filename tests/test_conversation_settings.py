"""Settings per conversation: a group's admins with \\设置, the operator with a file on the bucket, one deployment."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply import texts
from shared.reply.config import ReplyConfig
from shared.reply.conversation_settings import KNOWLEDGE, MODEL, QUOTA, TOOLS, Refused, check, in_force
from shared.reply.knowledge import retrieve
from shared.reply.oss import operator

SAMPLES = Path(__file__).resolve().parent.parent / "devstack" / "sample_knowledge"
SALES, ENGINEERING = "cid-sales", "cid-engineering"


@pytest.fixture
def knowledge(oss):
    """The knowledge folder with a sub-folder per team: sales has the price list, engineering the handbook."""
    folder = oss / "dingbot" / "knowledge"
    (folder / "销售").mkdir(parents=True)
    price_list = "# 价目表\n\n星河网关 DB-200 的报价是每台 4800 元，含一年保修。\n"
    (folder / "销售" / "价目表.md").write_text(price_list, "utf-8")
    shutil.copytree(SAMPLES, folder / "研发")
    return folder


@pytest.fixture
def env(reply_env):
    return {**reply_env, "MODEL": "qwen-plus", "ALLOWED_MODELS": "qwen-max,deepseek-v3", "MAX_HISTORY_LENGTH": "8",
            "EMBEDDING_MODEL": "offline-embedding", "KB_MIN_SCORE": "0.18"}


def ask(reply, sink, text, conversation_id=SALES, **kwargs):
    body = callback_body(text, webhook_base=sink.url, conversation_id=conversation_id, **kwargs)
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    last = sink.wait_for(1)[-1]
    return status, last["text"]["content"] if "text" in last else last["markdown"]["text"]


def admin(reply, sink, text, conversation_id=SALES):
    return ask(reply, sink, text, conversation_id, is_admin=True)


def operator_file(oss, name, document):
    folder = oss / "dingbot" / "settings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(document, ensure_ascii=False), "utf-8")


def a_minute_later():
    """Every instance reads the operator's files again once what it read is a minute old."""
    for key, (_, document) in list(operator._READ.items()):
        operator._READ[key] = (float("-inf"), document)


def test_two_groups_get_their_own_model_and_knowledge_from_one_deployment(reply, env, use_env, llm, sink, knowledge):
    use_env(env)
    assert admin(reply, sink, "\\设置 模型 qwen-max") == ("setting-set", "已把本会话的模型设为：qwen-max")
    assert admin(reply, sink, "\\设置 知识库 销售")[0] == "setting-set"
    assert admin(reply, sink, "\\设置 知识库 研发", ENGINEERING)[0] == "setting-set"
    _, sales = ask(reply, sink, "星河网关 DB-200 多少钱？")
    assert llm.requests[-1]["model"] == "qwen-max" and "价目表.md" in sales.splitlines()[-1]
    _, engineering = ask(reply, sink, "How do I reset the DB-200?", ENGINEERING)
    assert llm.requests[-1]["model"] == "qwen-plus" and "product-faq.md" in engineering.splitlines()[-1]
    assert "价目表" not in engineering


def test_anyone_may_look_but_only_a_group_admin_may_change(reply, env, use_env, llm, sink):
    use_env(env)
    status, listing = ask(reply, sink, "\\设置")
    assert status == "settings-shown" and "- 模型：qwen-plus（默认）" in listing
    assert f"dingbot/settings/{SALES}.json" in listing
    assert ask(reply, sink, "\\设置 模型 qwen-max") == ("not-admin", texts.SETTINGS_ADMIN_ONLY)
    ask(reply, sink, "你好")
    assert llm.requests[-1]["model"] == "qwen-plus"
    # In a one-to-one chat the person decides for themselves.
    assert ask(reply, sink, "\\设置 模型 deepseek-v3", "cid-dm", group=False)[0] == "setting-set"


def test_a_value_the_deployment_does_not_offer_is_refused_in_one_sentence(reply, env, use_env, llm, sink, knowledge):
    use_env(env)
    assert admin(reply, sink, "\\设置 模型 gpt-5") == ("setting-refused",
                                                     "模型只能从这些里选：qwen-plus、qwen-max、deepseek-v3。")
    assert admin(reply, sink, "\\设置 上下文 9") == ("setting-refused", "上下文轮数只能是 0 到 8。")
    status, said = admin(reply, sink, "\\设置 知识库 ../secrets")
    assert status == "setting-refused" and said == texts.KNOWLEDGE_NAME
    status, said = admin(reply, sink, "\\设置 知识库 财务")
    assert status == "setting-refused" and "研发" in said and "销售" in said
    assert admin(reply, sink, "\\设置 工具 web_search")[1] == "工具只能从这些里选：read_url（或写「全部」「关」）。"
    assert admin(reply, sink, "\\设置 大脑 dify")[1] == "大脑只能从这些里选：模型。"
    assert admin(reply, sink, "\\设置 温度 1")[0] == "setting-refused"
    assert "（默认）" in ask(reply, sink, "\\设置")[1].split("\n")[1]


def test_an_operator_lock_holds_against_a_group_admin(reply, env, use_env, llm, sink, oss, knowledge):
    use_env(env)
    assert admin(reply, sink, "\\设置 模型 qwen-max")[0] == "setting-set"  # before the operator locked it
    operator_file(oss, "groups.json", {SALES: {"模型": "deepseek-v3", "知识库": "销售", "锁定": ["模型", "人设"]}})
    a_minute_later()
    assert admin(reply, sink, "\\设置 模型 qwen-max") == ("locked", "运营方锁定了本会话的模型，群里不能修改。")
    assert admin(reply, sink, "\\system 你是海盗") == ("locked", "运营方锁定了本会话的人设，群里不能修改。")
    assert admin(reply, sink, "\\设置 知识库 研发")[0] == "setting-set"  # not locked: the group's choice wins
    listing = ask(reply, sink, "\\设置")[1]
    assert "- 模型：deepseek-v3（运营方，已锁定）" in listing and "- 知识库：研发（本会话）" in listing
    ask(reply, sink, "你好")
    assert llm.requests[-1]["model"] == "deepseek-v3"


def test_the_operator_may_choose_beyond_what_a_group_may(reply, env, use_env, llm, sink, oss):
    use_env({**env, "QUOTA_CONVERSATION_DAILY_TOKENS": "1000"})
    operator_file(oss, f"{SALES}.json", {"模型": "qwen-long", "配额": 5000})
    ask(reply, sink, "你好")
    assert llm.requests[-1]["model"] == "qwen-long"
    assert admin(reply, sink, "\\设置 配额 2000")[1] == "本会话的每日配额不能超过运营方定的 1,000 token。"
    assert "- 配额：每天 5,000 token（运营方）" in ask(reply, sink, "\\设置")[1]


def test_an_edited_settings_file_is_in_force_on_a_warm_instance_within_a_minute(reply, env, use_env, llm, sink, oss):
    use_env(env)
    operator_file(oss, "groups.json", {SALES: {"模型": "qwen-max"}})
    ask(reply, sink, "你好")
    operator_file(oss, "groups.json", {SALES: {"模型": "deepseek-v3"}})
    ask(reply, sink, "你好")
    assert [r["model"] for r in llm.requests] == ["qwen-max", "qwen-max"]  # read at most once a minute
    a_minute_later()
    ask(reply, sink, "你好")
    assert llm.requests[-1]["model"] == "deepseek-v3"


def test_a_broken_settings_file_costs_nothing_but_its_settings(reply, env, use_env, llm, sink, oss, caplog):
    use_env(env)
    (oss / "dingbot" / "settings").mkdir(parents=True)
    (oss / "dingbot" / "settings" / "groups.json").write_text("{模型: qwen-max", "utf-8")
    operator_file(oss, f"{SALES}.json", {"模型": "", "上下文": "很多"})
    assert ask(reply, sink, "你好")[0] == "answered"
    assert llm.requests[-1]["model"] == "qwen-plus"
    assert "groups.json is not a JSON object" in caplog.text and "history='很多' is not used" in caplog.text


def test_reset_goes_back_to_the_operator_and_the_defaults(reply, env, use_env, llm, sink, oss):
    use_env(env)
    operator_file(oss, "groups.json", {SALES: {"上下文": 1}})
    admin(reply, sink, "\\设置 模型 qwen-max")
    admin(reply, sink, "\\设置 上下文 3")
    admin(reply, sink, "\\system 你是海盗")
    assert admin(reply, sink, "\\设置 重置") == ("settings-reset", texts.SETTINGS_RESET)
    listing = ask(reply, sink, "\\设置")[1]
    assert "- 模型：qwen-plus（默认）" in listing and "- 上下文：1 轮（运营方）" in listing
    assert "- 人设：无（默认）" in listing
    for question in ("第一个问题", "第二个问题"):
        ask(reply, sink, question)
    assert [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"] == ["第一个问题", "第二个问题"]


def test_one_item_back_to_default_and_the_persona_item_is_the_persona(reply, env, use_env, llm, sink):
    use_env({**env, "SYSTEM_PROMPT": "你是助手"})
    admin(reply, sink, "\\设置 模型 qwen-max")
    assert admin(reply, sink, "\\设置 模型 默认") == ("setting-set", "本会话的模型已恢复为：qwen-plus")
    assert admin(reply, sink, "\\设置 人设 你是销售助理")[0] == "setting-set"
    assert ask(reply, sink, "\\system")[1] == "本会话的人设：你是销售助理"
    ask(reply, sink, "你好")
    assert llm.requests[-1]["model"] == "qwen-plus"
    assert llm.requests[-1]["messages"][0] == {"role": "system", "content": "你是销售助理"}


def test_a_group_quota_and_history_length_take_effect(reply, env, use_env, llm, sink):
    use_env(env)
    assert admin(reply, sink, "\\设置 上下文 0")[0] == "setting-set"
    ask(reply, sink, "第一个问题")
    ask(reply, sink, "第二个问题")
    assert [m["role"] for m in llm.requests[-1]["messages"]] == ["user"]
    assert admin(reply, sink, "\\设置 配额 1")[1] == "已把本会话的配额设为：每天 1 token"
    assert ask(reply, sink, "第三个问题")[0] == "quota"
    assert ask(reply, sink, "别的群的问题", ENGINEERING)[0] == "answered"


def test_tools_can_be_turned_off_for_one_conversation(reply, env, use_env, llm, sink):
    use_env(env)
    assert "read_url" in ask(reply, sink, "\\tools")[1]
    assert admin(reply, sink, "\\设置 工具 关")[1] == "已把本会话的工具设为：关"
    assert ask(reply, sink, "\\tools")[1] == texts.TOOLS_NONE
    assert "read_url" in ask(reply, sink, "\\tools", ENGINEERING)[1]


def test_the_usage_record_and_the_log_line_say_which_settings_were_in_force(reply, env, use_env, llm, sink, oss,
                                                                          caplog):
    use_env(env)
    operator_file(oss, "groups.json", {SALES: {"上下文": 2}})
    admin(reply, sink, "\\设置 模型 qwen-max")
    ask(reply, sink, "你好")
    [record] = [json.loads(p.read_text()) for p in sorted((oss / "dingbot" / "usage").glob("*/*.json"))
                if json.loads(p.read_text())["outcome"] == "answered"]
    assert record["model"] == "qwen-max"
    assert record["settings"] == {"model": "conversation", "history": "operator"}
    line = [json.loads(r.message) for r in caplog.records if r.message.startswith('{"event":"dingbot.message"')][-1]
    assert line["settings"] == {"model": "conversation", "history": "operator"}


def test_with_per_sender_history_the_settings_are_the_groups(reply, env, use_env, llm, sink):
    use_env({**env, "HISTORY_SCOPE": "sender"})
    admin(reply, sink, "\\设置 模型 qwen-max")
    ask(reply, sink, "你好", sender_staff_id="staff-lisi", sender_nick="李四")
    assert llm.requests[-1]["model"] == "qwen-max"


# --- the rules, item by item ---------------------------------------------------------------------

def config(**env):
    return ReplyConfig.from_env({"CHATGPT_API_KEY": "k", **env})


def test_a_stored_value_that_no_longer_fits_falls_back():
    narrowed = config(ALLOWED_MODELS="qwen-max")
    force = in_force(narrowed, {}, {MODEL: "deepseek-v3"}, None)
    assert force.config.model.model == narrowed.model.model and force.sources[MODEL] == "默认"


def test_knowledge_names_never_leave_the_knowledge_folder():
    for name in ("..", ".index", "a/b", "a\\b", "x" * 101):
        with pytest.raises(Refused):
            check(config(), KNOWLEDGE, name, by_operator=True)
    assert check(config(), KNOWLEDGE, "无", by_operator=False) == ""
    assert in_force(config(), {KNOWLEDGE: "无"}, {}, None).config.knowledge.folder == ""


def test_without_a_knowledge_folder_nothing_is_searched(tmp_path):
    assert retrieve.find(config().knowledge._replace(folder=""), "问题") is None


def test_tools_are_chosen_among_those_the_operator_turned_on():
    offered = config(SEARCH_PROVIDER="searxng", SEARCH_ENDPOINT="https://s.example", TOOLS="read_url,web_search")
    assert check(offered, TOOLS, "web_search、read_url", by_operator=False) == ("web_search", "read_url")
    assert check(offered, TOOLS, ["关"], by_operator=True) == ("off",)
    assert in_force(offered, {}, {TOOLS: ["全部"]}, None).config.tools.enabled == ("read_url", "web_search")
    with pytest.raises(Refused):
        check(config(TOOLS="off"), TOOLS, "read_url", by_operator=True)


@pytest.mark.parametrize("value", ["-1", "1.5", "", True, None, "一千"])
def test_numbers_are_whole_numbers(value):
    with pytest.raises(Refused):
        check(config(), QUOTA, value, by_operator=True)


def test_a_group_may_not_lift_the_operators_daily_limit():
    limited = config(QUOTA_CONVERSATION_DAILY_TOKENS="100")
    with pytest.raises(Refused):
        check(limited, QUOTA, "不限", by_operator=False)
    assert check(limited, QUOTA, "不限", by_operator=True) is None
    assert check(config(), QUOTA, "不限", by_operator=False) is None
