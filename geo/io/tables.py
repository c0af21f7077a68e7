"""Reading and validating input files (areas, households, people); no database access."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo.crs import (
    STORAGE_CRS,
    bd09_to_wgs84_geoms,
    gcj02_to_wgs84_geoms,
    looks_swapped,
)
from geo.errors import _MAX_LISTED, InputError, Problem
from geo.io.field_limits import (
    ATTR_MAX_CHARS,
    ATTR_NAME_MAX_CHARS,
    NUMBER_LIMITS,
    TEXT_LIMITS,
    fold_whitespace,
    shown,
    text_problems,
)
from geo.io.text_tables import WORKBOOK_SUFFIXES, TableError, decode_text, read_workbook
from geo.vocabulary import AREA_LEVELS, PERSON_ROLES

__all__ = [
    "KINDS",
    "SCHEMAS",
    "InputError",
    "Problem",
    "Schema",
    "prepare",
    "read_table",
]

Kind = Literal["areas", "households", "people"]
ExtraPolicy = Literal["error", "attrs", "ignore"]
KINDS: tuple[str, ...] = ("areas", "households", "people")


@dataclass(frozen=True)
class Schema:
    """Columns a kind of input must or may have."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    geometry: Literal["polygon", "point", None]

    @property
    def known(self) -> tuple[str, ...]:
        return self.required + self.optional


SCHEMAS: dict[str, Schema] = {
    "areas": Schema(("code", "name", "level"), ("parent_code",), "polygon"),
    "households": Schema(
        ("household_id",),
        ("address", "people", "building_id", "unit", "area_code", "weight"),
        "point",
    ),
    "people": Schema(("person_id", "name", "role"), ("work_phone", "area_code"), None),
}

_LON_NAMES = ("lon", "lng", "longitude", "x")
_LAT_NAMES = ("lat", "latitude", "y")


def _fail(source: str, message: str, **kw: Any) -> InputError:
    return InputError([Problem(source, message, **kw)])


def read_table(
    path: str | Path,
    *,
    crs: str | None = None,
    layer: str | None = None,
    sheet: str | None = None,
) -> gpd.GeoDataFrame | pd.DataFrame:
    """Read a vector, CSV or Excel file as it is, with its CRS (or ``crs`` when it has none).

    Supported: GeoJSON, GeoPackage, Shapefile, GeoParquet, FlatGeobuf, CSV
    (``.csv``, ``.txt``, tab-separated ``.tsv``) and Excel workbooks
    (``.xlsx``, ``.xlsm``: the first sheet, or ``sheet``). A CSV or sheet
    with ``lon``/``lat`` (or ``longitude``/``latitude``, ``lng``) columns is
    read as points in EPSG:4326 unless ``crs`` says otherwise; ``x``/``y``
    columns or a ``wkt`` column need ``crs``. A table with none of these is
    returned as a plain DataFrame (people files).

    A CSV's encoding is detected (UTF-8 with or without BOM, UTF-16 with
    BOM, else GB18030/GBK) and recorded in ``frame.attrs["encoding"]``; a
    workbook's sheet name in ``frame.attrs["sheet"]``.

    Raises
    ------
    InputError
        Missing or unreadable file, undecodable text, no such sheet, no rows,
        no or conflicting CRS.
    """
    p = Path(path)
    src = p.name
    if not p.exists():
        raise _fail(str(p), "file not found")
    if p.is_file() and p.stat().st_size == 0:
        raise _fail(src, "the file is empty")
    user_crs = _parse_crs(crs, src) if crs else None
    suffix = p.suffix.lower()
    if sheet is not None and suffix not in WORKBOOK_SUFFIXES:
        raise _fail(
            src, f"sheet={sheet!r} applies to .xlsx workbooks only", params=("sheet",)
        )
    if suffix == ".xls":
        raise _fail(
            src,
            "old Excel .xls workbooks cannot be read; save the sheet as .xlsx "
            "(or as CSV UTF-8) and load that",
        )
    try:
        if suffix in _TEXT_SUFFIXES:
            frame = _read_csv(p, user_crs)
        elif suffix in WORKBOOK_SUFFIXES:
            frame = _read_xlsx(p, user_crs, sheet)
        elif suffix in {".parquet", ".geoparquet"}:
            frame = gpd.read_parquet(p)
        else:
            frame = gpd.read_file(p, layer=layer, engine="pyogrio")
    except InputError:
        raise
    except TableError as exc:
        raise _fail(src, str(exc), params=exc.params) from exc
    except Exception as exc:
        raise _fail(src, f"cannot read the file: {exc}") from exc
    if len(frame) == 0:
        raise _fail(src, "the file has no rows")
    if isinstance(frame, gpd.GeoDataFrame) and suffix not in _TABLE_SUFFIXES:
        if frame.crs is None:
            if user_crs is None:
                raise _fail(
                    src,
                    "the file declares no coordinate reference system; "
                    "pass crs (e.g. crs='EPSG:4326' or crs='EPSG:4490')",
                    params=("crs",),
                )
            frame = frame.set_crs(user_crs)
        elif user_crs is not None and not CRS(frame.crs).equals(user_crs):
            raise _fail(
                src,
                f"crs={user_crs.to_string()!r} conflicts with the file's own CRS "
                f"{CRS(frame.crs).to_string()}; leave crs out or fix the file",
                params=("crs",),
            )
    return frame


def _parse_crs(text: str, src: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise _fail(src, f"unknown CRS {text!r}: {exc}") from exc


_TEXT_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
_TABLE_SUFFIXES = _TEXT_SUFFIXES | WORKBOOK_SUFFIXES


def _read_csv(p: Path, user_crs: CRS | None) -> pd.DataFrame:
    sep = "\t" if p.suffix.lower() == ".tsv" else ","
    text, encoding = decode_text(p.read_bytes())
    df = pd.read_csv(
        io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], sep=sep
    )
    out = _table_points(df, p.name, user_crs)
    out.attrs["encoding"] = encoding
    return out


def _read_xlsx(p: Path, user_crs: CRS | None, sheet: str | None) -> pd.DataFrame:
    df, name = read_workbook(p, sheet)
    out = _table_points(df, p.name, user_crs)
    out.attrs["sheet"] = name
    return out


def _table_points(df: pd.DataFrame, src: str, user_crs: CRS | None) -> pd.DataFrame:
    """A text table with its lon/lat (or x/y, wkt) columns turned into geometry."""
    df.columns = [str(c).strip() for c in df.columns]
    lower = {c.lower(): c for c in df.columns}
    lon = next((lower[n] for n in _LON_NAMES if n in lower), None)
    lat = next((lower[n] for n in _LAT_NAMES if n in lower), None)
    if "wkt" in lower:
        if user_crs is None:
            raise _fail(src, "a CSV with a 'wkt' column needs crs", params=("crs",))
        col = lower["wkt"]
        geoms = []
        for i, text in enumerate(df[col].tolist(), start=1):
            try:
                geoms.append(shapely.from_wkt(text) if isinstance(text, str) else None)
            except shapely.errors.GEOSException as exc:
                raise _fail(src, f"not valid WKT: {exc}", row=i, field=col) from exc
        return gpd.GeoDataFrame(df.drop(columns=[col]), geometry=geoms, crs=user_crs)
    if lon is None and lat is None:
        return df
    if lon is None or lat is None:
        raise _fail(
            src, f"found column '{lon or lat}' but not its partner coordinate column"
        )
    degrees = lon.lower() != "x"
    if user_crs is None and not degrees:
        raise _fail(
            src,
            "x/y columns carry no CRS; pass crs (e.g. crs='EPSG:4549')",
            params=("crs",),
        )
    crs = user_crs or CRS.from_epsg(4326)
    xs = _numbers(df[lon], src, lon)
    ys = _numbers(df[lat], src, lat)
    geoms = shapely.points(xs, ys)
    out = gpd.GeoDataFrame(df.drop(columns=[lon, lat]), geometry=geoms, crs=crs)
    out.attrs["coordinate_columns"] = (lon, lat)
    return out


def _numbers(col: pd.Series, src: str, name: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        raise InputError(
            [
                Problem(
                    src,
                    f"not a number: {shown(col.iloc[i])}",
                    row=int(i) + 1,
                    field=name,
                )
                for i in bad[:_MAX_LISTED]
            ],
            total=len(bad),
        )
    return values.to_numpy(dtype="float64")


@dataclass
class Prepared:
    """A validated input, in storage form (EPSG:4326, canonical columns)."""

    kind: str
    frame: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)


def prepare(
    frame: pd.DataFrame,
    kind: str,
    *,
    source: str = "<input>",
    columns: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    extra: ExtraPolicy = "error",
    from_gcj02: bool = False,
    make_valid: bool = False,
    expected_bounds: tuple[float, float, float, float] | None = None,
    from_bd09: bool = False,
) -> Prepared:
    """Validate ``frame`` as ``kind`` and bring it to storage form.

    Parameters
    ----------
    frame
        What :func:`read_table` returned, or a GeoDataFrame built in a notebook.
    kind
        ``"areas"``, ``"households"`` or ``"people"``.
    columns
        Renames from the file's names to GridMap's, e.g. ``{"household_id": "osm_id"}``.
    defaults
        Values for missing columns, e.g. ``{"level": "village"}``.
    extra
        What to do with unknown columns: ``"error"`` (default), keep them in
        ``attrs`` (``"attrs"``) or drop them (``"ignore"``).
    from_gcj02
        The coordinates are GCJ-02 (Chinese map apps); convert them to WGS84.
    from_bd09
        The coordinates are BD-09 (Baidu maps); convert them (via GCJ-02) to WGS84.
    make_valid
        Repair invalid polygons instead of refusing them.
    expected_bounds
        lon/lat box the data should fall in (the loaded admin areas); used to
        detect swapped latitude/longitude.

    Returns
    -------
    Prepared
        ``frame`` has the canonical columns, ``attrs`` (a JSON string) and,
        for spatial kinds, ``geometry`` in EPSG:4326.

    Every field is checked (see :mod:`geo.io.field_limits`): text no longer than
    its limit (address 500 characters, names 100/200, ids 100, area codes 32,
    phone 40) and free of control characters (tabs and line breaks inside a
    cell become one space), numbers within their range (people 0..1000).

    Raises
    ------
    InputError
        Naming the source, row and field of every problem found.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> hh = gpd.GeoDataFrame({"household_id": ["a", "b"]},
    ...     geometry=shapely.points([118.9, 118.91], [28.95, 28.96]), crs=4326)
    >>> prepare(hh, "households").frame["household_id"].tolist()
    ['a', 'b']
    """
    if kind not in SCHEMAS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if from_gcj02 and from_bd09:
        raise _fail(
            source,
            "from_gcj02 and from_bd09 exclude each other",
            params=("from_gcj02", "from_bd09"),
        )
    schema = SCHEMAS[kind]
    df = frame.copy()
    geom_name = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    _apply_column_map(df, columns or {}, source)
    for name, value in (defaults or {}).items():
        if name not in schema.known:
            raise _fail(
                source,
                f"defaults[{name!r}]: '{name}' is not a {kind} column",
                params=("defaults",),
            )
        if name not in df.columns:
            df[name] = value
        else:
            df[name] = df[name].where(df[name].notna(), value)
    _untruncate(df, schema, geom_name)
    missing = [c for c in schema.required if c not in df.columns]
    if missing:
        raise _fail(
            source,
            f"missing required column(s) {', '.join(map(repr, missing))}; "
            f"the file has {', '.join(map(repr, _data_columns(df, geom_name)))}. "
            "Rename them with columns={NAME: FILE_COLUMN}",
            params=("columns",),
        )
    unknown = [c for c in _data_columns(df, geom_name) if c not in schema.known]
    if unknown and extra == "error":
        raise _fail(
            source,
            f"unknown column(s) {', '.join(map(repr, unknown))}; known {kind} columns "
            f"are {', '.join(schema.known)}. Map them with columns=, keep them as "
            "attributes with extra='attrs', or drop them with extra='ignore'",
            params=("columns", "extra"),
        )
    problems: list[Problem] = []
    if unknown and extra == "attrs":
        _validate_attrs(df[unknown], source, problems)
    attrs = (
        _attrs_json(df[unknown])
        if (unknown and extra == "attrs" and not problems)
        else None
    )
    out = pd.DataFrame(index=df.index)
    for col in schema.known:
        out[col] = df[col] if col in df.columns else None
    out["attrs"] = attrs if attrs is not None else "{}"
    _validate_fields(kind, out, source, problems)
    if schema.geometry is not None:
        if geom_name is None:
            raise _fail(
                source,
                "no geometry: give a spatial file, or lon/lat columns in a CSV",
            )
        geoms = _validate_geometry(
            df[geom_name], schema.geometry, source, problems, make_valid=make_valid
        )
        if not problems:
            geoms = _to_storage(
                gpd.GeoSeries(geoms, crs=df.crs, index=df.index),
                source,
                from_gcj02=from_gcj02,
                from_bd09=from_bd09,
                expected_bounds=expected_bounds,
            )
        out = gpd.GeoDataFrame(out, geometry=geoms, crs=STORAGE_CRS)
    if problems:
        raise InputError(problems[: _MAX_LISTED * 5], total=len(problems))
    out = out.reset_index(drop=True)
    notes = [f"encoding {frame.attrs['encoding']}"] if "encoding" in frame.attrs else []
    if "sheet" in frame.attrs:
        notes.append(f"sheet {frame.attrs['sheet']!r}")
    return Prepared(kind=kind, frame=out, source=source, notes=notes)


def _data_columns(df: pd.DataFrame, geom_name: str | None) -> list[str]:
    return [c for c in df.columns if c != geom_name]


def _apply_column_map(
    df: pd.DataFrame, columns: Mapping[str, str], source: str
) -> None:
    renames: dict[str, str] = {}
    for target, src_col in columns.items():
        if src_col not in df.columns:
            raise _fail(
                source,
                f"columns[{target!r}] = {src_col!r}: the file has no column "
                f"'{src_col}'",
                params=("columns",),
            )
        renames[src_col] = target
    clash = [t for s, t in renames.items() if t in df.columns and t not in renames]
    if clash:
        df.drop(columns=clash, inplace=True)
    df.columns = [renames.get(c, c) for c in df.columns]


def _untruncate(df: pd.DataFrame, schema: Schema, geom_name: str | None) -> None:
    """Restore names a Shapefile cut to 10 characters (``parent_cod`` → ``parent_code``)."""
    renames = {}
    for col in _data_columns(df, geom_name):
        if col in schema.known or len(col) != 10:
            continue
        full = [k for k in schema.known if k.startswith(col) and k not in df.columns]
        if len(full) == 1:
            renames[col] = full[0]
    if renames:
        df.columns = [renames.get(c, c) for c in df.columns]


def _validate_attrs(
    extra_df: pd.DataFrame, source: str, problems: list[Problem]
) -> None:
    """Extra columns kept as ``attrs``: names and text values within limits."""
    for col in extra_df.columns:
        name = str(col)
        for _, message in text_problems([name], ATTR_NAME_MAX_CHARS):
            problems.append(Problem(source, f"column name {message}", field=name[:100]))
        for r, message in text_problems(
            extra_df[col].tolist(), ATTR_MAX_CHARS, allow_breaks=True
        ):
            problems.append(Problem(source, message, row=r, field=name[:100]))


def _attrs_json(extra_df: pd.DataFrame) -> list[str]:
    records = extra_df.astype(object).where(extra_df.notna(), None).to_dict("records")
    return [json.dumps(r, ensure_ascii=False, default=str) for r in records]


def _as_text(series: pd.Series) -> pd.Series:
    """Text values stripped, with None for missing or blank; whole floats lose ``.0``."""
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in {"floating", "mixed-integer-float"}:
        num = pd.to_numeric(series, errors="coerce")
        if bool(((num % 1) == 0).where(num.notna(), True).all()):
            series = num.astype("Int64")
    elif kind not in {"string", "empty", "integer"}:

        def conv(v: Any) -> str | None:
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                return None
            return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

        series = pd.Series([conv(v) for v in series], index=series.index, dtype=object)
    text = series.astype("string").str.strip()
    text = text.mask(text == "")
    out = text.astype(object).to_numpy().copy()
    out[pd.isna(out)] = None
    return pd.Series(out, index=series.index, dtype=object)


def _rows(mask: np.ndarray) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask)]


def _validate_fields(
    kind: str, out: pd.DataFrame, source: str, problems: list[Problem]
) -> None:
    text_cols = {
        "areas": ("code", "name", "level", "parent_code"),
        "households": ("household_id", "address", "building_id", "unit", "area_code"),
        "people": ("person_id", "name", "role", "work_phone", "area_code"),
    }[kind]
    limits = TEXT_LIMITS[kind]
    for col in text_cols:
        out[col] = _as_text(out[col])
        folded = fold_whitespace(out[col].tolist())
        if folded is not None:
            out[col] = pd.Series(folded, index=out.index, dtype=object)
        for r, message in text_problems(out[col].tolist(), limits[col]):
            problems.append(Problem(source, message, row=r, field=col))
    id_col = {"areas": "code", "households": "household_id", "people": "person_id"}[
        kind
    ]
    for col in SCHEMAS[kind].required:
        for r in _rows(out[col].isna().to_numpy()):
            problems.append(Problem(source, "value is missing", row=r, field=col))
    ids = out[id_col]
    dup = ids.duplicated(keep=False) & ids.notna()
    if dup.any():
        groups = pd.Series(
            np.arange(1, len(ids) + 1)[dup.to_numpy()], index=ids[dup].to_numpy()
        )
        for value, rows in groups.groupby(level=0):
            listed = ", ".join(str(r) for r in rows.tolist()[:10])
            problems.append(
                Problem(
                    source,
                    f"duplicate {id_col} {shown(value)} (rows {listed})",
                    row=int(rows.iloc[0]),
                    field=id_col,
                )
            )
    if kind == "areas":
        bad = out["level"].notna() & ~out["level"].isin(AREA_LEVELS)
        for r in _rows(bad.to_numpy()):
            problems.append(
                Problem(
                    source,
                    f"unknown level {shown(out['level'].iloc[r - 1])}; "
                    f"one of {', '.join(AREA_LEVELS)}",
                    row=r,
                    field="level",
                )
            )
        selfp = out["parent_code"].notna() & (out["parent_code"] == out["code"])
        for r in _rows(selfp.to_numpy()):
            problems.append(
                Problem(
                    source,
                    "an area cannot be its own parent",
                    row=r,
                    field="parent_code",
                )
            )
    if kind == "people":
        bad = out["role"].notna() & ~out["role"].isin(PERSON_ROLES)
        for r in _rows(bad.to_numpy()):
            problems.append(
                Problem(
                    source,
                    f"unknown role {shown(out['role'].iloc[r - 1])}; "
                    f"one of {', '.join(PERSON_ROLES)}",
                    row=r,
                    field="role",
                )
            )
    if kind == "households":
        ranges = NUMBER_LIMITS["households"]
        _numeric(
            out,
            "people",
            source,
            problems,
            integer=True,
            default=1,
            limits=ranges["people"],
        )
        _numeric(
            out,
            "weight",
            source,
            problems,
            integer=False,
            default=1.0,
            limits=ranges["weight"],
        )


def _numeric(
    out: pd.DataFrame,
    col: str,
    source: str,
    problems: list[Problem],
    *,
    integer: bool,
    default: float,
    limits: tuple[float, float],
) -> None:
    minimum, maximum = limits
    raw = out[col]
    num = pd.to_numeric(raw, errors="coerce")
    notnum = raw.notna() & num.isna()
    for r in _rows(notnum.to_numpy()):
        problems.append(
            Problem(source, f"not a number: {shown(raw.iloc[r - 1])}", row=r, field=col)
        )
    infinite = ~notnum & num.notna() & ~np.isfinite(num.astype("float64"))
    for r in _rows(infinite.to_numpy()):
        problems.append(
            Problem(
                source,
                f"not a finite number: {shown(raw.iloc[r - 1])}",
                row=r,
                field=col,
            )
        )
    num = num.astype("float64").where(~infinite, np.nan).fillna(default)
    if integer:
        frac = (num % 1 != 0) & ~notnum
        for r in _rows(frac.to_numpy()):
            problems.append(
                Problem(
                    source,
                    f"not a whole number: {shown(raw.iloc[r - 1])}",
                    row=r,
                    field=col,
                )
            )
    low, high = num < minimum, num > maximum
    outside = low | high
    for r in _rows(outside.to_numpy()):
        bound = f"≥ {minimum:g}" if low.iloc[r - 1] else f"≤ {maximum:g}"
        problems.append(
            Problem(
                source,
                f"must be {bound}, got {num.iloc[r - 1]:.15g}",
                row=r,
                field=col,
            )
        )
    # rows with problems make prepare() fail; keep the cast below safe meanwhile
    num = num.where(~outside, default)
    out[col] = num.astype("int64" if integer else "float64")


def _validate_geometry(
    geoms: pd.Series,
    expected: str,
    source: str,
    problems: list[Problem],
    *,
    make_valid: bool,
) -> np.ndarray:
    arr = np.asarray(geoms.values, dtype=object)
    missing = shapely.is_missing(arr) | shapely.is_empty(arr)
    for r in _rows(missing):
        problems.append(
            Problem(source, "geometry is missing or empty", row=r, field="geometry")
        )
    types = shapely.get_type_id(arr)
    if expected == "point":
        wrong = ~missing & (types != 0)
        what = "a Point"
    else:
        wrong = ~missing & ~np.isin(types, (3, 6))
        what = "a Polygon or MultiPolygon"
    for r in _rows(wrong):
        problems.append(
            Problem(
                source,
                f"geometry is a {shapely.get_type_id(arr[r - 1])} type "
                f"({arr[r - 1].geom_type}), expected {what}",
                row=r,
                field="geometry",
            )
        )
    ok = ~missing & ~wrong
    coords_bad = ok & ~np.isfinite(shapely.bounds(arr)).all(axis=1)
    for r in _rows(coords_bad):
        problems.append(
            Problem(
                source, "coordinates are not finite numbers", row=r, field="geometry"
            )
        )
    ok &= ~coords_bad
    if expected == "polygon":
        invalid = ok & ~shapely.is_valid(arr)
        if invalid.any() and not make_valid:
            for r in _rows(invalid):
                problems.append(
                    Problem(
                        source,
                        f"invalid polygon ({shapely.is_valid_reason(arr[r - 1])}); fix it "
                        "or load with make_valid=True",
                        row=r,
                        field="geometry",
                        params=("make_valid",),
                    )
                )
        elif invalid.any():
            repaired = shapely.make_valid(arr[invalid])
            arr = arr.copy()
            arr[invalid] = [_polygonal(g) for g in repaired]
            for r in _rows(invalid):
                if arr[r - 1] is None or arr[r - 1].is_empty:
                    problems.append(
                        Problem(
                            source,
                            "polygon has no area after repair",
                            row=r,
                            field="geometry",
                        )
                    )
        good = ok & ~shapely.is_missing(arr)
        arr[good] = [_as_multipolygon(shapely.orient_polygons(g)) for g in arr[good]]
    return arr


def _polygonal(g: shapely.Geometry) -> shapely.Geometry | None:
    if g.geom_type in {"Polygon", "MultiPolygon"}:
        return g
    parts = [
        p for p in shapely.get_parts(g) if p.geom_type in {"Polygon", "MultiPolygon"}
    ]
    if not parts:
        return None
    return shapely.union_all(parts)


def _as_multipolygon(g: shapely.Geometry) -> shapely.Geometry:
    if g.geom_type == "Polygon":
        return shapely.MultiPolygon([g])
    return g


def _to_storage(
    geoms: gpd.GeoSeries,
    source: str,
    *,
    from_gcj02: bool,
    expected_bounds: tuple[float, float, float, float] | None,
    from_bd09: bool = False,
) -> gpd.GeoSeries:
    crs = CRS(geoms.crs) if geoms.crs is not None else CRS.from_epsg(4326)
    if not crs.equals(CRS.from_epsg(4326)) and not crs.equals(
        CRS.from_user_input("OGC:CRS84")
    ):
        try:
            geoms = geoms.to_crs(STORAGE_CRS)
        except Exception as exc:
            raise _fail(
                source, f"cannot transform from {crs.to_string()}: {exc}"
            ) from exc
    else:
        geoms = geoms.set_crs(STORAGE_CRS, allow_override=True)
    arr = np.asarray(geoms.values, dtype=object)
    if from_gcj02:
        arr = gcj02_to_wgs84_geoms(arr)
    elif from_bd09:
        arr = bd09_to_wgs84_geoms(arr)
    b = shapely.bounds(arr)
    x = np.concatenate([b[:, 0], b[:, 2]])
    y = np.concatenate([b[:, 1], b[:, 3]])
    if looks_swapped(x, y, bounds=expected_bounds):
        over = np.flatnonzero(np.abs(b[:, 1]) > 90)
        first = int(over[0]) if len(over) else 0
        raise _fail(
            source,
            "coordinates look like latitude/longitude in the wrong order (row "
            f"{first + 1}: x={b[first, 0]:.6f}, y={b[first, 1]:.6f}); GridMap expects "
            "longitude first (x) and latitude second (y). Swap the columns, or fix "
            "the file's axis order",
        )
    out_of_range = (np.abs(b[:, [0, 2]]) > 180).any(axis=1) | (
        np.abs(b[:, [1, 3]]) > 90
    ).any(axis=1)
    if out_of_range.any():
        rows = _rows(out_of_range)
        raise InputError(
            [
                Problem(
                    source,
                    f"coordinates outside lon -180..180 / lat -90..90 "
                    f"(x={b[r - 1, 0]:.3f}, y={b[r - 1, 1]:.3f}); wrong crs?",
                    row=r,
                    field="geometry",
                    params=("crs",),
                )
                for r in rows[:_MAX_LISTED]
            ],
            total=len(rows),
        )
    return gpd.GeoSeries(arr, crs=STORAGE_CRS, index=geoms.index)


def iter_problem_rows(problems: Iterable[Problem]) -> list[int]:
    """Row numbers named by ``problems`` (for tests and reports)."""
    return sorted({p.row for p in problems if p.row is not None})
