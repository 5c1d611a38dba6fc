"""Server-sent events as the WHATWG HTML standard parses them (§9.2.6 "Interpreting an event stream").

Both application platforms stream their answers as SSE over a POST, which no browser
``EventSource`` does, and ``requests.iter_lines`` splits a CR LF that falls across two chunks
into an empty line, i.e. a spurious event. So this reads the bytes itself: lines end in CR LF, LF
or CR; a line starting with ``:`` is a comment (DashScope puts ``:HTTP_STATUS/200`` there); a
field's value loses one leading space; ``data`` lines join with LF; a blank line dispatches.
"""

from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple


class ServerEvent(NamedTuple):
    event: str  # "message" when the stream names none
    data: str
    id: str = ""
    comments: tuple = ()  # the comment lines before it, without the colon


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 lines of a byte stream, whatever its chunking (a CR LF may arrive split)."""
    pending, after_cr = b"", False
    for chunk in chunks:
        if not chunk:
            continue
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        pending += chunk
        *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for line in complete:
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


def events(chunks: Iterable[bytes]) -> Iterator[ServerEvent]:
    name, data, last_id, comments = "", [], "", []  # type: str, List[str], str, List[str]
    for line in lines(chunks):
        if not line:
            if data:
                yield ServerEvent(name or "message", "\n".join(data), last_id, tuple(comments))
            name, data, comments = "", [], []
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            last_id = value
    # At the end of the stream an event without its blank line is discarded, as the standard says.
