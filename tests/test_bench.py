"""``make bench`` stays runnable: every module it loads imports against the code as it is now (a renamed
function once broke it without any test noticing)."""

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"))
def test_every_bench_module_imports(module):
    importlib.import_module(f"bench.{module}")
