"""Limits on every loaded field: text length, control characters, number ranges.

Used by :func:`geo.io.prepare`; the checks return ``(row, message)`` pairs
(rows numbered from 1) and :mod:`geo.io` turns them into problems naming the
file, row and field. No database access.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

__all__ = [
    "ATTR_MAX_CHARS",
    "ATTR_NAME_MAX_CHARS",
    "CONTROL_RE2",
    "NUMBER_LIMITS",
    "TEXT_LIMITS",
    "control_message",
    "fold_whitespace",
    "shown",
    "text_problems",
]

#: Longest text (in characters) each field accepts. Area codes are ``varchar(32)``
#: in the database; level and role are one of a few short words.
TEXT_LIMITS: Final[dict[str, dict[str, int]]] = {
    "areas": {"code": 32, "name": 200, "level": 16, "parent_code": 32},
    "households": {
        "household_id": 100,
        "address": 500,
        "building_id": 100,
        "unit": 100,
        "area_code": 32,
    },
    "people": {
        "person_id": 100,
        "name": 100,
        "role": 32,
        "work_phone": 40,
        "area_code": 32,
    },
}

#: Inclusive (minimum, maximum) of numeric fields. ``people`` is an ``integer``
#: column (up to 2,147,483,647) but a household of more than 1000 is a mistake.
NUMBER_LIMITS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "households": {"people": (0, 1000), "weight": (0, 1000)},
}

#: Longest value of an extra column kept in ``attrs`` (``--extra attrs``), and
#: longest extra column name.
ATTR_MAX_CHARS: Final = 1000
ATTR_NAME_MAX_CHARS: Final = 100

# Control characters (C0 except tab/LF/CR, DEL, C1) and lone surrogates: they
# cannot be stored (NUL) or encoded (surrogates), or are invisible garbage.
_BAD_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_OR_BREAK_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same characters as ``_BAD_RE`` as an RE2 pattern (Arrow's regexes; its
#: strings are valid UTF-8, so they hold no lone surrogates).
CONTROL_RE2: Final = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x{9f}]"
# Tabs and line breaks inside a cell (Alt+Enter in Excel) become one space.
_BREAKS_RE = re.compile(r"\s*[\t\r\n]\s*")


def shown(value: Any, limit: int = 40) -> str:
    """``repr`` of a value for a message, cut to about ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    return repr(value)


def fold_whitespace(values: Sequence[Any]) -> list[Any] | None:
    """Values with tabs and line breaks folded to one space; None if none had any."""
    strings = [v for v in values if isinstance(v, str)]
    joined = "".join(strings)
    if "\t" not in joined and "\n" not in joined and "\r" not in joined:
        return None
    return [_BREAKS_RE.sub(" ", v) if isinstance(v, str) else v for v in values]


def text_problems(
    values: Sequence[Any], max_chars: int, *, allow_breaks: bool = False
) -> list[tuple[int, str]]:
    """``(row, message)`` for values that are too long or hold control characters.

    Non-string values are ignored. Tabs and line breaks count as control
    characters unless ``allow_breaks`` (they are folded to spaces in the
    canonical text fields before this check). Fast when everything is fine:
    one regex pass over the joined text and one ``len`` per value.
    """
    out: list[tuple[int, str]] = []
    strings = [(i, v) for i, v in enumerate(values, start=1) if isinstance(v, str)]
    for i, v in strings:
        if len(v) > max_chars:
            out.append((i, f"too long: {len(v)} characters, at most {max_chars}"))
    pattern = _BAD_RE if allow_breaks else _BAD_OR_BREAK_RE
    if pattern.search("".join(v for _, v in strings)) is not None:
        for i, v in strings:
            message = control_message(v, allow_breaks=allow_breaks)
            if message is not None:
                out.append((i, message))
    out.sort(key=lambda p: p[0])
    return out


def control_message(value: str, *, allow_breaks: bool = True) -> str | None:
    """The problem of a text holding a control character, or None."""
    m = (_BAD_RE if allow_breaks else _BAD_OR_BREAK_RE).search(value)
    if m is None:
        return None
    return (
        f"contains a control character (U+{ord(m.group(0)):04X} at "
        f"character {m.start() + 1}); remove it"
    )
