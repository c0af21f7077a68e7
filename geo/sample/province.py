"""Seeded sample province (浙江省): cities → counties → townships → villages.

Each county is a :func:`~geo.sample.county.generate_county` county drawn with
its own seed, re-coded (12-digit codes of a real county of 浙江省), renamed and
moved onto its own tile of a grid of tiles so that counties never overlap.
Counties are generated one at a time (:meth:`SampleProvince.iter_counties`), so
a province of millions of households never has to sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.sample import county as _c
from geo.sample._county_geometry import (
    _as_multi,
    _county_polygon,
    _to_wgs_geoms,
    _transformer,
)
from geo.sample._county_households import _distribute, _plan_sizes

__all__ = [
    "PROVINCE_CODE",
    "CountySpec",
    "SampleProvince",
    "generate_province",
    "write_partition",
    "write_top",
]

PROVINCE_CODE = "330000000000"

# (city code prefix, city, landline area code, [(county code prefix, county), ...])
_CITIES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("3301", "杭州市", "0571", [
        ("330102", "上城区"), ("330105", "拱墅区"), ("330106", "西湖区"),
        ("330108", "滨江区"), ("330109", "萧山区"), ("330110", "余杭区"),
        ("330111", "富阳区"), ("330112", "临安区"), ("330122", "桐庐县"),
        ("330127", "淳安县"), ("330182", "建德市"),
    ]),
    ("3302", "宁波市", "0574", [
        ("330203", "海曙区"), ("330205", "江北区"), ("330206", "北仑区"),
        ("330211", "镇海区"), ("330212", "鄞州区"), ("330213", "奉化区"),
        ("330225", "象山县"), ("330226", "宁海县"), ("330281", "余姚市"),
        ("330282", "慈溪市"),
    ]),
    ("3303", "温州市", "0577", [
        ("330302", "鹿城区"), ("330303", "龙湾区"), ("330304", "瓯海区"),
        ("330305", "洞头区"), ("330324", "永嘉县"), ("330326", "平阳县"),
        ("330327", "苍南县"), ("330328", "文成县"), ("330329", "泰顺县"),
        ("330381", "瑞安市"), ("330382", "乐清市"),
    ]),
    ("3304", "嘉兴市", "0573", [
        ("330402", "南湖区"), ("330411", "秀洲区"), ("330421", "嘉善县"),
        ("330424", "海盐县"), ("330481", "海宁市"), ("330482", "平湖市"),
        ("330483", "桐乡市"),
    ]),
    ("3305", "湖州市", "0572", [
        ("330502", "吴兴区"), ("330503", "南浔区"), ("330521", "德清县"),
        ("330522", "长兴县"), ("330523", "安吉县"),
    ]),
    ("3306", "绍兴市", "0575", [
        ("330602", "越城区"), ("330603", "柯桥区"), ("330604", "上虞区"),
        ("330624", "新昌县"), ("330681", "诸暨市"), ("330683", "嵊州市"),
    ]),
    ("3307", "金华市", "0579", [
        ("330702", "婺城区"), ("330703", "金东区"), ("330723", "武义县"),
        ("330726", "浦江县"), ("330727", "磐安县"), ("330781", "兰溪市"),
        ("330782", "义乌市"), ("330783", "东阳市"), ("330784", "永康市"),
    ]),
    ("3308", "衢州市", "0570", [
        ("330802", "柯城区"), ("330803", "衢江区"), ("330822", "常山县"),
        ("330824", "开化县"), ("330825", "龙游县"), ("330881", "江山市"),
    ]),
    ("3309", "舟山市", "0580", [
        ("330902", "定海区"), ("330903", "普陀区"), ("330921", "岱山县"),
        ("330922", "嵊泗县"),
    ]),
    ("3310", "台州市", "0576", [
        ("331002", "椒江区"), ("331003", "黄岩区"), ("331004", "路桥区"),
        ("331022", "三门县"), ("331023", "天台县"), ("331024", "仙居县"),
        ("331081", "温岭市"), ("331082", "临海市"), ("331083", "玉环市"),
    ]),
    ("3311", "丽水市", "0578", [
        ("331102", "莲都区"), ("331121", "青田县"), ("331122", "缙云县"),
        ("331123", "遂昌县"), ("331124", "松阳县"), ("331125", "云和县"),
        ("331126", "庆元县"), ("331127", "景宁畲族自治县"), ("331181", "龙泉市"),
    ]),
]  # fmt: skip

MAX_COUNTIES = sum(len(c[3]) for c in _CITIES)
#: Tile size in degrees (lon, lat): wider than a county (~46 x 41 km at 29°N).
_TILE = (0.55, 0.45)
#: Lower-left tile's offset from the template county's location.
_ORIGIN = (0.0, 0.0)
#: At most this many counties per city while cities remain (more when needed).
_PER_CITY = 4


@dataclass(frozen=True)
class CountySpec:
    """Where and what one county of the sample province is."""

    index: int
    code: str  # 12 digits
    name: str
    city_code: str
    city: str
    phone_prefix: str
    households: int
    seed: int
    offset: tuple[float, float]  # degrees added to (lon, lat) of the template


@dataclass(frozen=True)
class SampleProvince:
    """A generated province: its upper areas at once, its counties one by one.

    Attributes
    ----------
    top : geopandas.GeoDataFrame
        The province and its cities (``code``, ``name``, ``level``,
        ``parent_code``, MultiPolygon ``geometry`` in EPSG:4326): each city is the
        union of its counties' outlines, the province the union of its cities.
    counties : tuple of CountySpec
        The counties in code order, with their household counts and seeds.

    Examples
    --------
    >>> p = generate_province(600, counties=3, seed=0)
    >>> p.top["level"].tolist()
    ['province', 'city']
    >>> [c.code for c in p.counties]
    ['330102000000', '330105000000', '330106000000']
    >>> sum(len(c.households) for c in p.iter_counties())
    600
    """

    top: gpd.GeoDataFrame
    counties: tuple[CountySpec, ...]

    def county(self, spec: CountySpec) -> _c.SampleCounty:
        """Generate one county of the province (deterministic)."""
        return _county(spec)

    def iter_counties(self) -> Iterator[_c.SampleCounty]:
        """Generate the counties one at a time, in code order."""
        for spec in self.counties:
            yield _county(spec)


def generate_province(
    n_households: int, *, counties: int = 20, seed: int = 0
) -> SampleProvince:
    """Plan a deterministic sample province of ``counties`` counties of 浙江省.

    Households are split over the counties unevenly (log-normal, at least 100
    each); counties fill cities in code order, at most four per city while
    cities remain (杭州市, 宁波市, ...). Only the province and city rows are built
    here; each county is generated when asked for.

    Parameters
    ----------
    n_households : int
        Exact total number of households (at least 100 per county).
    counties : int, default 20
        Number of counties, 1 to :data:`MAX_COUNTIES`.
    seed : int, default 0
        The same ``(n_households, counties, seed)`` gives identical frames.

    Raises
    ------
    ValueError
        For a count out of range (the message names the parameter).
    """
    n, k = int(n_households), int(counties)
    if not 1 <= k <= MAX_COUNTIES:
        raise ValueError(
            f"counties must be between 1 and {MAX_COUNTIES}, got {counties!r}"
        )
    if n < 100 * k:
        raise ValueError(
            f"n_households must be >= 100 per county ({100 * k}), got {n_households!r}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
    sizes = 100 + _distribute(n - 100 * k, rng.lognormal(0.0, 0.35, k))
    picked = _pick_counties(k)
    cols = int(np.ceil(np.sqrt(k)))
    specs = tuple(
        CountySpec(
            index=i,
            code=prefix + "000000",
            name=name,
            city_code=city_prefix + "00000000",
            city=city,
            phone_prefix=phone,
            households=int(sizes[i]),
            seed=int(np.random.SeedSequence([seed, k, i]).generate_state(1)[0]),
            offset=(
                _ORIGIN[0] + _TILE[0] * (i % cols),
                _ORIGIN[1] + _TILE[1] * (i // cols),
            ),
        )
        for i, (city_prefix, city, phone, prefix, name) in enumerate(picked)
    )
    return SampleProvince(top=_top_frame(specs), counties=specs)


def _pick_counties(k: int) -> list[tuple[str, str, str, str, str]]:
    per_city = max(_PER_CITY, -(-k // len(_CITIES)))
    out: list[tuple[str, str, str, str, str]] = []
    while True:
        for city_prefix, city, phone, members in _CITIES:
            for prefix, name in members[:per_city]:
                out.append((city_prefix, city, phone, prefix, name))
        if len(out) >= k:
            break
        out, per_city = [], per_city + 1
    chosen = out[:k]
    return sorted(chosen, key=lambda r: r[3])


def _outline(spec: CountySpec) -> shapely.Geometry:
    """The county's outline in EPSG:4326, replaying generate_county's first draws."""
    rng = np.random.default_rng(spec.seed)
    _plan_sizes(rng, spec.households)
    x0, y0 = _transformer(_c.WGS84, _c.METRIC).transform(*_c.CENTER_LONLAT)
    poly = _county_polygon(rng, x0, y0)
    wgs = _to_wgs_geoms(
        np.array([poly], dtype=object), _transformer(_c.METRIC, _c.WGS84)
    )
    return _shift(wgs, spec.offset)[0]


def _top_frame(specs: tuple[CountySpec, ...]) -> gpd.GeoDataFrame:
    outlines = [_outline(s) for s in specs]
    cities = sorted({(s.city_code, s.city) for s in specs})
    city_geoms = [
        _as_multi(
            shapely.union_all(
                [o for o, s in zip(outlines, specs, strict=True) if s.city_code == code]
            )
        )
        for code, _ in cities
    ]
    province = _as_multi(shapely.union_all(city_geoms))
    return gpd.GeoDataFrame(
        {
            "code": [PROVINCE_CODE] + [c for c, _ in cities],
            "name": [_c.PROVINCE] + [n for _, n in cities],
            "level": ["province"] + ["city"] * len(cities),
            "parent_code": [None] + [PROVINCE_CODE] * len(cities),
        },
        geometry=gpd.GeoSeries([province, *city_geoms], crs=_c.WGS84),
    )


def _shift(geoms: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    d = np.asarray(offset, dtype=float)
    return shapely.transform(
        np.asarray(geoms, dtype=object),
        lambda xy: np.round(xy + d, _c.COORD_DECIMALS),
    )


def _recode(values: pd.Series, prefix: str, start: int = 0) -> pd.Series:
    """Replace the template county's 6-digit prefix at ``start`` by ``prefix``."""
    s = values.astype("string")
    return s.str.slice(0, start) + prefix + s.str.slice(start + 6)


def _county(spec: CountySpec) -> _c.SampleCounty:
    base = _c.generate_county(spec.households, seed=spec.seed)
    prefix = spec.code[:6]
    areas = base.areas.copy()
    areas["code"] = _recode(areas["code"], prefix).astype(object)
    parent = _recode(areas["parent_code"], prefix)
    areas["parent_code"] = parent.astype(object).where(parent.notna(), None)
    top = areas["level"] == "county"
    areas.loc[top, "name"] = spec.name
    areas.loc[top, "parent_code"] = spec.city_code
    areas = areas.set_geometry(
        gpd.GeoSeries(
            _shift(areas.geometry.values, spec.offset), index=areas.index, crs=_c.WGS84
        )
    )

    hh = base.households.copy()
    hh["household_id"] = _recode(hh["household_id"], prefix, 1).astype(object)
    bid = _recode(hh["building_id"], prefix, 1)
    hh["building_id"] = bid.astype(object).where(bid.notna(), None)
    hh["area_code"] = _recode(hh["area_code"], prefix).astype(object)
    addr = hh["address"].astype(str)
    addr = addr.str.replace(
        _c.PROVINCE + _c.CITY + _c.COUNTY,
        _c.PROVINCE + spec.city + spec.name,
        regex=False,
    )
    addr = addr.str.replace(_c.CITY + _c.COUNTY, spec.city + spec.name, regex=False)
    addr = addr.str.replace(_c.COUNTY, spec.name, regex=False)
    hh["address"] = addr
    hh = hh.set_geometry(
        gpd.GeoSeries(
            _shift(hh.geometry.values, spec.offset), index=hh.index, crs=_c.WGS84
        )
    )

    people = base.people.copy()
    people["person_id"] = "P" + prefix + "-" + people["person_id"].str.slice(1)
    people["area_code"] = _recode(people["area_code"], prefix).astype(object)
    people["work_phone"] = people["work_phone"].str.replace(
        "0570-", spec.phone_prefix + "-", regex=False
    )

    barriers = base.barriers.copy()
    barriers["barrier_id"] = "BR" + prefix + "-" + barriers["barrier_id"].str.slice(2)
    barriers = barriers.set_geometry(
        gpd.GeoSeries(
            _shift(barriers.geometry.values, spec.offset),
            index=barriers.index,
            crs=_c.WGS84,
        )
    )
    return _c.SampleCounty(areas=areas, households=hh, people=people, barriers=barriers)


def write_partition(
    county: _c.SampleCounty, spec: CountySpec, out_dir: str | Path
) -> dict[str, Path]:
    """Write one county as GeoParquet partitions ``<layer>/county=<code>/part-0.parquet``.

    ``areas``, ``households``, ``people`` and ``barriers`` each get a directory
    that readers of hive-partitioned Parquet (pyarrow, dask-geopandas) take as
    one dataset with a ``county`` column. Existing partitions are overwritten.
    """
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    layers = {
        "areas": county.areas,
        "households": county.households,
        "people": county.people,
        "barriers": county.barriers,
    }
    for layer, frame in layers.items():
        path = out / layer / f"county={spec.code}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        paths[layer] = path
    return paths


def write_top(province: SampleProvince, out_dir: str | Path) -> Path:
    """Write the province and city rows as GeoParquet ``province.parquet``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "province.parquet"
    province.top.to_parquet(path, index=False)
    return path
