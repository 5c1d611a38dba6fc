import pytest

from shared.common.errors import ConfigError
from shared.receiver.config import ReceiverConfig
from shared.reply.config import ReplyConfig
from shared.reply.config.model import llm_base_url


def test_missing_app_secret_names_the_variable():
    with pytest.raises(ConfigError) as error:
        ReceiverConfig.from_env({"CHATGPT_FUNCTION": "f"})
    assert error.value.variable == "DINGTALK_APP_SECRET"


def test_blank_app_secret_counts_as_missing():
    with pytest.raises(ConfigError, match="DINGTALK_APP_SECRET"):
        ReceiverConfig.from_env({"DINGTALK_APP_SECRET": "   "})


def test_tutorial_receiver_settings_keep_their_meaning():
    config = ReceiverConfig.from_env({"DINGTALK_APP_SECRET": "s",
                                      "ENDPOINT": "123.cn-hangzhou-internal.fc.aliyuncs.com",
                                      "SERVICE_NAME": "dingtalk", "CHATGPT_FUNCTION": "reply", "VERBOSE": "25"})
    assert config.fc_endpoint == "https://123.cn-hangzhou-internal.fc.aliyuncs.com"
    assert config.uses_fc2_api and config.reply_function == "reply" and config.log_level == 25


@pytest.mark.parametrize("value, expected", [("host.example.com", "https://host.example.com"),
                                             ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
                                             ("https://a.b:8443", "https://a.b:8443")])
def test_fc_endpoint_accepts_bare_hosts_and_urls(value, expected):
    assert ReceiverConfig.from_env({"DINGTALK_APP_SECRET": "s", "ENDPOINT": value}).fc_endpoint == expected


@pytest.mark.parametrize("value, expected", [("https://api.openai.com", "https://api.openai.com/v1"),
                                             ("https://api.deepseek.com/", "https://api.deepseek.com/v1"),
                                             ("https://dashscope.aliyuncs.com/compatible-mode/v1",
                                              "https://dashscope.aliyuncs.com/compatible-mode/v1"),
                                             ("https://api.openai.com/v1/chat/completions",
                                              "https://api.openai.com/v1"),
                                             ("https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions/",
                                              "https://dashscope.aliyuncs.com/compatible-mode/v1")])
def test_llm_endpoint_is_a_service_root_or_a_full_base_url(value, expected):
    assert llm_base_url(value) == expected


def test_openai_endpoint_uses_chatgpt_api_key():
    config = ReplyConfig.from_env({"CHATGPT_API_KEY": "sk-openai", "USER_API_KEY": "other"})
    assert config.model.api_key == "sk-openai" and config.model.base_url == "https://api.openai.com/v1"


def test_other_endpoints_use_user_api_key_when_set():
    config = ReplyConfig.from_env({"CHATGPT_API_KEY": "sk-openai", "USER_API_KEY": "sk-deepseek",
                                   "ENDPOINT": "https://api.deepseek.com"})
    assert config.model.api_key == "sk-deepseek"


def test_missing_api_key_names_the_variable():
    with pytest.raises(ConfigError) as error:
        ReplyConfig.from_env({"ENDPOINT": "https://api.openai.com"})
    assert error.value.variable == "CHATGPT_API_KEY"


@pytest.mark.parametrize("name, value", [("HISTORY_LENGTH", "five"), ("HISTORY_LENGTH", "-1"), ("TIMEOUT", "0"),
                                         ("TEMPERATURE", "3"), ("HISTORY_SCOPE", "everyone"), ("VERBOSE", "loud")])
def test_malformed_numbers_and_choices_name_the_variable(name, value):
    with pytest.raises(ConfigError) as error:
        ReplyConfig.from_env({"CHATGPT_API_KEY": "k", name: value})
    assert error.value.variable == name


def test_reply_defaults_match_the_tutorial():
    config = ReplyConfig.from_env({"CHATGPT_API_KEY": "k"})
    assert (config.conversation.history_length, config.model.timeout_seconds, config.storage.mount_point) == (
        5, 55.0, "/mnt/oss")
    assert config.delivery.webhook_hosts == ("oapi.dingtalk.com", "api.dingtalk.com")
    assert config.model.temperature is None and not config.conversation.per_sender


BASE = {"CHATGPT_API_KEY": "sk-test"}


@pytest.mark.parametrize("name", ["Asia/Shanghai", "America/New_York", "UTC", "Europe/Berlin", "PRC"])
def test_a_real_time_zone_is_accepted(name):
    assert ReplyConfig.from_env({**BASE, "TZ": name}).timezone == name


@pytest.mark.parametrize("name", ["Asia/Shangai", "asia/shanghai ", "Beijing", "../../etc/passwd", "UTC+8"])
def test_a_misspelt_time_zone_is_a_startup_error_naming_tz(name):
    with pytest.raises(ConfigError) as error:
        ReplyConfig.from_env({**BASE, "TZ": name})
    assert error.value.variable == "TZ" and name.strip() in error.value.hint and "时区" in error.value.hint


def test_without_a_time_zone_database_only_the_zones_that_need_none_work(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv("PYTHONTZPATH", str(tmp_path))
    if importlib.util.find_spec("tzdata") is None:
        with pytest.raises(ConfigError, match="TZ"):
            ReplyConfig.from_env({**BASE, "TZ": "Europe/Berlin"})
    assert ReplyConfig.from_env({**BASE, "TZ": "Asia/Shanghai"}).timezone == "Asia/Shanghai"
    assert ReplyConfig.from_env({**BASE, "TZ": "UTC"}).timezone == "UTC"
