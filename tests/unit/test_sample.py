"""Tests of the seeded sample-county generator (geo.sample); pure, no database."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from samples import sample_county

from geo.sample import SampleCounty, generate_county, write_county

METRIC = 32650
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "shapes" / "sample_county"

D = "[0-9０-９]"  # half- or full-width digit
HAN = "[\u4e00-\u9fff]"
PREFIX = "(?:浙江省衢州市衢江区|衢州市衢江区|衢江区)?"
TOWNSHIP = f"{HAN}{{2,3}}(?:街道|镇|乡)"
RURAL_RE = re.compile(
    f"^{PREFIX}{TOWNSHIP}{HAN}{{2,3}}村(?:{D}+组|{HAN}{{2,3}}){D}+号$"
)
URBAN_RE = re.compile(
    f"^{PREFIX}{TOWNSHIP}{HAN}{{2,3}}(?:路|街|大道){D}+号"
    f"(?:{D}+[幢栋]{D}+单元{D}{{3,4}}室?)?$"
)
UNIT_RE = re.compile(r"^\d+幢\d+单元\d{3,4}室$")
PHONE_RE = re.compile(r"^(?:0570-8\d{6}|1[3-9]\d{9})$")
NAME_RE = re.compile(f"^{HAN}{{2,3}}$")


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(4_000, seed=3)


@pytest.fixture(scope="module")
def metric_areas(county: SampleCounty) -> gpd.GeoDataFrame:
    return county.areas.to_crs(METRIC)


def _leaf(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return areas[areas["level"].isin(["village", "community"])]


def _households_per_area(county: SampleCounty) -> pd.Series:
    leaf = _leaf(county.areas)
    counts = county.households["area_code"].value_counts()
    return counts.reindex(leaf["code"]).fillna(0).astype(int)


def _assert_county_equal(a: SampleCounty, b: SampleCounty) -> None:
    assert_geodataframe_equal(a.areas, b.areas)
    assert_geodataframe_equal(a.households, b.households)
    assert_geodataframe_equal(a.barriers, b.barriers)
    pd.testing.assert_frame_equal(a.people, b.people)


# --------------------------------------------------------------------------- basics


def test_deterministic(county: SampleCounty) -> None:
    _assert_county_equal(county, generate_county(4_000, seed=3))


def test_seed_changes_output(county: SampleCounty) -> None:
    other = generate_county(4_000, seed=4)
    assert not other.households.geometry.geom_equals(county.households.geometry).all()


def test_shapes_and_crs(county: SampleCounty) -> None:
    assert len(county.households) == 4_000
    for gdf in (county.areas, county.households, county.barriers):
        assert gdf.crs.to_epsg() == 4326
    assert list(county.areas.columns) == [
        "code",
        "name",
        "level",
        "parent_code",
        "geometry",
    ]
    assert list(county.households.columns) == [
        "household_id",
        "address",
        "people",
        "building_id",
        "unit",
        "area_code",
        "geometry",
    ]
    assert list(county.people.columns) == [
        "person_id",
        "name",
        "role",
        "work_phone",
        "area_code",
    ]
    assert list(county.barriers.columns) == ["barrier_id", "kind", "name", "geometry"]
    minx, miny, maxx, maxy = county.areas.total_bounds
    assert 118.6 < minx < maxx < 119.3
    assert 28.7 < miny < maxy < 29.3


def test_rejects_tiny_county() -> None:
    with pytest.raises(ValueError, match="n_households"):
        generate_county(10)


# --------------------------------------------------------------------------- areas


def test_area_codes_and_hierarchy(county: SampleCounty) -> None:
    areas = county.areas
    assert areas["code"].is_unique
    assert areas["code"].str.fullmatch(r"330803\d{6}").all()
    top = areas[areas["level"] == "county"]
    assert top["code"].tolist() == ["330803000000"]
    assert top["name"].tolist() == ["衢江区"]
    assert top["parent_code"].isna().all()

    towns = areas[areas["level"] == "township"]
    assert len(towns) >= 2
    assert (towns["parent_code"] == "330803000000").all()
    assert towns["code"].str.endswith("000").all()
    suffixes = {re.search("(街道|镇|乡)$", n).group(1) for n in towns["name"]}
    assert suffixes == {"街道", "镇", "乡"}

    leaf = _leaf(areas)
    assert leaf["parent_code"].isin(towns["code"]).all()
    assert (leaf["code"].str[:9] == leaf["parent_code"].str[:9]).all()
    villages = leaf[leaf["level"] == "village"]
    communities = leaf[leaf["level"] == "community"]
    assert villages["name"].str.fullmatch(f"{HAN}{{2,3}}村").all()
    assert communities["name"].str.fullmatch(f"{HAN}{{2,3}}社区").all()
    assert (villages["code"].str[9:].astype(int) >= 201).all()
    assert (communities["code"].str[9:].astype(int) < 200).all()
    # communities belong to the dense 街道
    street_codes = towns.loc[towns["name"].str.endswith("街道"), "code"]
    assert communities["parent_code"].isin(street_codes).all()


def test_area_geometries_valid(county: SampleCounty) -> None:
    geoms = county.areas.geometry
    assert (geoms.geom_type == "MultiPolygon").all()
    assert geoms.is_valid.all()
    assert (~geoms.is_empty).all()


def test_townships_tile_county(metric_areas: gpd.GeoDataFrame) -> None:
    county_geom = metric_areas.loc[metric_areas["level"] == "county"].geometry.iloc[0]
    towns = metric_areas[metric_areas["level"] == "township"].geometry.to_numpy()
    assert county_geom.area == pytest.approx(shapely.area(towns).sum(), rel=1e-9)
    assert shapely.union_all(towns).symmetric_difference(county_geom).area < 1.0
    for i in range(len(towns)):
        for j in range(i + 1, len(towns)):
            assert shapely.intersection(towns[i], towns[j]).area < 1e-3
    assert shapely.coverage_is_valid(towns)


def test_villages_tile_townships(metric_areas: gpd.GeoDataFrame) -> None:
    towns = metric_areas[metric_areas["level"] == "township"]
    for code, town in zip(towns["code"], towns.geometry, strict=True):
        children = metric_areas[metric_areas["parent_code"] == code].geometry
        assert len(children) >= 1
        union = shapely.union_all(children.to_numpy())
        assert union.symmetric_difference(town).area < 1.0
        assert children.area.sum() == pytest.approx(town.area, rel=1e-9)
        assert shapely.coverage_is_valid(children.to_numpy())
        assert children.buffer(-0.01).within(town).all()


def test_size_bands(county: SampleCounty) -> None:
    sizes = _households_per_area(county)
    levels = _leaf(county.areas).set_index("code")["level"]
    villages = sizes[levels.reindex(sizes.index) == "village"]
    assert (villages < 200).sum() >= 2
    assert ((villages >= 300) & (villages <= 400)).sum() >= 2
    assert (sizes >= 1_000).sum() >= 1
    assert (sizes > 0).all()


def test_small_county_keeps_required_features() -> None:
    small = generate_county(2_000, seed=5)
    assert len(small.households) == 2_000
    assert (small.areas["level"] == "township").sum() >= 2
    sizes = _households_per_area(small)
    assert (sizes < 200).sum() >= 2
    assert ((sizes >= 300) & (sizes <= 400)).sum() >= 2
    assert (sizes >= 1_000).sum() >= 1
    assert small.households["building_id"].value_counts().max() > 300


# --------------------------------------------------------------------------- households


def test_households_inside_their_area(county: SampleCounty) -> None:
    hh = county.households
    leaf = _leaf(county.areas).set_index("code").geometry
    assert hh["area_code"].isin(leaf.index).all()
    x, y = hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()
    for code, idx in hh.groupby("area_code").indices.items():
        poly = leaf[code]
        assert shapely.contains_xy(poly, x[idx], y[idx]).all(), code
        # strictly inside: not on (or within ~1 m of) an edge
        pts = shapely.points(x[idx], y[idx])
        assert (shapely.distance(poly.boundary, pts) > 1e-5).all(), code


def test_households_off_barriers(county: SampleCounty) -> None:
    hh = county.households.to_crs(METRIC)
    for line in county.barriers.to_crs(METRIC).geometry:
        assert hh.distance(line).min() > 10.0


def test_unique_ids(county: SampleCounty) -> None:
    hh = county.households
    assert hh["household_id"].is_unique
    assert hh["household_id"].str.fullmatch(r"H330803\d{6}-\d{5}").all()
    assert (hh["household_id"].str[1:13] == hh["area_code"]).all()
    assert county.people["person_id"].is_unique
    assert hh["address"].nunique() / len(hh) > 0.99


def test_people_counts(county: SampleCounty) -> None:
    people = county.households["people"]
    assert people.dtype.kind == "i"
    assert (people >= 0).all()
    assert (people == 0).any()


def test_apartment_buildings(county: SampleCounty) -> None:
    hh = county.households
    apt = hh[hh["building_id"].notna()]
    assert len(apt) > 0
    sizes = apt["building_id"].value_counts()
    assert (sizes >= 20).all()
    assert ((sizes >= 20) & (sizes <= 120)).sum() >= 5
    assert (sizes > 300).any()
    # every household of a building has the exact same point
    xy = pd.DataFrame(
        {"b": apt["building_id"], "x": apt.geometry.x, "y": apt.geometry.y}
    )
    assert (xy.groupby("b")[["x", "y"]].nunique() == 1).all().all()
    # ... and buildings do not share points with each other
    assert len(xy.drop_duplicates(["x", "y"])) == len(sizes)
    assert apt["unit"].str.fullmatch(UNIT_RE.pattern).all()
    assert not apt.duplicated(["building_id", "unit"]).any()
    codes = apt["building_id"].str.extract(r"^B(\d{12})-\d{4}$")[0]
    assert (codes == apt["area_code"]).all()
    levels = county.areas.set_index("code")["level"]
    assert (levels.reindex(apt["area_code"]).to_numpy() == "community").all()


def test_rural_households(county: SampleCounty) -> None:
    hh = county.households
    levels = county.areas.set_index("code")["level"]
    rural = hh[levels.reindex(hh["area_code"]).to_numpy() == "village"]
    assert rural["building_id"].isna().all()
    assert rural["unit"].isna().all()
    solo = hh[hh["building_id"].isna()]
    assert (
        not pd.DataFrame({"x": solo.geometry.x, "y": solo.geometry.y})
        .duplicated()
        .any()
    )


def test_address_formats(county: SampleCounty) -> None:
    hh = county.households
    levels = county.areas.set_index("code")["level"]
    names = county.areas.set_index("code")["name"]
    level = levels.reindex(hh["area_code"]).to_numpy()
    rural = hh.loc[level == "village", "address"]
    urban = hh.loc[level == "community", "address"]
    assert rural.str.match(RURAL_RE.pattern).all(), rural[
        ~rural.str.match(RURAL_RE.pattern)
    ]
    assert urban.str.match(URBAN_RE.pattern).all(), urban[
        ~urban.str.match(URBAN_RE.pattern)
    ]
    # every address names its township, rural ones also their village
    town = names.reindex(hh["area_code"].str[:9] + "000").to_numpy()
    assert all(t in a for t, a in zip(town, hh["address"], strict=True))
    vil = names.reindex(hh["area_code"]).to_numpy()
    assert all(
        v in a
        for v, a, lv in zip(vil, hh["address"], level, strict=True)
        if lv == "village"
    )
    # mostly canonical, with some real-world variants
    addr = hh["address"]
    assert addr.str.startswith("浙江省衢州市衢江区").mean() > 0.8
    assert (~addr.str.startswith("浙江省")).any()
    assert addr.str.contains("[０-９]").any()
    assert urban.str.contains("栋").any()
    assert urban.str.contains("幢").any()
    assert rural.str.contains(f"{D}+组{D}+号$").any()


# --------------------------------------------------------------------------- people


def test_people(county: SampleCounty) -> None:
    people = county.people
    areas = county.areas.set_index("code")
    assert people["area_code"].isin(areas.index).all()
    assert set(people["role"]) == {
        "grid_worker",
        "grid_leader",
        "party_member",
        "village_committee",
        "township_office",
    }
    assert people["name"].str.match(NAME_RE.pattern).all()
    assert people["work_phone"].str.match(PHONE_RE.pattern).all()
    assert people["work_phone"].str.startswith("0570-").any()
    assert people["work_phone"].str.startswith("1").any()
    assert people["person_id"].str.fullmatch(r"P\d{6,}").all()

    leaders = people[people["role"] == "grid_leader"]
    towns = county.areas[county.areas["level"] == "township"]
    assert sorted(leaders["area_code"]) == sorted(towns["code"])

    sizes = _households_per_area(county)
    workers = people[people["role"] == "grid_worker"]["area_code"].value_counts()
    workers = workers.reindex(sizes.index).fillna(0)
    assert (workers >= 1).all()
    assert workers.sum() == pytest.approx(sizes.sum() / 250, rel=0.5)
    members = (people["role"] == "party_member").sum()
    assert sizes.sum() / 30 < members < sizes.sum() / 12


def test_event_handlers(county: SampleCounty) -> None:
    """One village committee member per village/community, one township office per
    township (the handlers of 村事 and 政事), listed after everyone else."""
    people = county.people
    committee = people[people["role"] == "village_committee"]["area_code"]
    office = people[people["role"] == "township_office"]["area_code"]
    leaves = _leaf(county.areas)["code"]
    towns = county.areas[county.areas["level"] == "township"]["code"]
    assert sorted(committee) == sorted(leaves)
    assert sorted(office) == sorted(towns)
    handlers = people["role"].isin(["village_committee", "township_office"])
    first = int(np.argmax(handlers.to_numpy()))
    assert handlers.iloc[first:].all()  # appended: the others keep their ids


# --------------------------------------------------------------------------- barriers


def test_barriers(county: SampleCounty) -> None:
    bar = county.barriers
    assert bar["barrier_id"].is_unique
    assert {"river", "main_road"} <= set(bar["kind"])
    assert {"衢江", "乌溪江", "G320国道"} <= set(bar["name"])
    assert (bar.geom_type == "LineString").all()
    county_geom = county.areas.geometry.iloc[0]
    assert bar.intersects(county_geom).all()


# --------------------------------------------------------------------------- writing


def _read_back(path: Path) -> gpd.GeoDataFrame:
    if path.suffix == ".parquet":
        return gpd.read_parquet(path)
    return gpd.read_file(path)


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "parquet"])
def test_write_roundtrip(county: SampleCounty, tmp_path: Path, fmt: str) -> None:
    paths = write_county(county, tmp_path / fmt, fmt=fmt)
    assert set(paths) == {"areas", "households", "people", "barriers"}
    for layer in ("areas", "households", "barriers"):
        assert paths[layer].suffix == "." + fmt
        back = _read_back(paths[layer])
        assert_geodataframe_equal(
            back, getattr(county, layer), check_dtype=False, check_index_type=False
        )
        # coordinates survive bit for bit (7 decimals are written exactly)
        same = shapely.equals_exact(
            back.geometry.to_numpy(), getattr(county, layer).geometry.to_numpy(), 0.0
        )
        assert same.all()
    people = pd.read_csv(paths["people"], dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(people, county.people, check_dtype=False)


def test_write_csv(county: SampleCounty, tmp_path: Path) -> None:
    paths = write_county(county, tmp_path, fmt="csv")
    assert paths["households"].name == "households.csv"
    assert paths["areas"].name == "areas.geojson"
    back = pd.read_csv(paths["households"], dtype={"people": int}, encoding="utf-8")
    hh = county.households
    assert list(back.columns) == [c for c in hh.columns if c != "geometry"] + [
        "lon",
        "lat",
    ]
    assert back["address"].tolist() == hh["address"].tolist()
    assert back["area_code"].astype(str).tolist() == hh["area_code"].tolist()
    np.testing.assert_array_equal(back["lon"].to_numpy(), hh.geometry.x.to_numpy())
    np.testing.assert_array_equal(back["lat"].to_numpy(), hh.geometry.y.to_numpy())
    assert_geodataframe_equal(
        gpd.read_file(paths["areas"]), county.areas, check_index_type=False
    )


def test_geojson_utf8(county: SampleCounty, tmp_path: Path) -> None:
    paths = write_county(county, tmp_path, fmt="geojson")
    text = paths["households"].read_bytes().decode("utf-8")  # strict
    assert "浙江省衢州市衢江区" in text
    assert "\\u" not in text  # raw UTF-8, not escaped
    for layer, column in (("areas", "name"), ("barriers", "name")):
        raw = paths[layer].read_bytes().decode("utf-8")
        values = getattr(county, layer)[column]
        assert all(v in raw for v in values)
        assert gpd.read_file(paths[layer])[column].tolist() == values.tolist()
    assert gpd.read_file(paths["households"])["address"].tolist() == (
        county.households["address"].tolist()
    )
    people_raw = paths["people"].read_bytes().decode("utf-8")
    assert all(n in people_raw for n in county.people["name"])


def test_write_rejects_unknown_format(county: SampleCounty, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        write_county(county, tmp_path, fmt="shp")


def test_committed_sample_is_reproducible() -> None:
    if not SAMPLE_DIR.exists():
        pytest.skip("data/shapes/sample_county not present")
    fresh = generate_county(5_000, seed=0)
    for layer in ("areas", "barriers", "households"):
        back = gpd.read_file(SAMPLE_DIR / f"{layer}.geojson")
        assert_geodataframe_equal(
            back, getattr(fresh, layer), check_dtype=False, check_index_type=False
        )
    people = pd.read_csv(SAMPLE_DIR / "people.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(people, fresh.people, check_dtype=False)
    size = sum(p.stat().st_size for p in SAMPLE_DIR.iterdir())
    assert size < 3_000_000
