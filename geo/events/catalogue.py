"""The catalogue of event categories (8 classes, 23 sub-classes, 94 items by default).

Modelled on Chishui's 网格服务事项清单: every item has a code, a name, its
sub-class and class, the tier that usually settles it (民事 grid / 村事 village /
政事 township) and, optionally, its own deadline in hours (urgent items).
The file is CSV in UTF-8 (or GB18030) with the columns of :data:`COLUMNS`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from geo.errors import InputError, Problem
from geo.events.flow import TIERS

__all__ = ["COLUMNS", "Category", "default_catalogue_path", "read_catalogue"]

COLUMNS: Final = (
    "code",
    "name",
    "subclass_code",
    "subclass_name",
    "class_code",
    "class_name",
    "default_tier",
    "deadline_hours",
)


@dataclass(frozen=True)
class Category:
    """One item of the catalogue."""

    code: str
    name: str
    subclass_code: str
    subclass_name: str
    class_code: str
    class_name: str
    default_tier: str
    deadline_hours: int | None = None


def default_catalogue_path() -> Path:
    """The catalogue shipped with GridMap (``geo/events/catalogue.csv``)."""
    return Path(__file__).with_name("catalogue.csv")


def read_catalogue(path: str | Path | None = None) -> list[Category]:
    """Read and check a catalogue file (the shipped one by default).

    Raises
    ------
    InputError
        Naming the file, row and field of every problem (missing columns,
        blank or duplicate codes, unknown tiers, bad deadlines).

    Examples
    --------
    >>> cats = read_catalogue()
    >>> len(cats), len({c.subclass_code for c in cats}), len({c.class_code for c in cats})
    (94, 23, 8)
    >>> cats[0].class_name, cats[0].default_tier
    ('矛盾纠纷', 'grid')
    """
    p = Path(path) if path is not None else default_catalogue_path()
    src = p.name
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError.one(str(p), "file not found") from None
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            content = data.decode("gb18030")
        except UnicodeDecodeError:
            raise InputError.one(src, "the file is neither UTF-8 nor GB18030") from None
    reader = csv.DictReader(io.StringIO(content))
    missing = [c for c in COLUMNS[:7] if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError.one(src, f"missing column(s): {', '.join(missing)}")
    out: list[Category] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for row_no, row in enumerate(reader, start=1):
        values = {k: (row.get(k) or "").strip() for k in COLUMNS}
        for col in COLUMNS[:7]:
            if not values[col]:
                problems.append(Problem(src, "is blank", row=row_no, field=col))
        if values["code"] in seen:
            problems.append(
                Problem(
                    src, f"duplicate code {values['code']!r}", row=row_no, field="code"
                )
            )
        seen.add(values["code"])
        if values["default_tier"] and values["default_tier"] not in TIERS:
            problems.append(
                Problem(
                    src,
                    f"unknown tier {values['default_tier']!r}; one of {', '.join(TIERS)}",
                    row=row_no,
                    field="default_tier",
                )
            )
        hours: int | None = None
        if values["deadline_hours"]:
            try:
                hours = int(values["deadline_hours"])
                if hours <= 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    Problem(
                        src,
                        f"{values['deadline_hours']!r} is not a positive whole number of hours",
                        row=row_no,
                        field="deadline_hours",
                    )
                )
        out.append(
            Category(
                values["code"],
                values["name"],
                values["subclass_code"],
                values["subclass_name"],
                values["class_code"],
                values["class_name"],
                values["default_tier"],
                hours,
            )
        )
    if problems:
        raise InputError(problems)
    if not out:
        raise InputError.one(src, "the catalogue has no rows")
    return out
