"""Tests for geo.address: normalisation, parsing, keys and bulk helpers."""

from __future__ import annotations

import doctest
import math
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geo.address.keys
import geo.address.normalize
import geo.address.parse
from geo.address import (
    ParsedAddress,
    address_keys,
    normalize_address,
    normalize_many,
    parse_address,
)


def _fields(p: ParsedAddress) -> dict[str, str]:
    return {
        name: getattr(p, name)
        for name in ParsedAddress.__dataclass_fields__
        if getattr(p, name) is not None
    }


# ---------------------------------------------------------------------------
# Parsing of the real formats
# ---------------------------------------------------------------------------

PARSE_CASES: list[tuple[str, dict[str, str], str]] = [
    (
        "浙江省衢州市衢江区高家镇湖仁村3组12号",
        {
            "province": "浙江省",
            "city": "衢州市",
            "county": "衢江区",
            "township": "高家镇",
            "village": "湖仁村",
            "group": "3",
            "number": "12",
        },
        "高家镇湖仁村3组12号",
    ),
    (
        "樟潭街道沈家路8号3幢2单元501室",
        {
            "township": "樟潭街道",
            "road": "沈家路",
            "number": "8",
            "building": "3",
            "unit": "2",
            "room": "501",
        },
        "樟潭街道沈家路8号3幢2单元501室",
    ),
    (
        "衢江区樟潭街道沈家社区沈家路8号3栋2单元501室",
        {
            "county": "衢江区",
            "township": "樟潭街道",
            "village": "沈家社区",
            "road": "沈家路",
            "number": "8",
            "building": "3",
            "unit": "2",
            "room": "501",
        },
        "樟潭街道沈家路8号3幢2单元501室",
    ),
    (
        "浙江省衢州市衢江区樟潭街道沈家路８号３幢２单元５０１室",
        {
            "province": "浙江省",
            "city": "衢州市",
            "county": "衢江区",
            "township": "樟潭街道",
            "road": "沈家路",
            "number": "8",
            "building": "3",
            "unit": "2",
            "room": "501",
        },
        "樟潭街道沈家路8号3幢2单元501室",
    ),
    (
        "高家镇湖仁村三组十二号",
        {"township": "高家镇", "village": "湖仁村", "group": "3", "number": "12"},
        "高家镇湖仁村3组12号",
    ),
    (
        "XX县XX乡XX村村民小组",
        {"county": "xx县", "township": "xx乡", "village": "xx村"},
        "xx乡xx村",
    ),
    (
        "开化县华埠镇金星村第五村民小组",
        {"county": "开化县", "township": "华埠镇", "village": "金星村", "group": "5"},
        "华埠镇金星村5组",
    ),
    (
        "常山县芳村镇新桥村五村民小组8号",
        {
            "county": "常山县",
            "township": "芳村镇",
            "village": "新桥村",
            "group": "5",
            "number": "8",
        },
        "芳村镇新桥村5组8号",
    ),
    (
        "江山市峡口镇广渡村村委会3小组",
        {"city": "江山市", "township": "峡口镇", "village": "广渡村", "group": "3"},
        "峡口镇广渡村3组",
    ),
    (
        "湖仁村上坞村民小组5号",
        {"village": "湖仁村", "group": "上坞", "number": "5"},
        "湖仁村上坞组5号",
    ),
    (
        "上海市黄浦区长乐路123弄5号",
        {
            "province": "上海市",
            "county": "黄浦区",
            "road": "长乐路123弄",
            "number": "5",
        },
        "黄浦区长乐路123弄5号",
    ),
    (
        "樟潭街道新村路8号",
        {"township": "樟潭街道", "road": "新村路", "number": "8"},
        "樟潭街道新村路8号",
    ),
    (
        "樟潭街道阳光小区A幢3单元501",
        {
            "township": "樟潭街道",
            "estate": "阳光小区",
            "building": "a",
            "unit": "3",
            "room": "501",
        },
        "樟潭街道阳光小区a幢3单元501室",
    ),
    (
        "樟潭街道沈家路8号3-2-501",
        {
            "township": "樟潭街道",
            "road": "沈家路",
            "number": "8",
            "building": "3",
            "unit": "2",
            "room": "501",
        },
        "樟潭街道沈家路8号3幢2单元501室",
    ),
    (
        "樟潭街道沈家路8号3楼",
        {"township": "樟潭街道", "road": "沈家路", "number": "8", "extra": "3楼"},
        "樟潭街道沈家路8号3楼",
    ),
    (
        "Landstrasse 12, 9490 Vaduz",
        {
            "street": "landstrasse",
            "housenumber": "12",
            "postcode": "9490",
            "locality": "vaduz",
        },
        "landstrasse|12|9490",
    ),
    (
        "Im Gapetsch 5a, 9494 Schaan",
        {
            "street": "im gapetsch",
            "housenumber": "5a",
            "postcode": "9494",
            "locality": "schaan",
        },
        "imgapetsch|5a|9494",
    ),
    (
        "Äulestrasse 20 9490 Vaduz",
        {
            "street": "äulestrasse",
            "housenumber": "20",
            "postcode": "9490",
            "locality": "vaduz",
        },
        "aeulestrasse|20|9490",
    ),
    (
        "Fürst-Franz-Josef-Strasse 73",
        {"street": "fürst-franz-josef-strasse", "housenumber": "73"},
        "fuerstfranzjosefstrasse|73|",
    ),
    (
        "Landstr. 12, FL-9490 Vaduz",
        {
            "street": "landstr",
            "housenumber": "12",
            "postcode": "9490",
            "locality": "vaduz",
        },
        "landstrasse|12|9490",
    ),
    (
        "Landstrasse 12 Triesen",
        {"street": "landstrasse", "housenumber": "12", "locality": "triesen"},
        "landstrasse|12|triesen",
    ),
    ("9490 Vaduz", {"postcode": "9490", "locality": "vaduz"}, "||9490"),
    (
        "12 Main St 12345",
        {"street": "main st", "housenumber": "12", "postcode": "12345"},
        "mainstreet|12|12345",
    ),
]


@pytest.mark.parametrize(("text", "expected", "key"), PARSE_CASES)
def test_parse_real_formats(text: str, expected: dict[str, str], key: str) -> None:
    parsed = parse_address(text)
    assert _fields(parsed) == expected
    assert parsed.key == key


def test_key_equal_across_chinese_variants() -> None:
    rural = [
        "浙江省衢州市衢江区高家镇湖仁村3组12号",
        "高家镇湖仁村三组十二号",
        "衢江区高家镇湖仁村3组12号",
        "衢江区 高家镇 湖仁村 第三村民小组 12号",
        "高家镇湖仁村３组１２号",
    ]
    urban = [
        "樟潭街道沈家路8号3幢2单元501室",
        "衢江区樟潭街道沈家社区沈家路8号3栋2单元501室",
        "浙江省衢州市衢江区樟潭街道沈家路８号３幢２单元５０１室",
        "樟潭街道沈家路8号3号楼两单元五零一室",
        "樟潭街道办事处沈家路8号3-2-501",
    ]
    assert {parse_address(t).key for t in rural} == {"高家镇湖仁村3组12号"}
    assert {parse_address(t).key for t in urban} == {"樟潭街道沈家路8号3幢2单元501室"}


def test_keys_keep_different_addresses_apart() -> None:
    keys = address_keys(
        [
            "高家镇湖仁村3组12号",
            "高家镇湖仁村3组13号",
            "高家镇湖仁村4组12号",
            "高家镇湖仁二村3组12号",
            "衢江区沈家路8号",
            "龙游县沈家路8号",
            "Landstrasse 12, 9490 Vaduz",
            "Landstrasse 12, 9495 Triesen",
            "Landstrasse 12a, 9490 Vaduz",
        ]
    )
    assert len(set(keys)) == len(keys)


def test_western_key_variants() -> None:
    same = [
        "Landstrasse 12, 9490 Vaduz",
        "LANDSTRASSE 12 9490 VADUZ",
        "Landstraße 12, 9490 Vaduz",
        "Landstr. 12, 9490 Vaduz",
        "Land-Strasse 12, FL-9490 Vaduz",
        "Ｌａｎｄｓｔｒａｓｓｅ　１２，　９４９０　Ｖａｄｕｚ",
    ]
    assert {parse_address(t).key for t in same} == {"landstrasse|12|9490"}
    assert (
        parse_address("Aeulestrasse 20, 9490 Vaduz").key
        == parse_address("Äulestrasse 20 9490 Vaduz").key
    )
    assert parse_address("Im Gapetsch 5A, 9494 Schaan").key == "imgapetsch|5a|9494"


@pytest.mark.parametrize("blank", [None, "", "   ", "\u3000\t\n", "，。、"])
def test_blank_inputs(blank: str | None) -> None:
    assert normalize_address(blank) == ""
    assert parse_address(blank) == ParsedAddress()
    assert parse_address(blank).key is None
    assert normalize_many([blank]) == [None]
    assert address_keys([blank]) == [None]


def test_non_string_items_in_bulk() -> None:
    values = [math.nan, None, 3, "三组"]
    assert normalize_many(values) == [None, None, None, "3组"]  # type: ignore[arg-type]
    assert address_keys(values) == [None, None, None, "3组"]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------

NUMERALS = [
    ("一", "1"),
    ("二", "2"),
    ("三", "3"),
    ("四", "4"),
    ("五", "5"),
    ("六", "6"),
    ("七", "7"),
    ("八", "8"),
    ("九", "9"),
    ("十", "10"),
    ("十一", "11"),
    ("十二", "12"),
    ("二十", "20"),
    ("二十三", "23"),
    ("九十九", "99"),
    ("一百", "100"),
    ("一百零五", "105"),
    ("一百一十", "110"),
    ("两百", "200"),
    ("三百五", "350"),
    ("一千零一", "1001"),
    ("两", "2"),
    ("零", "0"),
    ("一零五", "105"),
    ("二〇一", "201"),
    ("叁拾", "30"),
]


@pytest.mark.parametrize(("numeral", "digits"), NUMERALS)
@pytest.mark.parametrize("suffix", ["组", "号", "幢", "单元", "室"])
def test_chinese_numerals(numeral: str, digits: str, suffix: str) -> None:
    assert normalize_address(numeral + suffix) == digits + suffix


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("三组", "3组"),
        ("十二号", "12号"),
        ("二十三号", "23号"),
        ("一百零五室", "105室"),
        ("两单元", "2单元"),
        ("第三组", "3组"),
        ("第3组", "3组"),
        ("五楼", "5楼"),
        ("三层", "3层"),
        ("一二三路", "一二三路"),  # no counting suffix: untouched
        ("三里屯村", "三里屯村"),
        ("十十号", "十十号"),  # malformed numeral: untouched
        ("二十三十号", "二十三十号"),
        ("三栋", "3幢"),
        ("三号楼", "3幢"),
        ("8号楼", "8幢"),
        ("湖仁村第三村民小组", "湖仁村3组"),
        ("湖仁村三居民小组", "湖仁村3组"),
        ("湖仁村3小组", "湖仁村3组"),
        ("湖仁村村民委员会", "湖仁村"),
        ("湖仁村委会", "湖仁村"),
        ("沈家社区居委会", "沈家社区"),
        ("樟潭街道办事处", "樟潭街道"),
    ],
)
def test_normalize_chinese(text: str, expected: str) -> None:
    assert normalize_address(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),
        ("沈家路８号", "沈家路8号"),
        ("高家镇\u3000湖仁村", "高家镇湖仁村"),
        ("高家镇, 湖仁村。3组（东）", "高家镇湖仁村3组东"),
        ("高家镇-湖仁村", "高家镇湖仁村"),
        ("沈家路8号 - 3幢", "沈家路8号3幢"),
        ("12-1号", "12-1号"),
        ("Fürst-Franz-Josef-Strasse 73", "fürst-franz-josef-strasse 73"),
        ("Landstrasse  12 ,9490   Vaduz", "landstrasse 12 9490 vaduz"),
        ("  - Im Gapetsch 5a -", "im gapetsch 5a"),
        ("St. John\u2019s Rd 5", "st johns rd 5"),
        ("a\u200bb", "ab"),
        ("A\u0308ulestrasse", "äulestrasse"),
        ("Landstrasse 12\u201312a", "landstrasse 12-12a"),
    ],
)
def test_normalize_general(text: str, expected: str) -> None:
    assert normalize_address(text) == expected


ADDRESS_ALPHABET = st.sampled_from(
    list(
        "省市区县镇乡街道村社组号幢栋楼单元室路巷弄大第小民居委会"
        "零〇一二两三四五六七八九十百千壹拾"
        "0123456789０１２３aAzZßäÄ-–—,，.。、 \u3000#/&'’()（）"
        "\u0301\u0308\u200b\u00ad\t"
    )
)


@settings(max_examples=400, deadline=None, database=None)
@given(st.text())
def test_normalize_idempotent_arbitrary(text: str) -> None:
    once = normalize_address(text)
    assert normalize_address(once) == once


@settings(max_examples=600, deadline=None, database=None)
@given(st.text(ADDRESS_ALPHABET, max_size=30))
def test_normalize_idempotent_address_like(text: str) -> None:
    once = normalize_address(text)
    assert normalize_address(once) == once


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.text(), st.text(ADDRESS_ALPHABET, max_size=30)))
def test_parse_never_raises_and_key_is_stable(text: str) -> None:
    parsed = parse_address(text)
    key = parsed.key
    assert key is None or isinstance(key, str)
    assert parse_address(normalize_address(text)).key == key
    assert address_keys([text]) == [key]
    assert normalize_many([text]) == [normalize_address(text) or None]


def test_lone_surrogates_do_not_raise() -> None:
    text = "高家镇\ud800湖仁村3组\udfff12号"
    assert normalize_address(normalize_address(text)) == normalize_address(text)
    parse_address(text)


def test_bulk_equals_scalar() -> None:
    values: list[str | None] = [t for t, _, _ in PARSE_CASES]
    values += [None, "", "  ", "高家镇湖仁村三组十二号", "Landstrasse 12, 9490 Vaduz"]
    values += [f"高家镇湖仁村{g}组{n}号" for g in range(1, 4) for n in range(1, 30)]
    assert normalize_many(values) == [normalize_address(v) or None for v in values]
    assert address_keys(values) == [parse_address(v).key for v in values]


def test_bulk_keys_of_20_000_addresses_are_distinct() -> None:
    """Every group and number of a big village keeps its own key (speed: bench/)."""
    values = [
        f"浙江省衢州市衢江区高家镇湖仁村{g}组{n}号"
        for g in range(1, 21)
        for n in range(1, 1001)
    ]
    keys = address_keys(values)
    assert len(set(keys)) == len(values) and None not in keys


@pytest.mark.parametrize(
    "module", [geo.address.normalize, geo.address.parse, geo.address.keys]
)
def test_doctests(module: types.ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
