"""Every row check of an events file, in the order the problems are reported (the
checks are vectorised for 1M-row imports; the problems must stay exactly as they
were: file, row, field, message, order)."""

from __future__ import annotations

import pandas as pd
import pytest

from geo.errors import InputError
from geo.events.rows import prepare_event_rows

TRICKY = pd.DataFrame(
    {
        "event_id": ["A", "B", "A", None, "C", "D", "E", "F"],
        "reported_at": ["2025-03-01 08:30", None, *["2025-03-01"] * 6],
        "category": ["010101", "010101", None, *["010101"] * 5],
        "address": [
            None,
            "村1组1号",
            "村1组2号",
            None,
            "x" * 501,
            "村1组3号",
            None,
            "村1组4号",
        ],
        "lon": ["181", None, "1_000", "120.1", None, "abc", None, "1e2"],
        "lat": ["30", None, "30", None, None, "30", None, "1e1"],
        "status": [
            "reported",
            "settled",
            "lost",
            "evaluated",
            "closed",
            "reported",
            None,
            "evaluated",
        ],
        "tier": [None, "sky", None, None, "grid", None, None, None],
        "settled_at": [
            None,
            None,
            None,
            "2025-03-02",
            "2025-03-02",
            None,
            None,
            "2025-03-02",
        ],
        "satisfaction": [None, None, "4.5", "0", "x", "3", None, "4.0"],
    }
)


def test_every_problem_in_order() -> None:
    with pytest.raises(InputError) as info:
        prepare_event_rows(TRICKY, source="f.csv")
    got = [(p.source, p.row, p.field) for p in info.value.problems]
    assert got == [
        ("f.csv", r, f)
        for r, f in [
            (3, "category"),
            (2, "reported_at"),
            (1, "lon"),
            (3, "lon"),  # float() reads 1_000: out of range
            (6, "lon"),
            (3, "satisfaction"),
            (4, "satisfaction"),
            (5, "satisfaction"),
            (2, "tier"),
            (3, "status"),
            (5, "address"),
            (1, "lon"),  # 181 refused: no point and no address
            (2, "settled_at"),
            (4, "lon"),  # lon without lat
            (6, "satisfaction"),  # rated but only reported
            (7, "address"),
            (3, "event_id"),
        ]
    ]
    text = str(info.value)
    assert "'1_000' is not a number in -180..180" in text
    assert "'4.5' is not a rating 1-5" in text
    assert "unknown tier 'sky'" in text and "longer than 500 characters" in text


def test_good_rows_are_typed() -> None:
    good = TRICKY.iloc[[7]].assign(event_id="G", lat="10")
    df = prepare_event_rows(good, source="f.csv")
    assert (df["lon"][0], df["lat"][0], df["satisfaction"][0]) == (100.0, 10.0, 4)
    assert str(df["satisfaction"].dtype) == "Int64"
    assert df["status"][0] == "evaluated" and df["row"][0] == 1


def test_control_characters_are_named_and_line_breaks_kept() -> None:
    # a NUL cannot be stored (the import's COPY failed on it with a database
    # error); a bell is invisible garbage; a line break in a description is text
    df = pd.DataFrame(
        {
            "reported_at": ["2025-03-01"] * 3,
            "category": ["010101"] * 3,
            "address": ["村1组1号", "村1组\x002号", "村1组3号"],
            "description": ["两行\n说明", "好", "响\x07铃"],
        }
    )
    with pytest.raises(InputError) as info:
        prepare_event_rows(df, source="f.csv")
    got = [(p.row, p.field) for p in info.value.problems]
    assert got == [(3, "description"), (2, "address")]  # by column, then row
    assert "U+0000 at character 4" in str(info.value)
    ok = prepare_event_rows(df.iloc[[0]], source="f.csv")
    assert ok["description"][0] == "两行\n说明"
