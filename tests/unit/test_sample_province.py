"""Tests of the seeded sample-province generator (geo.sample.province); pure, no database."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo.sample import PROVINCE_CODE, SampleCounty, SampleProvince, generate_province
from geo.sample.province import MAX_COUNTIES, write_partition, write_top

HOUSEHOLDS = 6_000
COUNTIES = 3


@functools.cache
def _province(seed: int = 0) -> tuple[SampleProvince, tuple[SampleCounty, ...]]:
    p = generate_province(HOUSEHOLDS, counties=COUNTIES, seed=seed)
    return p, tuple(p.iter_counties())


def _all_areas() -> pd.DataFrame:
    p, counties = _province()
    return pd.concat([p.top, *(c.areas for c in counties)], ignore_index=True)


def test_codes_levels_and_hierarchy_are_valid() -> None:
    areas = _all_areas()
    assert areas["code"].str.fullmatch(r"\d{12}").all()
    assert areas["code"].is_unique
    by_code = dict(zip(areas["code"], areas["level"], strict=True))
    parent_of = {
        "city": lambda c: c[:2] + "0" * 10,
        "county": lambda c: c[:4] + "0" * 8,
        "township": lambda c: c[:6] + "0" * 6,
        "village": lambda c: c[:9] + "000",
        "community": lambda c: c[:9] + "000",
    }
    rank = ["province", "city", "county", "township", "village"]
    for code, level, parent in areas[["code", "level", "parent_code"]].itertuples(
        index=False
    ):
        if level == "province":
            assert code == PROVINCE_CODE and pd.isna(parent)
            continue
        assert parent == parent_of[level](code), (code, level, parent)
        want = rank.index("village" if level == "community" else level) - 1
        assert by_code[parent] == rank[want]
    assert (areas["level"] == "county").sum() == COUNTIES
    assert set(areas["level"]) == {*rank, "community"}
    assert areas["name"].str.contains(r"[\u4e00-\u9fff]").all()


def test_households_people_and_ids_belong_to_their_county() -> None:
    p, counties = _province()
    hh = pd.concat([c.households for c in counties], ignore_index=True)
    people = pd.concat([c.people for c in counties], ignore_index=True)
    assert len(hh) == HOUSEHOLDS
    assert [len(c.households) for c in counties] == [s.households for s in p.counties]
    assert min(s.households for s in p.counties) >= 100
    assert hh["household_id"].is_unique and people["person_id"].is_unique
    leaves = set(_all_areas().query("level in ['village', 'community']")["code"])
    assert set(hh["area_code"]) <= leaves
    assert set(people["area_code"]) <= set(_all_areas()["code"])
    for spec, county in zip(p.counties, counties, strict=True):
        prefix = spec.code[:6]
        assert county.households["household_id"].str.startswith("H" + prefix).all()
        assert county.households["area_code"].str.startswith(prefix).all()
        full = county.households["address"].str.startswith("浙江省")
        assert (
            county.households["address"][full]
            .str.startswith("浙江省" + spec.city + spec.name)
            .all()
        )
        assert not county.households["address"].str.contains("衢江区").any()
        leaf = county.areas.set_index("code").geometry
        where = leaf.loc[county.households["area_code"]].values
        inside = shapely.contains(
            np.asarray(where), np.asarray(county.households.geometry.values)
        )
        assert inside.all()


def test_counties_do_not_overlap_and_cities_cover_them() -> None:
    p, counties = _province()
    outlines = [c.areas.geometry.iloc[0] for c in counties]
    for a, b in itertools.combinations(outlines, 2):
        assert not a.intersects(b)
    city = p.top.set_index("code").geometry
    for spec, outline in zip(p.counties, outlines, strict=True):
        # the city is the union of its counties' outlines (up to rounding)
        assert city[spec.city_code].buffer(1e-6).contains(outline)
        assert city[PROVINCE_CODE].buffer(1e-6).contains(outline)


def test_the_province_is_deterministic_by_seed() -> None:
    p, counties = _province()
    again = generate_province(HOUSEHOLDS, counties=COUNTIES, seed=0)
    assert again.counties == p.counties
    assert_geodataframe_equal(again.top, p.top)
    first = again.county(again.counties[0])
    assert_geodataframe_equal(first.households, counties[0].households)
    assert_geodataframe_equal(first.areas, counties[0].areas)
    pd.testing.assert_frame_equal(first.people, counties[0].people)
    other = generate_province(HOUSEHOLDS, counties=COUNTIES, seed=1)
    assert [s.households for s in other.counties] != [s.households for s in p.counties]


def test_twenty_counties_fill_several_cities() -> None:
    p = generate_province(20 * 100, counties=20, seed=0)
    assert len(p.counties) == 20
    assert len({s.code for s in p.counties}) == 20
    cities = p.top[p.top["level"] == "city"]
    assert len(cities) == 5
    assert max(pd.Series([s.city_code for s in p.counties]).value_counts()) == 4
    assert sum(s.households for s in p.counties) == 2_000
    # tiles never overlap: outlines of all 20 counties are disjoint
    geoms = np.asarray(cities.geometry.values)
    assert shapely.area(shapely.union_all(geoms)) == pytest.approx(
        shapely.area(geoms).sum()
    )


@pytest.mark.parametrize(
    ("households", "counties", "word"),
    [
        (1_000, 0, "counties"),
        (1_000, MAX_COUNTIES + 1, "counties"),
        (250, 3, "n_households"),
    ],
)
def test_bad_sizes_are_refused_naming_the_parameter(
    households: int, counties: int, word: str
) -> None:
    with pytest.raises(ValueError, match=word):
        generate_province(households, counties=counties)


def test_parquet_is_written_partitioned_by_county(tmp_path: Path) -> None:
    p, counties = _province()
    top = write_top(p, tmp_path)
    for spec, county in zip(p.counties, counties, strict=True):
        write_partition(county, spec, tmp_path)
    assert_geodataframe_equal(gpd.read_parquet(top), p.top)
    parts = sorted(d.name for d in (tmp_path / "households").iterdir())
    assert parts == [f"county={s.code}" for s in p.counties]
    for layer in ("areas", "households", "people", "barriers"):
        assert len(list((tmp_path / layer).iterdir())) == COUNTIES
    one = gpd.read_parquet(
        tmp_path / "households" / f"county={p.counties[1].code}" / "part-0.parquet"
    )
    want = counties[1].households
    assert one["household_id"].tolist() == want["household_id"].tolist()
    assert (
        one["building_id"].fillna("").tolist()
        == want["building_id"].fillna("").tolist()
    )
    assert one.geometry.geom_equals_exact(want.geometry, tolerance=0).all()
    # the whole directory reads as one dataset with the county as a column
    import pyarrow.dataset as ds

    table = ds.dataset(
        tmp_path / "households", format="parquet", partitioning="hive"
    ).to_table(columns=["household_id", "county"])
    assert table.num_rows == HOUSEHOLDS
    counts = table.to_pandas()["county"].astype(str).value_counts().to_dict()
    assert counts == {s.code: s.households for s in p.counties}
