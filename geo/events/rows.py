"""Files of past events (CSV in UTF-8/GB18030, or XLSX): read and check every row.

Nothing here touches the database: :func:`read_event_rows` returns a frame of
typed columns (:data:`ROW_COLUMNS`) that :func:`geo.store.events.import_events`
resolves and stores all-or-nothing. Every problem names the file, the row
(1 = the first data row) and the field.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.errors import InputError, Problem
from geo.events.flow import SETTLED_STATUSES, STATUSES, TIERS
from geo.io.field_limits import CONTROL_RE2, control_message
from geo.io.text_tables import WORKBOOK_SUFFIXES, TableError, decode_text, read_workbook

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "ROW_COLUMNS",
    "prepare_event_rows",
    "read_event_rows",
]

REQUIRED: Final = ("reported_at", "category")
OPTIONAL: Final = (
    "event_id",
    "description",
    "address",
    "lon",
    "lat",
    "reporter",
    "resident_name",
    "resident_phone",
    "tier",
    "status",
    "assignee",
    "deadline",
    "settled_at",
    "closed_at",
    "satisfaction",
    "comment",
)
#: The columns of a prepared frame, in order (``row`` is the file's row number).
ROW_COLUMNS: Final = ("row", *REQUIRED, *OPTIONAL)
_TIMES: Final = ("reported_at", "deadline", "settled_at", "closed_at")
_MAX_TEXT: Final = {"description": 4000, "comment": 2000, "address": 500}


def read_event_rows(
    path: str | Path, *, sheet: str | None = None, timezone: str = "UTC"
) -> pd.DataFrame:
    """Read and check a file of events; see :func:`prepare_event_rows`.

    Raises
    ------
    InputError
        An unreadable file, or every problem of its rows.
    """
    p = Path(path)
    src = p.name
    if not p.is_file():
        raise InputError.one(str(p), "file not found")
    suffix = p.suffix.lower()
    try:
        if suffix in WORKBOOK_SUFFIXES:
            frame, _ = read_workbook(p, sheet)
        elif suffix in {".csv", ".txt", ".tsv"}:
            content, _ = decode_text(p.read_bytes())
            frame = _read_csv(content, "\t" if suffix == ".tsv" else ",")
        else:
            raise TableError("events are read from .csv, .tsv or .xlsx files")
    except TableError as exc:
        raise InputError.one(src, str(exc)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError.one(src, f"cannot read the table: {exc}") from None
    return prepare_event_rows(frame, source=src, timezone=timezone)


def _read_csv(content: str, sep: str) -> pd.DataFrame:
    """The table as text columns (blank cells missing): Arrow's parser (~7x
    faster on a million rows), else — on anything it refuses — pandas' own,
    which then decides and words the error as before."""
    options: dict[str, Any] = {
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
        "sep": sep,
    }
    try:
        return pd.read_csv(io.BytesIO(content.encode()), engine="pyarrow", **options)
    except Exception:  # anything unusual: the C parser below decides
        return pd.read_csv(io.StringIO(content), **options)


def _where(mask: Any) -> list[int]:
    """The 1-based row numbers where ``mask`` holds, in order."""
    if isinstance(mask, pa.ChunkedArray | pa.Array):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return [int(i) + 1 for i in np.flatnonzero(np.asarray(mask, dtype=bool))]


#: Every character ``str.strip()`` removes (Unicode and ASCII whitespace).
_WHITESPACE: Final = "".join(
    c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()
)
_NO_TEXT: Final = pa.scalar(None, pa.large_string())


def _texts(col: pd.Series) -> pa.Array:
    """The column as text, as ``str(v).strip()`` gives it, null when blank: in
    Arrow for text columns (a CSV), value by value for others (a workbook's
    numbers and dates)."""
    if isinstance(col.dtype, pd.StringDtype | pd.ArrowDtype):
        arr = pa.array(col, type=pa.large_string(), from_pandas=True)
    else:
        obj = col.astype(object)
        arr = pa.array(
            [None if m else str(v) for v, m in zip(obj, obj.isna(), strict=True)],
            type=pa.large_string(),
        )
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.utf8_trim(arr, characters=_WHITESPACE)
    return pc.if_else(pc.equal(arr, ""), _NO_TEXT, arr)


#: Every byte but a C0 control other than tab and line breaks, DEL and ``C2``
#: (the UTF-8 lead byte of the C1 controls, and of a few signs such as ·).
_PLAIN_BYTES: Final = bytes(
    b
    for b in range(256)
    if not (b < 0x20 and b not in (0x09, 0x0A, 0x0D)) and b not in (0x7F, 0xC2)
)


def _may_hold_control(values: pa.Array) -> bool:
    """Whether the text's bytes may hold a control character, at C speed (the
    regex then runs only where this says so)."""
    data = values.buffers()[-1]
    return data is not None and data.to_pybytes().translate(None, _PLAIN_BYTES) != b""


def _iso_times(values: pa.Array, timezone: str) -> pd.Series | None:
    """A column of ISO 8601 times parsed at once, when every value is ISO 8601
    and all carry a UTC offset (Arrow), or none, or the same one (the usual
    exports); else None (the caller checks each value and names the bad ones)."""
    given = len(values) - values.null_count
    if not given:
        return None
    utc = pa.timestamp("us", "UTC")
    try:  # Arrow's parser: every value with an offset, or none
        return pd.Series(values.cast(utc).to_pandas())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        local = pc.assume_timezone(values.cast(pa.timestamp("us")), timezone=timezone)
        return pd.Series(local.cast(utc).to_pandas())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    try:
        parsed = pd.to_datetime(pd.Series(values.to_pandas()), format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None  # not all ISO 8601, or mixed offsets: value by value
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        if not pd.api.types.is_datetime64_dtype(parsed.dtype):
            return None
        parsed = parsed.dt.tz_localize(timezone)
    if int(parsed.notna().sum()) != given:
        return None
    return parsed.dt.tz_convert("UTC").reset_index(drop=True)


def _numbers(values: pa.Array) -> np.ndarray:
    """The column as floats (NaN where blank or not a number), at once."""
    try:
        return np.asarray(
            pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=float
        ).copy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        num = pd.to_numeric(pd.Series(values.to_pandas()), errors="coerce")
        return num.astype(float).to_numpy(copy=True)


def prepare_event_rows(
    frame: pd.DataFrame, *, source: str, timezone: str = "UTC"
) -> pd.DataFrame:
    """Check a table of events and type its columns (:data:`ROW_COLUMNS`).

    ``reported_at`` and ``category`` are required; each row needs an
    ``address`` or ``lon``/``lat``. Times without a zone are taken in
    ``timezone``. Settled statuses need ``settled_at``; ``satisfaction`` is
    1–5. Unknown columns are refused.

    Raises
    ------
    InputError
        Listing every problem with its row and field; nothing is returned.

    Examples
    --------
    >>> df = pd.DataFrame({"reported_at": ["2025-03-01 08:30"], "category": ["010101"],
    ...                    "address": ["高家镇湖仁村1组1号"]})
    >>> prepare_event_rows(df, source="e.csv", timezone="Asia/Shanghai")["reported_at"][0]
    Timestamp('2025-03-01 00:30:00+0000', tz='UTC')
    >>> prepare_event_rows(df.assign(category=[None]), source="e.csv")
    Traceback (most recent call last):
    ...
    geo.errors.InputError: e.csv row 1, field 'category': is required
    """
    src = source
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    unknown = [c for c in frame.columns if c not in ROW_COLUMNS or c == "row"]
    missing = [c for c in REQUIRED if c not in frame.columns]
    problems: list[Problem] = []
    if unknown:
        problems.append(
            Problem(
                src,
                f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                + ", ".join(ROW_COLUMNS[1:]),
            )
        )
    if missing:
        problems.append(Problem(src, f"missing column(s): {', '.join(missing)}"))
    if ("lon" in frame.columns) != ("lat" in frame.columns):
        problems.append(Problem(src, "lon and lat come together"))
    if problems:
        raise InputError(problems)
    if len(frame) == 0:
        raise InputError.one(src, "the file has no rows")
    n = len(frame)
    cols: dict[str, pa.Array] = {
        c: _texts(frame[c]) if c in frame.columns else pa.nulls(n, pa.large_string())
        for c in ROW_COLUMNS[1:]
    }

    def value(c: str, row: int) -> Any:
        return cols[c][row - 1].as_py()

    out: dict[str, Any] = {"row": np.arange(1, n + 1)}
    for c in ("category", "reported_at"):
        for i in _where(pc.is_null(cols[c])):
            problems.append(Problem(src, "is required", row=i, field=c))
    for c in _TIMES:
        fast = _iso_times(cols[c], timezone)
        if fast is not None:
            out[c] = fast
            continue
        values = []
        for i, v in enumerate(cols[c].to_pylist(), start=1):
            if v is None:
                values.append(pd.NaT)
                continue
            try:
                t = pd.Timestamp(v)
                if pd.isna(t):
                    raise ValueError
                t = t.tz_localize(timezone) if t.tzinfo is None else t
                values.append(t.tz_convert("UTC"))
            except (ValueError, TypeError):
                problems.append(
                    Problem(
                        src,
                        f"{v!r} is not a date and time (e.g. 2025-03-01 08:30)",
                        row=i,
                        field=c,
                    )
                )
                values.append(pd.NaT)
        out[c] = pd.Series(pd.to_datetime(values, utc=True))
    for c in ("lon", "lat"):
        lo, hi = (-180, 180) if c == "lon" else (-90, 90)
        # numbers parsed at once; what that refuses is checked value by value
        # (as float() would: the same values pass and fail)
        num = _numbers(cols[c])
        ok = np.isfinite(num) & (num >= lo) & (num <= hi)
        given = pc.is_valid(cols[c]).to_numpy(zero_copy_only=False)
        for i in _where(given & ~ok):
            v = value(c, i)
            try:
                x = float(v)
                if not (math.isfinite(x) and lo <= x <= hi):
                    raise ValueError
                num[i - 1] = x
            except ValueError:
                problems.append(
                    Problem(src, f"{v!r} is not a number in {lo}..{hi}", row=i, field=c)
                )
                num[i - 1] = math.nan
        out[c] = num
    sat_num = _numbers(cols["satisfaction"])
    sat_ok = np.isin(sat_num, (1.0, 2.0, 3.0, 4.0, 5.0))
    sat_arr = np.where(sat_ok, sat_num, np.nan)
    sat_given = pc.is_valid(cols["satisfaction"]).to_numpy(zero_copy_only=False)
    for i in _where(sat_given & ~sat_ok):
        v = value("satisfaction", i)
        try:
            k = int(float(v))
            if k != float(v) or not 1 <= k <= 5:
                raise ValueError
            sat_arr[i - 1] = k
        except ValueError:
            problems.append(
                Problem(src, f"{v!r} is not a rating 1-5", row=i, field="satisfaction")
            )
    out["satisfaction"] = pd.array(
        pd.Series(sat_arr).round().astype("Int64"), dtype="Int64"
    )
    has_sat = ~np.isnan(sat_arr)
    for c, known in (("tier", TIERS), ("status", STATUSES)):
        known_set = pa.array(known, type=pa.large_string())
        unknown_value = pc.and_(
            pc.is_valid(cols[c]), pc.invert(pc.is_in(cols[c], value_set=known_set))
        )
        for i in _where(unknown_value):
            v = value(c, i)
            problems.append(
                Problem(
                    src,
                    f"unknown {c} {v!r}; one of {', '.join(known)}",
                    row=i,
                    field=c,
                )
            )
    for c, limit in _MAX_TEXT.items():
        for i in _where(pc.greater(pc.utf8_length(cols[c]), limit)):
            problems.append(
                Problem(src, f"longer than {limit} characters", row=i, field=c)
            )
    # a NUL cannot be stored, other control characters are invisible garbage
    # (tabs and line breaks inside a cell are kept)
    for c in ROW_COLUMNS[1:]:
        if not _may_hold_control(cols[c]):
            continue
        for i in _where(pc.match_substring_regex(cols[c], CONTROL_RE2)):
            message = control_message(value(c, i))
            if message is not None:
                problems.append(Problem(src, message, row=i, field=c))
    no_settled_at = pd.isna(out["settled_at"]).to_numpy()
    lon, lat = np.asarray(out["lon"]), np.asarray(out["lat"])
    no_address = pc.is_null(cols["address"]).to_numpy(zero_copy_only=False)
    status_a = pc.fill_null(cols["status"], "reported")
    settled_status = pc.is_in(
        status_a, value_set=pa.array(SETTLED_STATUSES, type=pa.large_string())
    ).to_numpy(zero_copy_only=False)
    rated_status = pc.is_in(
        status_a, value_set=pa.array(("evaluated", "closed"), type=pa.large_string())
    ).to_numpy(zero_copy_only=False)
    has_point = ~np.isnan(lon) & ~np.isnan(lat)
    suspects = (
        (no_address & ~has_point)
        | (settled_status & no_settled_at)
        | (has_sat & ~rated_status)
    )
    for row in _where(suspects):
        i = row - 1
        if no_address[i] and not has_point[i]:
            if math.isnan(lon[i]) != math.isnan(lat[i]):
                problems.append(
                    Problem(src, "lon and lat come together", row=row, field="lon")
                )
            else:
                problems.append(
                    Problem(src, "give an address or lon/lat", row=row, field="address")
                )
        status = status_a[i].as_py()
        if settled_status[i] and no_settled_at[i]:
            problems.append(
                Problem(
                    src,
                    f"a {status} event needs settled_at",
                    row=row,
                    field="settled_at",
                )
            )
        if has_sat[i] and not rated_status[i]:
            problems.append(
                Problem(
                    src,
                    f"only an evaluated or closed event has a satisfaction (this one is {status})",
                    row=row,
                    field="satisfaction",
                )
            )
    ids = cols["event_id"]
    if pc.count_distinct(ids, mode="only_valid").as_py() != len(ids) - ids.null_count:
        seen: set[str] = set()
        for i, v in enumerate(ids.to_pylist(), start=1):
            if v is not None and v in seen:
                problems.append(
                    Problem(src, f"duplicate event_id {v!r}", row=i, field="event_id")
                )
            if v is not None:
                seen.add(v)
    if problems:
        raise InputError(problems)
    cols["status"] = status_a
    for c in ROW_COLUMNS[1:]:
        if c not in out:
            out[c] = pd.Series(
                cols[c], dtype=pd.StringDtype("pyarrow", na_value=np.nan)
            )
    return pd.DataFrame({c: out[c] for c in ROW_COLUMNS})
