"""What a stage hands back to the replier: the answer, what happened, and what is left to post."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple


class Answer(NamedTuple):
    """What the model said (what history keeps), what happened, and what still has to be posted as
    messages (None: all of ``text``; "": nothing, the cards showed it). ``asked`` is the question as
    history keeps it, when it differs from the message's text (pictures, files, quotes)."""

    text: str
    outcome: str
    to_post: Optional[str] = None
    records: Tuple[str, ...] = ()  # what a command wrote: taken back when the answer reached nobody
    asked: Optional[str] = None
    plain: bool = False  # echoes the user's text: sent as text, never as markdown
    note: str = ""  # kept in history after the answer: the sources the tools used, one line

    @property
    def posting(self) -> str:
        return self.text if self.to_post is None else self.to_post
