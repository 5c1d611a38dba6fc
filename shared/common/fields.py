"""Typed reads of untrusted JSON: every wrong type, size or shape becomes ``MalformedRequest``.

Both ends of the hand-off read JSON they did not write: the receiver DingTalk's callback, the
reply function its event (from our receiver, the tutorial's, or a test event typed into the FC
console). A value of the wrong type must never travel further as if it were right: ``"no"`` is
not ``True``, ``1e400`` is not a timestamp, a list is not a text.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterator, List, Mapping, Optional

from shared.common.errors import MalformedRequest

MAX_STRING = 4096
MAX_MILLIS = 2 ** 53
MILLIS_DIGITS = len(str(MAX_MILLIS))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object(body: bytes | str, what: str = "body") -> Dict[str, Any]:
    """Parse a JSON object; refuse NaN/Infinity, overflowing numbers and nesting deeper than Python allows."""
    try:
        data = json.loads(body, parse_float=_finite, parse_constant=_no_constants)
    except RecursionError:
        raise MalformedRequest(f"{what} nests too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest(f"{what} is not a JSON object")
    return data


class Fields:
    """One JSON object, read field by field with the type each field must have."""

    def __init__(self, data: Mapping[str, Any], where: str = "") -> None:
        self.data = data
        self.where = where

    def _name(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def string(self, name: str, *, limit: Optional[int] = MAX_STRING, required: bool = False) -> str:
        """A string field ("" when absent or null); ``limit=None`` for text the caller shortens itself."""
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise MalformedRequest(f"{self._name(name)} is missing")
            return ""
        if not isinstance(value, str):
            raise MalformedRequest(f"{self._name(name)} is not a string")
        if limit is not None and len(value) > limit:
            raise MalformedRequest(f"{self._name(name)} is longer than {limit} characters")
        return value

    def boolean(self, name: str) -> bool:
        value = self.data.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise MalformedRequest(f"{self._name(name)} is not true or false")
        return value

    def millis(self, name: str) -> Optional[int]:
        """A millisecond timestamp: a whole, non-negative number, or the same as a string of ASCII digits
        (DingTalk's message-type table lists ``createAt`` as a String; live callbacks send a number)."""
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            if not (value.isascii() and value.isdigit() and len(value) <= MILLIS_DIGITS):
                raise MalformedRequest(f"{self._name(name)} is not a millisecond timestamp")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
                or not 0 <= value <= MAX_MILLIS:
            raise MalformedRequest(f"{self._name(name)} is not a millisecond timestamp")
        return int(value)

    def object(self, name: str) -> Optional["Fields"]:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise MalformedRequest(f"{self._name(name)} is not an object")
        return Fields(value, self._name(name))

    def objects(self, name: str, *, limit: int = 100) -> Iterator["Fields"]:
        """Each object of an array (an absent array is empty)."""
        value = self.data.get(name)
        if value is None:
            return iter(())
        if not isinstance(value, list) or len(value) > limit:
            raise MalformedRequest(f"{self._name(name)} is not an array of at most {limit} items")
        items: List[Fields] = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise MalformedRequest(f"{self._name(name)}[{index}] is not an object")
            items.append(Fields(item, f"{self._name(name)}[{index}]"))
        return iter(items)
