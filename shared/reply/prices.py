"""What a model's tokens cost, estimated for ``\\usage`` and the report, in yuan per million tokens.

List prices of common models as their providers publish them (USD prices at about 7.2 yuan to the
dollar); they change, so ``MODEL_PRICES`` (JSON, ``{"model": [input, output]}`` per million tokens,
in yuan) overrides or adds any model. A model found in neither costs 0 and the report says so.
"""

from __future__ import annotations

import json
from typing import Dict, Mapping, Optional, Tuple

Price = Tuple[float, float]

PRICES: Dict[str, Price] = {
    "gpt-4.1": (14.4, 57.6), "gpt-4.1-mini": (2.88, 11.52), "gpt-4.1-nano": (0.72, 2.88),
    "gpt-4o": (18.0, 72.0), "gpt-4o-mini": (1.08, 4.32),
    "deepseek-chat": (2.0, 8.0), "deepseek-reasoner": (4.0, 16.0),
    "qwen-turbo": (0.3, 0.6), "qwen-plus": (0.8, 2.0), "qwen-max": (2.4, 9.6),
    "glm-4-plus": (5.0, 5.0), "glm-4-flash": (0.0, 0.0), "moonshot-v1-8k": (12.0, 12.0),
}


def parse_prices(text: Optional[str]) -> Dict[str, Price]:
    """``MODEL_PRICES`` as a table; raises ``ValueError`` with what is wrong."""
    if not text:
        return {}
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("is not a JSON object")
    table: Dict[str, Price] = {}
    for model, pair in document.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, (int, float)) and p >= 0
                                                                  for p in pair)):
            raise ValueError(f"{model!r} is not [input, output] yuan per million tokens")
        table[model] = (float(pair[0]), float(pair[1]))
    return table


def price_of(model: str, overrides: Mapping[str, Price]) -> Optional[Price]:
    """Exact name first, then the longest known name the model starts with (``qwen-plus-latest``)."""
    table = {**PRICES, **overrides}
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name)]
    return table[max(prefixes, key=len)] if prefixes else None


def cost_micro(model: str, prompt_tokens: int, completion_tokens: int, overrides: Mapping[str, Price]) -> int:
    """Millionths of a yuan (an integer, so record names can carry it)."""
    price = price_of(model, overrides) if model else None
    if price is None:
        return 0
    return round(prompt_tokens * price[0] + completion_tokens * price[1])
