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
