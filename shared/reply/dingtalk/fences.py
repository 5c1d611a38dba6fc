"""Fenced code blocks as CommonMark opens and closes them (spec 0.31, "Fenced code blocks").

A fence is a line of at least three backticks or three tildes; a backtick fence's info string
holds no backtick. The block ends at a line of the same character, at least as long as the
opening one, with nothing but spaces after it, or at the end of the text. So a ```` ``` ```` line
inside a ``~~~`` block (or a four-backtick one) is code, not its end. At the top level this is
CommonMark exactly (``tests/test_fences.py`` checks it against markdown-it-py). Inside a list item
CommonMark counts a fence's indentation from the item's content and ends the fence with the item,
which only a full block parser knows; here any indentation opens and closes a fence, because a
model's answer puts fences in list items far more often than it indents a line by four spaces to
mean code.
"""

from __future__ import annotations

import re
from typing import Iterable, List, NamedTuple, Optional

OPENING = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
CLOSING = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")


class Fence(NamedTuple):
    """An open fence: the line that opened it, and what closes it."""

    marker: str  # the run of backticks or tildes
    info: str  # what followed it on the opening line

    @property
    def opening(self) -> str:
        return self.marker + self.info

    @property
    def closing(self) -> str:
        return self.marker


def opens(line: str) -> Optional[Fence]:
    match = OPENING.match(line)
    if match is None or (match.group(1)[0] == "`" and "`" in match.group(2)):
        return None
    return Fence(match.group(1), match.group(2).rstrip())


def closes(line: str, fence: Fence) -> bool:
    match = CLOSING.match(line)
    return match is not None and match.group(1)[0] == fence.marker[0] and len(match.group(1)) >= len(fence.marker)


def after(lines: Iterable[str], fence: Optional[Fence] = None) -> Optional[Fence]:
    """The fence still open after ``lines``, given the one open before them."""
    for line in lines:
        fence = (None if closes(line, fence) else fence) if fence else opens(line)
    return fence


def in_code(lines: List[str]) -> List[bool]:
    """For each line, whether it belongs to a fenced code block (its fence lines included)."""
    inside, fence = [], None
    for line in lines:
        if fence is None:
            fence = opens(line)
            inside.append(fence is not None)
        else:
            inside.append(True)
            if closes(line, fence):
                fence = None
    return inside
