"""Village groups (组) and other numbered parts stay in the exact-match key (issue 15, item 8).

Rural addresses in one village reuse house numbers in every group: 横路村5组26号
and 横路村4组26号 are two households. Their keys must differ, while the
spellings of one address (Chinese numerals, 第, full-width digits, province
prefix, 村民小组) must still share one key - in the key function and end to
end through the database lookup.
"""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from sqlalchemy.orm import Session

from geo.address import address_keys, parse_address
from geo.io import prepare
from geo.store.loading import load
from geo.store.lookup import lookup_address, lookup_addresses

PREFIX = "浙江省衢州市衢江区"

# (village, group, house number): groups of each village reuse house numbers.
HOUSEHOLDS = [
    ("横路村", 4, 26),
    ("横路村", 5, 26),
    ("横路村", 5, 27),
    ("湖仁村", 3, 12),
    ("湖仁村", 4, 12),
    ("大街村", 1, 8),
    ("大街村", 2, 8),
]


def _address(village: str, group: int, number: int, *, township: str = "") -> str:
    return f"{PREFIX}{township}{village}{group}组{number}号"


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("township", ["", "高家镇"])
def test_groups_that_reuse_house_numbers_get_different_keys(township: str) -> None:
    values = [_address(v, g, n, township=township) for v, g, n in HOUSEHOLDS]
    keys = address_keys(values)
    assert None not in keys
    assert len(set(keys)) == len(keys), dict(zip(values, keys, strict=True))
    assert keys == [parse_address(v).key for v in values]


def test_the_reported_pair() -> None:
    five, four = address_keys(
        [f"{PREFIX}樟潭街道横路村5组26号", f"{PREFIX}樟潭街道横路村4组26号"]
    )
    assert five == "樟潭街道横路村5组26号"
    assert four == "樟潭街道横路村4组26号"


@pytest.mark.parametrize(
    "spelling",
    [
        "浙江省衢州市衢江区横路村5组26号",
        "衢江区横路村5组26号",
        "衢江区横路村五组26号",
        "衢江区横路村第五组26号",
        "衢江区横路村第5组二十六号",
        "衢江区横路村第五村民小组26号",
        "衢江区横路村五小组26号",
        "衢江区横路村村民委员会5组26号",
        "衢江区 横路村 ５组 ２６号",
        "衢江区横路村伍组贰拾陆号",
    ],
)
def test_spellings_of_one_group_share_its_key(spelling: str) -> None:
    assert address_keys([spelling]) == ["衢江区横路村5组26号"]
    assert parse_address(spelling).key == "衢江区横路村5组26号"


def test_village_named_after_a_road_character_is_a_village() -> None:
    p = parse_address("衢江区横路村5组26号")
    assert (p.village, p.group, p.road, p.estate, p.number) == (
        "横路村",
        "5",
        None,
        None,
        "26",
    )
    # A real road is still a road (新村路 is a road, not a village 新村).
    assert parse_address("樟潭街道新村路8号").road == "新村路"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # group before a road and number: the group still counts
        ("湖仁村3组沈家路8号", "湖仁村4组沈家路8号"),
        ("湖仁村上坞组沈家路8号", "湖仁村下坞组沈家路8号"),
        # building, unit, room (and their Chinese numerals)
        ("樟潭街道沈家路8号3幢2单元501室", "樟潭街道沈家路8号4幢2单元501室"),
        ("樟潭街道沈家路8号3栋二单元501室", "樟潭街道沈家路8号3栋三单元501室"),
        ("樟潭街道沈家路8号3幢2单元五零一室", "樟潭街道沈家路8号3幢2单元五零二室"),
        ("高家镇湖仁村第三组十二号", "高家镇湖仁村第三组十三号"),
    ],
)
def test_every_numbered_part_is_in_the_key(a: str, b: str) -> None:
    ka, kb = address_keys([a, b])
    assert ka != kb
    assert (ka, kb) == (parse_address(a).key, parse_address(b).key)


def test_village_still_dropped_for_road_and_number() -> None:
    # Unchanged rule: a road number identifies the plot without its community.
    assert (
        parse_address("衢江区樟潭街道沈家社区沈家路8号").key
        == parse_address("樟潭街道沈家路8号").key
        == "樟潭街道沈家路8号"
    )


# ---------------------------------------------------------------------------
# End to end: PostGIS lookup
# ---------------------------------------------------------------------------


def _load_households(session: Session) -> list[str]:
    box = shapely.box(118.80, 28.90, 118.95, 29.00)
    areas = gpd.GeoDataFrame(
        {"code": ["330803"], "name": ["衢江区"], "level": ["county"]},
        geometry=[box],
        crs=4326,
    )
    load(session, prepare(areas, "areas", source="areas"))
    addresses = [_address(v, g, n) for v, g, n in HOUSEHOLDS]
    ids = [f"h{i}" for i in range(len(addresses))]
    hh = gpd.GeoDataFrame(
        {"household_id": ids, "address": addresses},
        geometry=shapely.points(
            [118.85 + 0.001 * i for i in range(len(ids))], [28.95] * len(ids)
        ),
        crs=4326,
    )
    load(session, prepare(hh, "households", source="households"))
    return addresses


def test_lookup_answers_each_household_of_groups_sharing_numbers(
    session: Session,
) -> None:
    addresses = _load_households(session)
    for i, address in enumerate(addresses):
        result = lookup_address(session, address)
        assert result.match == "exact", (address, result)
        assert [a.household_id for a in result.answers] == [f"h{i}"]
        assert result.answers[0].address == address
    # the bulk path agrees
    results = lookup_addresses(session, addresses)
    assert [r.match for r in results] == ["exact"] * len(addresses)
    assert [r.answers[0].household_id for r in results] == [
        f"h{i}" for i in range(len(addresses))
    ]


def test_lookup_other_spellings_find_the_same_household(session: Session) -> None:
    _load_households(session)
    for spelling in (
        "衢江区横路村五组26号",
        "衢州市衢江区横路村第五村民小组二十六号",
        "衢江区 横路村 ５组 ２６号",
    ):
        result = lookup_address(session, spelling)
        assert result.match == "exact", (spelling, result)
        assert [a.household_id for a in result.answers] == ["h1"]
    result = lookup_address(session, "衢江区横路村第四组26号")
    assert result.match == "exact"
    assert [a.household_id for a in result.answers] == ["h0"]
