"""Times in files of events: the vectorised ISO 8601 path and the value-by-value one
agree (zones, offsets, mixed spellings), and bad values are still named."""

from __future__ import annotations

import pandas as pd
import pytest

from geo.errors import InputError
from geo.events.rows import prepare_event_rows


def _times(values: list[str | None], tz: str = "Asia/Shanghai") -> list[pd.Timestamp]:
    n = len(values)
    df = pd.DataFrame(
        {"reported_at": values, "category": ["010101"] * n, "address": ["某地"] * n}
    )
    return prepare_event_rows(df, source="e.csv", timezone=tz)["reported_at"].tolist()


UTC = "2025-03-01 00:30:00+00:00"


@pytest.mark.parametrize(
    "values",
    [
        ["2025-03-01 08:30", "2025-03-01T08:30:00"],  # naive ISO: the file's zone
        ["2025-03-01T08:30:00+08:00", "2025-03-01 08:30+08:00"],  # one offset
        ["2025-03-01T00:30:00Z", "2025-03-01T08:30:00+08:00"],  # mixed offsets
        ["2025-03-01 08:30", "2025-03-01T00:30:00Z"],  # naive and offset mixed
        ["2025/03/01 08:30", "2025-03-01 08:30"],  # not all ISO 8601
    ],
)
def test_every_spelling_gives_the_same_moment(values: list[str]) -> None:
    assert _times(values) == [pd.Timestamp(UTC)] * 2


def test_blank_times_and_bad_ones_are_named() -> None:
    df = pd.DataFrame(
        {
            "reported_at": ["2025-03-01T08:30:00+08:00"] * 3,
            "category": ["010101"] * 3,
            "address": ["某地"] * 3,
            "status": ["settled", "settled", "reported"],
            "settled_at": ["2025-03-02T08:30:00+08:00", "明天", None],
        }
    )
    with pytest.raises(InputError) as exc:
        prepare_event_rows(df, source="e.csv")
    assert "row 2, field 'settled_at'" in str(exc.value)
    ok = prepare_event_rows(
        df.assign(settled_at=["2025-03-02", None, None]).iloc[[0, 2]], source="e.csv"
    )
    assert ok["settled_at"].isna().tolist() == [False, True]
