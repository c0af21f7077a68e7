"""Files as offices send them (issue 15, items 9 and 10).

* Every field has a length/range check: a NUL byte, ``people=99999999999``, a
  10 MB address or a 10 MB name give a message naming file, row and field,
  exit code 2, no traceback, and leave the tables unchanged.
* CSV in GB18030/GBK, UTF-8 with or without BOM; ``.xlsx`` workbooks (first
  sheet or ``--sheet``) with the same validation and row numbers as CSV;
  coordinates from Baidu maps with ``--from-bd09``.

Through ``gridmap load`` (its own database) and through the library.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from samples import sample_county
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from geo.crs import wgs84_to_bd09
from geo.io import InputError, prepare, read_table
from geo.sample import SampleCounty
from geo.store.db import make_engine

# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(300, seed=5)


@pytest.fixture(scope="module")
def env(make_database, county: SampleCounty, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A database of its own with the county's areas loaded."""
    e = {"GRIDMAP_DATABASE_URL": make_database("files")}
    areas = tmp_path_factory.mktemp("areas") / "areas.geojson"
    county.areas.to_file(areas, engine="pyogrio")
    res = _run(e, "load", "areas", str(areas))
    assert res.exit_code == 0, res.output
    return e


@pytest.fixture(scope="module")
def households(county: SampleCounty) -> pd.DataFrame:
    """The county's households as a text table with lon/lat columns (Chinese addresses)."""
    hh = county.households
    df = pd.DataFrame(hh.drop(columns=hh.geometry.name))
    df["lon"], df["lat"] = hh.geometry.x, hh.geometry.y
    return df


def _run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def _flat(s: str) -> str:
    """Terminal output with Rich's line wrapping undone."""
    return " ".join(s.split())


def _state(env: dict[str, str]) -> tuple[object, ...]:
    """A fingerprint of every loaded row (households and people)."""
    eng = make_engine(env["GRIDMAP_DATABASE_URL"])
    try:
        with eng.connect() as c:
            return tuple(
                c.execute(
                    text(
                        "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', "
                        f"{cols}), ',' ORDER BY external_id), '')) FROM {table}"
                    )
                ).one()
                for table, cols in (
                    (
                        "households",
                        "external_id, address, address_key, people, weight, "
                        "ST_AsText(geom), attrs",
                    ),
                    ("people", "external_id, name, role, work_phone, attrs"),
                )
            )
    finally:
        eng.dispose()


def _stored_points(env: dict[str, str]) -> pd.DataFrame:
    eng = make_engine(env["GRIDMAP_DATABASE_URL"])
    try:
        with eng.connect() as c:
            return pd.read_sql(
                text(
                    "SELECT external_id AS household_id, address, ST_X(geom) AS lon, "
                    "ST_Y(geom) AS lat FROM households ORDER BY external_id"
                ),
                c,
            )
    finally:
        eng.dispose()


def _assert_refused(
    res, env: dict[str, str], before: tuple[object, ...], *needles: str
) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    err = _flat(res.stderr)
    assert "nothing was written" in err
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    for needle in needles:
        assert needle in err, err[:2000]
    assert len(res.stderr) < 5000  # a 10 MB value is not echoed back
    assert _state(env) == before


# -- item 9: every field checked -----------------------------------------------

TEN_MB = "高" * (10 * 1024 * 1024 // 3)

BAD_HOUSEHOLDS = [
    pytest.param(
        {"address": "衢江区樟潭街道\x00沈家路8号"},
        "address",
        "contains a control character (U+0000",
        id="nul-in-address",
    ),
    pytest.param(
        {"people": "99999999999"}, "people", "must be ≤ 1000", id="people-too-big"
    ),
    pytest.param({"people": "1001"}, "people", "must be ≤ 1000", id="people-over-1000"),
    pytest.param({"people": "1e400"}, "people", "not a finite number", id="people-inf"),
    pytest.param({"weight": "inf"}, "weight", "not a finite number", id="weight-inf"),
    pytest.param(
        {"address": TEN_MB},
        "address",
        "too long: 3495253 characters",
        id="10mb-address",
    ),
    pytest.param(
        {"address": "沈家路" * 167}, "address", "at most 500", id="501-char-address"
    ),
    pytest.param(
        {"household_id": "h" * 101}, "household_id", "at most 100", id="long-id"
    ),
    pytest.param(
        {"building_id": "b\x07"}, "building_id", "U+0007", id="bell-in-building"
    ),
    pytest.param(
        {"area_code": "3" * 33}, "area_code", "at most 32", id="long-area-code"
    ),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_HOUSEHOLDS)
def test_cli_refuses_bad_household_field(
    env: dict[str, str],
    households: pd.DataFrame,
    tmp_path: Path,
    change: dict[str, str],
    field: str,
    message: str,
) -> None:
    df = households.head(5).astype(str)
    for col, value in change.items():
        df.loc[2, col] = value
    path = tmp_path / "hh.csv"
    df.to_csv(path, index=False, encoding="utf-8")
    before = _state(env)
    res = _run(env, "load", "households", str(path))
    _assert_refused(res, env, before, f"hh.csv row 3, field '{field}'", message)


@pytest.mark.parametrize(("change", "field", "message"), BAD_HOUSEHOLDS)
def test_library_refuses_bad_household_field(
    households: pd.DataFrame,
    tmp_path: Path,
    change: dict[str, str],
    field: str,
    message: str,
) -> None:
    df = households.head(5).astype(str)
    for col, value in change.items():
        df.loc[2, col] = value
    path = tmp_path / "hh.csv"
    df.to_csv(path, index=False, encoding="utf-8")
    with pytest.raises(InputError) as err:
        prepare(read_table(path), "households", source="hh.csv")
    assert [(p.row, p.field) for p in err.value.problems] == [(3, field)]
    assert message in err.value.problems[0].message


BAD_PEOPLE = [
    pytest.param({"name": TEN_MB}, "name", "too long", id="10mb-name"),
    pytest.param({"name": "张" * 101}, "name", "at most 100", id="101-char-name"),
    pytest.param({"name": "张\x00三"}, "name", "U+0000", id="nul-in-name"),
    pytest.param({"work_phone": "1" * 41}, "work_phone", "at most 40", id="long-phone"),
    pytest.param({"person_id": "\x1bP1"}, "person_id", "U+001B", id="escape-in-id"),
    pytest.param({"role": "x" * 5000}, "role", "too long", id="long-role"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_PEOPLE)
def test_cli_refuses_bad_person_field(
    env: dict[str, str],
    county: SampleCounty,
    tmp_path: Path,
    change: dict[str, str],
    field: str,
    message: str,
) -> None:
    df = county.people.head(4).astype(str)
    for col, value in change.items():
        df.loc[1, col] = value
    path = tmp_path / "people.csv"
    df.to_csv(path, index=False, encoding="utf-8")
    before = _state(env)
    res = _run(env, "load", "people", str(path))
    _assert_refused(res, env, before, f"people.csv row 2, field '{field}'", message)


def test_library_refuses_10_mb_name(county: SampleCounty) -> None:
    df = county.people.head(3).astype(object)
    df.loc[0, "name"] = TEN_MB
    with pytest.raises(InputError) as err:
        prepare(df, "people", source="people")
    (problem,) = err.value.problems
    assert (problem.row, problem.field) == (1, "name")
    assert len(str(err.value)) < 300


def test_nul_in_an_extra_column_kept_as_attrs(
    env: dict[str, str], households: pd.DataFrame, tmp_path: Path
) -> None:
    df = households.head(4).astype(str)
    df["备注"] = ["ok", "a\x00b", "ok", "c"]
    path = tmp_path / "hh_attrs.csv"
    df.to_csv(path, index=False, encoding="utf-8")
    before = _state(env)
    res = _run(env, "load", "households", str(path), "--extra", "attrs")
    _assert_refused(res, env, before, "hh_attrs.csv row 2, field '备注'", "U+0000")


def test_line_breaks_inside_a_cell_become_one_space(households: pd.DataFrame) -> None:
    df = households.head(3).astype(object)
    df.loc[0, "address"] = "浙江省衢州市衢江区\r\n樟潭街道\t沈家路8号"
    frame = gpd.GeoDataFrame(
        df.drop(columns=["lon", "lat"]),
        geometry=shapely.points(df["lon"].astype(float), df["lat"].astype(float)),
        crs=4326,
    )
    prepared = prepare(frame, "households")
    assert prepared.frame["address"].iloc[0] == "浙江省衢州市衢江区 樟潭街道 沈家路8号"


def test_limits_at_the_edge_are_accepted(
    households: pd.DataFrame, tmp_path: Path
) -> None:
    df = households.head(3).astype(str)
    df.loc[0, "address"] = "沈" * 500
    df.loc[0, "people"] = "1000"
    df.loc[1, "people"] = "0"
    df.loc[2, "household_id"] = "h" * 100
    path = tmp_path / "edge.csv"
    df.to_csv(path, index=False, encoding="utf-8")
    out = prepare(read_table(path), "households", source="edge.csv").frame
    assert out["people"].tolist()[:2] == [1000, 0]


# -- item 10: encodings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("gb18030", "GB18030"), ("gbk", "GB18030"), ("utf-8-sig", "UTF-8 with BOM")],
)
def test_encodings_load_like_utf8(
    env: dict[str, str],
    households: pd.DataFrame,
    tmp_path: Path,
    encoding: str,
    name: str,
) -> None:
    utf8 = tmp_path / "utf8.csv"
    households.to_csv(utf8, index=False, encoding="utf-8")
    other = tmp_path / f"{encoding}.csv"
    households.to_csv(other, index=False, encoding=encoding)
    assert utf8.read_bytes() != other.read_bytes()

    # library: the same prepared frame, and the encoding is said
    a = prepare(read_table(utf8), "households", source="x")
    b = prepare(read_table(other), "households", source="x")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert read_table(utf8).attrs["encoding"] == "UTF-8"
    assert read_table(other).attrs["encoding"] == name
    assert b.notes == [f"encoding {name}"]

    # CLI: loading the other encoding after UTF-8 changes nothing
    res = _run(env, "load", "households", str(utf8))
    assert res.exit_code == 0, res.output
    assert "utf8.csv: read with encoding UTF-8" in _flat(res.stdout)
    stored = _stored_points(env)
    res = _run(env, "load", "households", str(other))
    assert res.exit_code == 0, res.output
    out = _flat(res.stdout)
    assert f"read with encoding {name}" in out
    assert f"0 new, 0 updated, {len(households)} unchanged" in out
    pd.testing.assert_frame_equal(_stored_points(env), stored)
    want = dict(zip(households["household_id"], households["address"], strict=True))
    got = dict(zip(stored["household_id"], stored["address"], strict=True))
    assert {k: got[k] for k in want} == want


def test_gbk_csv_failed_before_with_utf8_error(
    households: pd.DataFrame, tmp_path: Path
) -> None:
    # What offices send: Excel's "CSV" on Chinese Windows is GBK.
    path = tmp_path / "gbk.csv"
    households.head(10).to_csv(path, index=False, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    frame = read_table(path)
    assert frame["address"].tolist() == households["address"].head(10).tolist()


def test_undecodable_file_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "junk.csv"
    path.write_bytes(b"household_id,address,lon,lat\nh1,\xff\xfe\xff,118.9,28.9\n")
    with pytest.raises(InputError, match="neither UTF-8 nor GB18030"):
        read_table(path)
    before = _state(env)
    res = _run(env, "load", "households", str(path))
    _assert_refused(
        res, env, before, "junk.csv: the file is neither UTF-8 nor GB18030", "line 2"
    )


# -- item 10: Excel workbooks ----------------------------------------------------------


def test_xlsx_loads_like_csv(
    env: dict[str, str], households: pd.DataFrame, tmp_path: Path
) -> None:
    csv = tmp_path / "hh.csv"
    households.to_csv(csv, index=False, encoding="utf-8")
    xlsx = tmp_path / "hh.xlsx"
    households.to_excel(xlsx, index=False, sheet_name="住户")
    a = prepare(read_table(csv), "households", source="x")
    b = prepare(read_table(xlsx), "households", source="x")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert read_table(xlsx).attrs["sheet"] == "住户"

    res = _run(env, "load", "households", str(csv))
    assert res.exit_code == 0, res.output
    stored = _stored_points(env)
    res = _run(env, "load", "households", str(xlsx))
    assert res.exit_code == 0, res.output
    out = _flat(res.stdout)
    assert "hh.xlsx: read with sheet '住户'" in out
    assert f"0 new, 0 updated, {len(households)} unchanged" in out
    pd.testing.assert_frame_equal(_stored_points(env), stored)


def test_xlsx_people_and_openpyxl_cells(env: dict[str, str], tmp_path: Path) -> None:
    # A workbook typed by hand: numbers as numbers, a blank row, an empty
    # trailing column, phone numbers stored as numbers.
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "人员"
    ws.append(["person_id", "name", "role", "work_phone", "area_code", None])
    ws.append([1001, "张三", "grid_worker", 13800000000, "330803001001", None])
    ws.append([None, None, None, None, None, None])
    ws.append([1002, "李四", "party_member", "0570-1234567", "330803001001"])
    path = tmp_path / "people.xlsx"
    wb.save(path)
    frame = read_table(path)
    assert list(frame.columns) == [
        "person_id",
        "name",
        "role",
        "work_phone",
        "area_code",
    ]
    out = prepare(frame, "people", source="people.xlsx").frame
    assert out["person_id"].tolist() == ["1001", "1002"]
    assert out["work_phone"].tolist() == ["13800000000", "0570-1234567"]
    res = _run(env, "load", "people", str(path))
    assert res.exit_code == 0, res.output
    assert "2 rows" in _flat(res.stdout)


def test_bad_row_in_xlsx_named_like_csv(
    env: dict[str, str], households: pd.DataFrame, tmp_path: Path
) -> None:
    df = households.head(6).astype(object)
    df.loc[3, "people"] = "很多"
    df.loc[4, "lon"] = "东经118度"
    csv = tmp_path / "bad.csv"
    df.to_csv(csv, index=False, encoding="utf-8")
    xlsx = tmp_path / "bad.xlsx"
    df.to_excel(xlsx, index=False)

    def problems(path: Path) -> list[tuple[int | None, str | None, str]]:
        with pytest.raises(InputError) as err:
            prepare(read_table(path), "households", source="f")
        return [(p.row, p.field, p.message) for p in err.value.problems]

    with pytest.raises(InputError) as err_csv:
        read_table(csv)
    with pytest.raises(InputError) as err_xlsx:
        read_table(xlsx)
    assert str(err_csv.value).replace("bad.csv", "F") == str(err_xlsx.value).replace(
        "bad.xlsx", "F"
    )
    assert "row 5, field 'lon'" in str(err_xlsx.value)
    df.loc[4, "lon"] = households.loc[4, "lon"]
    df.to_csv(csv, index=False, encoding="utf-8")
    df.to_excel(xlsx, index=False)
    assert problems(csv) == problems(xlsx) == [(4, "people", "not a number: '很多'")]

    before = _state(env)
    res = _run(env, "load", "households", str(xlsx))
    _assert_refused(res, env, before, "bad.xlsx row 4, field 'people': not a number")


def test_sheet_option_picks_a_sheet(
    env: dict[str, str], households: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as xw:
        pd.DataFrame({"说明": ["住户表在第二张工作表"]}).to_excel(
            xw, sheet_name="说明", index=False
        )
        households.head(20).to_excel(xw, sheet_name="住户", index=False)
    before = _state(env)
    # the first sheet is not a households table
    res = _run(env, "load", "households", str(path))
    _assert_refused(
        res, env, before, "missing required column(s) 'household_id'", "'说明'"
    )
    # a sheet that does not exist
    res = _run(env, "load", "households", str(path), "--sheet", "Sheet1")
    _assert_refused(
        res,
        env,
        before,
        "book.xlsx: sheet='Sheet1': the workbook has no such sheet",
        "its sheets are '说明', '住户'",
        "(on the command line: sheet is --sheet)",
    )
    with pytest.raises(InputError, match="no such sheet") as err:
        read_table(path, sheet="Sheet1")
    assert "--sheet" not in str(err.value) and err.value.params == ["sheet"]
    # the right one
    res = _run(env, "load", "households", str(path), "--sheet", "住户")
    assert res.exit_code == 0, res.output
    assert "20 rows" in _flat(res.stdout)
    assert read_table(path, sheet="住户").attrs["sheet"] == "住户"


def test_sheet_option_on_a_csv_and_xls_are_clear_errors(
    env: dict[str, str], households: pd.DataFrame, tmp_path: Path
) -> None:
    csv = tmp_path / "hh.csv"
    households.head(3).to_csv(csv, index=False)
    before = _state(env)
    res = _run(env, "load", "households", str(csv), "--sheet", "住户")
    _assert_refused(
        res, env, before, "hh.csv: sheet='住户' applies to .xlsx workbooks only"
    )
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    res = _run(env, "load", "households", str(xls))
    _assert_refused(
        res, env, before, "old.xls: old Excel .xls workbooks cannot be read"
    )


# -- item 10: BD-09 coordinates ------------------------------------------------------------


def test_from_bd09(
    env: dict[str, str], households: pd.DataFrame, tmp_path: Path
) -> None:
    df = households.head(30).copy()
    df["household_id"] = [f"BD{i:03d}" for i in range(len(df))]
    blon, blat = wgs84_to_bd09(df["lon"].to_numpy(), df["lat"].to_numpy())
    bd = df.assign(lon=blon, lat=blat)
    path = tmp_path / "baidu.csv"
    bd.to_csv(path, index=False, encoding="gb18030")
    before = _state(env)
    res = _run(env, "load", "households", str(path), "--from-bd09", "--from-gcj02")
    _assert_refused(
        res,
        env,
        before,
        "from_gcj02 and from_bd09 exclude each other",
        "from_gcj02 is --from-gcj02; from_bd09 is --from-bd09",
    )
    res = _run(env, "load", "households", str(path), "--from-bd09")
    assert res.exit_code == 0, res.output
    stored = _stored_points(env).set_index("household_id").loc[df["household_id"]]
    assert np.max(np.abs(stored["lon"].to_numpy() - df["lon"].to_numpy())) < 1e-6
    assert np.max(np.abs(stored["lat"].to_numpy() - df["lat"].to_numpy())) < 1e-6
    # without the flag they would land about a kilometre away
    raw = prepare(read_table(path), "households").frame.geometry
    assert np.min(np.abs(raw.x.to_numpy() - df["lon"].to_numpy())) > 0.005


def test_utf16_with_bom(households: pd.DataFrame, tmp_path: Path) -> None:
    # Excel's "Unicode text" is UTF-16 with a byte-order mark.
    utf8 = tmp_path / "utf8.csv"
    households.head(20).to_csv(utf8, index=False, encoding="utf-8")
    utf16 = tmp_path / "utf16.csv"
    households.head(20).to_csv(utf16, index=False, encoding="utf-16")
    a, b = read_table(utf8), read_table(utf16)
    assert b.attrs["encoding"] == "UTF-16"
    pd.testing.assert_frame_equal(
        prepare(a, "households").frame, prepare(b, "households").frame
    )
