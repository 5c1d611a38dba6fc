"""Chat commands: a message that starts with ``\\`` or ``/`` after any leading whitespace.

Group messages arrive as ``" \\clear"`` (DingTalk keeps the space after the removed @-mention),
which is why the tutorial's ``startswith("\\\\")`` missed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

PREFIXES = ("\\", "/")


@dataclass(frozen=True)
class Command:
    name: str
    argument: str


def parse_command(text: str) -> Optional[Command]:
    text = text.strip()
    if len(text) < 2 or text[0] not in PREFIXES or text[1] in PREFIXES or text[1].isspace():
        return None
    name, _, argument = text[1:].partition(" ")
    return Command(name.lower(), argument.strip())
