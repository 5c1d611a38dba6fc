"""The messages sent to the model: the persona, the conversation's recent turns, the question."""

from __future__ import annotations

from typing import Dict, List, Optional


def build_prompt(question: str, history: List[Dict[str, str]], system_prompt: Optional[str]) -> List[Dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + history + [{"role": "user", "content": question}]
