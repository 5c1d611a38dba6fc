"""``TIMEOUT`` is the model's time: on a cold instance the SDK's import and client (most of a second) come before
it starts, so an answer that fits ``TIMEOUT`` is never cut because the instance was cold."""

import pytest

from shared.reply.config import ReplyConfig
from shared.reply.llm import model as model_module
from shared.reply.llm.loop import ModelLoop
from shared.reply.llm.model import ChatModel
from shared.reply.llm.prompt import Prompt


class ColdClock:
    """Monotonic time that jumps when the SDK client is first built, as a slow cold import would make it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def cold(monkeypatch):
    built = model_module._client

    def make(cold_seconds):
        clock = ColdClock()
        built.cache_clear()
        first = []

        def slow_first_build(*args):
            if not first:
                first.append(True)
                clock.now += cold_seconds
            return built(*args)

        monkeypatch.setattr(model_module, "_client", slow_first_build)
        return clock
    yield make
    built.cache_clear()


def config(llm):
    return ReplyConfig.from_env({"CHATGPT_API_KEY": "sk-test-key-0123456789", "ENDPOINT": llm.url, "TIMEOUT": "5",
                                 "LLM_MAX_RETRIES": "0"}).model


def test_a_streamed_answer_is_not_charged_the_cold_start(llm, cold):
    clock = cold(cold_seconds=6.0)  # longer than TIMEOUT itself
    model = ChatModel(config(llm), clock=clock)
    text = "".join(delta.content for delta in model.stream(Prompt("你好")))
    assert text and "超时" not in text and model.deadline >= 1006.0 + 5


def test_a_plain_answer_is_not_charged_the_cold_start(llm, cold):
    clock = cold(cold_seconds=6.0)
    model = ChatModel(config(llm), clock=clock)
    assert model.answer(Prompt("你好")).answer and model.deadline >= 1006.0 + 5


def test_the_tool_loops_deadline_starts_after_the_cold_start(llm, cold):
    clock = cold(cold_seconds=6.0)
    model = ChatModel(config(llm), clock=clock)
    loop = ModelLoop(model, [], max_rounds=1, seconds=5, clock=clock)
    events = list(loop.run(Prompt("你好")))
    assert events and model.deadline >= 1006.0 + 5
