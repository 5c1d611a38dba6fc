"""``make bench`` stays runnable: every module it loads imports against the code as it is now (a renamed
function once broke it without any test noticing)."""

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"))
def test_every_bench_module_imports(module):
    importlib.import_module(f"bench.{module}")


def test_the_reply_overhead_bench_answers_with_its_instant_model(tmp_path, sink, monkeypatch):
    """The bench's stand-in for the model must offer what the reply path asks of a ChatModel."""
    from bench import reply
    from shared.reply.llm import model

    monkeypatch.setattr(model, "ChatModel", model.ChatModel)  # the bench swaps it: given back after the test
    one = reply.ours(tmp_path, sink.url, 5)
    one(1)
    assert sink.wait_for(1)


def test_the_latency_model_makes_the_fakes_wait_as_the_services_would():
    """The cold-path bench is only as good as its waits: every DingTalk call and the model's first token."""
    import time

    import openai
    import requests

    from bench import latency

    settings = latency.parse_latencies("dingtalk=0.05,first_token=0.3,tokens_per_second=400")
    assert settings == latency.LATENCIES._replace(dingtalk=0.05, first_token=0.3, tokens_per_second=400.0)
    with pytest.raises(ValueError, match="first_tokens"):
        latency.parse_latencies("first_tokens=1")
    llm, sink = latency.fakes(settings)
    try:
        started = time.monotonic()
        requests.post(f"{sink.url}/v1.0/oauth2/accessToken", json={"appKey": sink.app_key,
                                                                     "appSecret": sink.app_secret}, timeout=5)
        assert time.monotonic() - started >= 0.05
        client = openai.OpenAI(base_url=llm.base_url, api_key="k", max_retries=0)
        started = time.monotonic()
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "你好"}], stream=True)
        first = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
        assert time.monotonic() - started >= 0.3 and first.choices[0].delta.content == latency.ANSWER[:8]
        text = first.choices[0].delta.content + "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == latency.ANSWER
    finally:
        llm.stop()
        sink.stop()
