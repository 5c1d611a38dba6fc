"""Markdown that reads well on a phone: DingTalk's message markdown shows tables on desktop only.

Each table row becomes a list item that names every cell with its column header, so nothing
is lost on a phone and the desktop still reads it fine. Code blocks (``fences.py``) are left as they are. Cards
render tables, so only the session webhook and the robot OpenAPI get this treatment.
"""

from __future__ import annotations

import re
from typing import List

from shared.reply.dingtalk import fences

SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _cells(line: str) -> List[str]:
    """The cells of ``| a | b |`` (a ``\\|`` inside a cell is a literal bar)."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)]


def _is_row(line: str) -> bool:
    return line.strip().startswith("|") and line.count("|") >= 2


def _as_list(header: List[str], rows: List[List[str]]) -> List[str]:
    items = []
    for row in rows:
        row = row + [""] * (len(header) - len(row))
        named = [f"{name or '—'}：{value or '—'}" for name, value in zip(header, row)]
        named += [value for value in row[len(header):] if value]
        first, rest = named[0], named[1:]
        items.append(f"- **{first}**" + (f"，{'，'.join(rest)}" if rest else ""))
    return items


def tables_as_lists(text: str) -> str:
    lines = text.split("\n")
    code = fences.in_code(lines)
    out: List[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not code[index] and _is_row(line) and index + 1 < len(lines) and SEPARATOR.match(lines[index + 1]):
            header = _cells(line)
            end = index + 2
            rows = []
            while end < len(lines) and not code[end] and _is_row(lines[end]):
                rows.append(_cells(lines[end]))
                end += 1
            out.extend(_as_list(header, rows) if rows else ["- " + "，".join(h for h in header if h)])
            index = end
            continue
        out.append(line)
        index += 1
    return "\n".join(out)
