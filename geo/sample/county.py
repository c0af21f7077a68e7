"""Seeded generator of a realistic sample county (衢州市衢江区) for tests and demos."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["SampleCounty", "generate_county", "write_county"]

# --------------------------------------------------------------------------- constants

COUNTY_PREFIX = "330803"
COUNTY_CODE = COUNTY_PREFIX + "000000"
PROVINCE = "浙江省"
CITY = "衢州市"
COUNTY = "衢江区"

WGS84 = "EPSG:4326"
METRIC = "EPSG:32650"  # UTM 50N, metric CRS used for all construction
CENTER_LONLAT = (118.95, 29.0)

#: Inner margin (m) that keeps households strictly inside their area polygon.
EDGE_MARGIN_M = 5.0
#: Decimal places of every output coordinate (1e-7 degree ~ 1 cm).
COORD_DECIMALS = 7

FORMATS = ("gpkg", "geojson", "parquet", "csv")

_STREET_NAMES = ["樟潭", "浮石"]
_TOWN_NAMES = [
    "廿里",
    "后溪",
    "莲花",
    "上方",
    "峡川",
    "杜泽",
    "高家",
    "湖南",
    "大洲",
    "全旺",
]
_XIANG_NAMES = ["太真", "灰坪", "周家", "岭洋", "黄坛口", "举村", "双桥", "云溪"]

_PLACE_A = list(
    "湖沈上下大小东西南北高黄石新马杨龙凤桥塘溪坑山岭林柳梅竹茶花樟杜后前中双"
    "三五九白青金银铜田横长周王徐吴郑毛余叶方姜祝汪邵莲峡举云岩坂湾"
)
_PLACE_B = list(
    "仁家坞源头口坪田塘溪山岭桥湾畈垄埠店庄岙墩洋川里坂坑门渡潭滩岗亭园林圩陇殿庙宅阳泽江"
)
_ROAD_SUFFIX = ["路", "路", "路", "街", "大道"]

_SURNAMES = list(
    "徐王吴郑毛汪叶余方姜祝周陈李张刘杨黄胡朱邵程柴童占郭何林赵孙马高谢罗宋唐许韩冯"
    "邓曹彭曾肖田董袁潘蒋蔡杜苏魏吕丁沈姚卢钟陆范金石夏江傅应翁楼雷龚鲍"
)
_GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国文红玲林斌海波辉鹏宇浩俊峰燕"
    "婷雪梅兰萍琴云飞志永春晓东新荣金福根水生亮德仁义礼智信忠良松柏宏振兴旺达成卫民庆"
    "祥瑞丹颖慧欣怡佳琳晨阳凯鑫锋然婕"
)
_MOBILE_PREFIX = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "180", "181", "182", "183",
    "186", "187", "188", "189", "198", "199",
]  # fmt: skip

# (units, floors, rooms per floor) of ordinary apartment buildings: 20-120 households
_APT_CONFIGS = np.array(
    [
        (2, 5, 2), (3, 6, 2), (4, 6, 2), (2, 11, 2), (2, 18, 2), (2, 26, 2),
        (3, 18, 2), (1, 33, 3), (2, 15, 3), (3, 7, 2), (4, 7, 2), (2, 30, 2),
        (6, 5, 2), (2, 6, 2), (3, 11, 2),
    ]
)  # fmt: skip
# very large buildings (> 300 households) that need splitting across grids
_BIG_CONFIGS = np.array(
    [(5, 32, 2), (3, 33, 4), (6, 30, 2), (4, 26, 4), (8, 28, 2), (6, 34, 3)]
)

_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

# people per household, index = number of people
_P_RURAL = np.array([0.08, 0.14, 0.24, 0.22, 0.18, 0.09, 0.05])
_P_URBAN = np.array([0.12, 0.18, 0.28, 0.25, 0.11, 0.04, 0.02])

# (kind, name, half width of the no-household corridor in m)
_BARRIER_SPECS = [
    ("river", "衢江", 150.0),
    ("river", "乌溪江", 60.0),
    ("main_road", "G320国道", 20.0),
    ("main_road", "G60沪昆高速", 30.0),
    ("main_road", "S222省道", 15.0),
    ("railway", "沪昆铁路", 20.0),
]


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SampleCounty:
    """A generated county: areas, households, people and linear barriers.

    All geometries are in EPSG:4326 (lon, lat), rounded to 7 decimals.

    Attributes
    ----------
    areas : geopandas.GeoDataFrame
        ``code``, ``name``, ``level`` (``county``, ``township``, ``village``,
        ``community``), ``parent_code`` and MultiPolygon ``geometry``. Townships
        tile the county, villages/communities tile their township exactly.
    households : geopandas.GeoDataFrame
        ``household_id``, ``address``, ``people``, ``building_id``, ``unit``,
        ``area_code`` (the village/community containing the point) and Point
        ``geometry``. Apartment households share the building point;
        ``building_id`` and ``unit`` are missing (NA) for houses.
    people : pandas.DataFrame
        ``person_id``, ``name``, ``role`` (``grid_worker``, ``grid_leader``,
        ``party_member``; ``village_committee`` once per village/community and
        ``township_office`` once per township, who handle 村事 and 政事),
        ``work_phone`` and ``area_code``.
    barriers : geopandas.GeoDataFrame
        ``barrier_id``, ``kind`` (``river``, ``main_road``, ``railway``),
        ``name`` and LineString ``geometry``.

    Examples
    --------
    >>> county = generate_county(2_000, seed=1)
    >>> sorted(county.areas["level"].unique())
    ['community', 'county', 'township', 'village']
    """

    areas: gpd.GeoDataFrame
    households: gpd.GeoDataFrame
    people: pd.DataFrame
    barriers: gpd.GeoDataFrame


def generate_county(n_households: int = 20_000, *, seed: int = 0) -> SampleCounty:
    """Generate a deterministic, realistic county around 衢州市衢江区 (code 330803).

    The county holds one or two dense 街道 (sub-districts made of communities
    with apartment buildings) and rural 镇/乡 townships made of villages whose
    households cluster in hamlets (自然村). Village sizes always include some
    villages under 200 households, some with 300-400 households and large
    villages/communities with 1,000+ households (for ``n_households >= 2000``);
    a few apartment buildings hold more than 300 households.

    Parameters
    ----------
    n_households : int, default 20_000
        Exact number of households to generate (at least 100). The number of
        townships and villages scales with it.
    seed : int, default 0
        Seed of :func:`numpy.random.default_rng`; the same ``(n_households,
        seed)`` always gives identical frames.

    Returns
    -------
    SampleCounty
        Areas, households, people and barriers, all in EPSG:4326.

    Raises
    ------
    ValueError
        If ``n_households`` is below 100.

    Examples
    --------
    >>> county = generate_county(5_000, seed=0)
    >>> len(county.households)
    5000
    >>> county.areas.crs.to_epsg()
    4326
    >>> county.areas.iloc[0][["code", "name", "level"]].tolist()
    ['330803000000', '衢江区', 'county']
    """
    n = int(n_households)
    if n < 100:
        raise ValueError(f"n_households must be >= 100, got {n_households!r}")
    rng = np.random.default_rng(seed)
    comm_sizes, rural_sizes = _plan_sizes(rng, n)
    geo = _geography(rng, len(comm_sizes), len(rural_sizes))
    plan = _townships(rng, geo, comm_sizes, rural_sizes)
    to_wgs = _transformer(METRIC, WGS84)
    areas = _area_frame(plan, geo, to_wgs)
    households = _household_frame(rng, plan, geo, to_wgs)
    people = _make_people(
        rng,
        township_codes=[plan.t_code[t] for t in plan.t_order],
        area_codes=[r.code for r in plan.rows],
        area_sizes=[int(plan.sizes[r.cell]) for r in plan.rows],
    )
    barriers = gpd.GeoDataFrame(
        {
            "barrier_id": [f"BR{j + 1:03d}" for j in range(len(_BARRIER_SPECS))],
            "kind": [spec[0] for spec in _BARRIER_SPECS],
            "name": [spec[1] for spec in _BARRIER_SPECS],
        },
        geometry=gpd.GeoSeries(
            _to_wgs_geoms(np.array(geo.lines, dtype=object), to_wgs), crs=WGS84
        ),
    )
    return SampleCounty(
        areas=areas, households=households, people=people, barriers=barriers
    )


def write_county(
    county: SampleCounty, out_dir: str | Path, *, fmt: str = "gpkg"
) -> dict[str, Path]:
    """Write a :class:`SampleCounty` to ``out_dir``, one file per layer.

    ``people`` is always written as UTF-8 CSV (``people.csv``). The spatial
    layers ``areas``, ``households`` and ``barriers`` are written as

    * ``gpkg``: GeoPackage files ``areas.gpkg``, ``households.gpkg``, ``barriers.gpkg``;
    * ``geojson``: ``*.geojson`` (UTF-8, 7 coordinate decimals);
    * ``parquet``: GeoParquet ``*.parquet``;
    * ``csv``: ``households.csv`` with ``lon``/``lat`` columns instead of a
      geometry, while ``areas`` and ``barriers`` go to GeoJSON.

    Existing files are overwritten.

    Parameters
    ----------
    county : SampleCounty
        The county to write, e.g. from :func:`generate_county`.
    out_dir : str or pathlib.Path
        Target directory, created if missing.
    fmt : {"gpkg", "geojson", "parquet", "csv"}, default "gpkg"
        Output format of the spatial layers.

    Returns
    -------
    dict of str to pathlib.Path
        Paths keyed by layer name: ``areas``, ``households``, ``people``, ``barriers``.

    Raises
    ------
    ValueError
        If ``fmt`` is not one of the supported formats.

    Examples
    --------
    >>> import tempfile
    >>> county = generate_county(2_000, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = write_county(county, tmp, fmt="geojson")
    ...     sorted(p.name for p in paths.values())
    ['areas.geojson', 'barriers.geojson', 'households.geojson', 'people.csv']
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    layers = {
        "areas": county.areas,
        "households": county.households,
        "barriers": county.barriers,
    }
    for layer, gdf in layers.items():
        if fmt == "csv" and layer == "households":
            path = out / "households.csv"
            frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
            frame["lon"] = np.round(gdf.geometry.x.to_numpy(), COORD_DECIMALS)
            frame["lat"] = np.round(gdf.geometry.y.to_numpy(), COORD_DECIMALS)
            frame.to_csv(path, index=False, encoding="utf-8")
        elif fmt in ("geojson", "csv"):
            path = out / f"{layer}.geojson"
            path.unlink(missing_ok=True)
            gdf.to_file(
                path,
                driver="GeoJSON",
                engine="pyogrio",
                layer_options={
                    "COORDINATE_PRECISION": COORD_DECIMALS,
                    "WRITE_NAME": "NO",
                },
            )
        elif fmt == "gpkg":
            path = out / f"{layer}.gpkg"
            path.unlink(missing_ok=True)
            gdf.to_file(path, driver="GPKG", layer=layer, engine="pyogrio")
        else:
            path = out / f"{layer}.parquet"
            gdf.to_parquet(path, index=False)
        paths[layer] = path
    people_path = out / "people.csv"
    county.people.to_csv(people_path, index=False, encoding="utf-8")
    paths["people"] = people_path
    return {k: paths[k] for k in ("areas", "households", "people", "barriers")}


# --------------------------------------------------------------------------- layout


@dataclass
class _Geography:
    """Metric base geography: outline, barriers, town and area cells."""

    county: Polygon
    river_y: Callable[[np.ndarray], np.ndarray]
    town: Point
    r_town: float
    lines: list[LineString]
    forbidden: BaseGeometry  # no-household corridors along the barriers
    seeds: np.ndarray  # (n, 2), communities first
    is_comm: np.ndarray
    cells: np.ndarray  # Voronoi cells of the seeds clipped to the county
    origin: tuple[float, float]


@dataclass
class _Area:
    code: str
    name: str
    level: str
    parent: str
    cell: int  # index into _Geography.cells


@dataclass
class _Plan:
    """Township assignment, codes and names of all areas."""

    labels: np.ndarray  # township label per cell
    sizes: np.ndarray  # households per cell
    comm_sizes: np.ndarray
    t_order: list[int]  # township labels in code order
    t_code: list[str]
    t_name: list[str]
    rows: list[_Area]  # villages/communities in code order


def _geography(rng: np.random.Generator, n_comm: int, n_rural: int) -> _Geography:
    x0, y0 = _transformer(WGS84, METRIC).transform(*CENTER_LONLAT)
    county = _county_polygon(rng, x0, y0)
    river_y = _river_profile(rng, x0, y0)
    town = Point(x0 - 5_000.0, float(river_y(np.array([x0 - 5_000.0]))[0]))
    lines = _barrier_lines(rng, county, river_y, town)
    forbidden = shapely.union_all(
        [
            line.buffer(spec[2], quad_segs=4)
            for line, spec in zip(lines, _BARRIER_SPECS, strict=True)
        ]
    )
    shapely.prepare(forbidden)

    # dense community seeds around the town, well-spread village seeds elsewhere
    r_town = float(np.clip(np.sqrt(n_comm * 0.7e6 / np.pi), 1_500.0, 5_000.0))
    comm_seeds = _community_seeds(rng, county, town, r_town, n_comm)
    rural_area = county.area - np.pi * r_town**2
    s_rural = np.sqrt(rural_area / max(n_rural, 1))
    region = shapely.difference(
        county.buffer(-0.25 * s_rural), town.buffer(r_town + 0.45 * s_rural)
    )
    if region.is_empty or region.area < 0.2 * rural_area:
        region = shapely.difference(
            county.buffer(-500.0), town.buffer(r_town + 1_000.0)
        )
    seeds = np.vstack([comm_seeds, _spread_points(rng, region, n_rural)])
    is_comm = np.arange(len(seeds)) < n_comm
    return _Geography(
        county=county,
        river_y=river_y,
        town=town,
        r_town=r_town,
        lines=lines,
        forbidden=forbidden,
        seeds=seeds,
        is_comm=is_comm,
        cells=_voronoi_cells(seeds, county),
        origin=(x0, y0),
    )


def _townships(
    rng: np.random.Generator,
    geo: _Geography,
    comm_sizes: np.ndarray,
    rural_sizes: np.ndarray,
) -> _Plan:
    """Group cells into townships; choose kinds, codes and names."""
    n_comm, n_rural = len(comm_sizes), len(rural_sizes)
    n_streets = 2 if n_comm >= 16 else 1
    n_rural_t = max(1, round(n_rural / 15))
    if n_rural >= 4:
        n_rural_t = max(n_rural_t, 2)
    cells, is_comm = geo.cells, geo.is_comm
    rural_seeds = geo.seeds[n_comm:]

    labels = np.empty(len(cells), dtype=np.int64)
    labels[:n_comm] = _split_streets(geo.seeds[:n_comm], geo.river_y, n_streets)
    rural_labels = _kmeans(rng, rural_seeds, n_rural_t)
    n_rural_t = int(rural_labels.max()) + 1  # k-means may leave a cluster empty
    labels[n_comm:] = n_streets + rural_labels
    n_t = n_streets + n_rural_t
    labels = _fix_contiguity(cells, labels)

    # communities keep their planned sizes; bigger rural villages tend to lie
    # closer to the town (plains), small ones in the hills
    sizes = np.empty(len(cells), dtype=np.int64)
    sizes[:n_comm] = comm_sizes
    dist = np.hypot(rural_seeds[:, 0] - geo.town.x, rural_seeds[:, 1] - geo.town.y)
    score = dist / max(dist.max(), 1.0) + rng.normal(0.0, 0.35, n_rural)
    sizes[n_comm:][np.argsort(score, kind="stable")] = np.sort(rural_sizes)[::-1]

    # kinds: the busiest rural townships are 镇, the rest 乡
    t_hh = np.bincount(labels, weights=sizes, minlength=n_t)
    t_cent = np.array(
        [shapely.union_all(cells[labels == t]).centroid.coords[0] for t in range(n_t)]
    )
    t_kind = ["街道"] * n_streets + [""] * n_rural_t
    rural_ts = np.arange(n_streets, n_t)
    n_zhen = min(max(1, int(np.ceil(0.6 * n_rural_t))), max(1, n_rural_t - 1))
    for rank, t in enumerate(rural_ts[np.argsort(-t_hh[rural_ts], kind="stable")]):
        t_kind[t] = "镇" if rank < n_zhen else "乡"

    # codes: 街道 001.., 镇 100.., 乡 200..; clockwise from north
    t_code = [""] * n_t
    for kind, first in (("街道", 1), ("镇", 100), ("乡", 200)):
        members = [t for t in range(n_t) if t_kind[t] == kind]
        for k, j in enumerate(_angular_order(t_cent[members], *geo.origin)):
            t_code[members[j]] = f"{COUNTY_PREFIX}{first + k:03d}000"
    t_order = sorted(range(n_t), key=lambda t: t_code[t])
    t_name = [""] * n_t
    names = _township_names(rng, [t_kind[t] for t in t_order])
    for t, name in zip(t_order, names, strict=True):
        t_name[t] = name

    # villages 201.., communities 001.., clockwise inside their township
    place = _unique_names(rng, len(cells), exclude=set(t_name))
    rows: list[_Area] = []
    for t in t_order:
        mine = np.flatnonzero(labels == t)
        cent = shapely.get_coordinates(shapely.centroid(cells[mine]))
        order = _angular_order(cent, *t_cent[t])
        seq = {"community": 1, "village": 201}
        for j in sorted(order, key=lambda j: not is_comm[mine[j]]):
            i = int(mine[j])
            level = "community" if is_comm[i] else "village"
            name = place[i] + ("社区" if is_comm[i] else "村")
            rows.append(
                _Area(f"{t_code[t][:9]}{seq[level]:03d}", name, level, t_code[t], i)
            )
            seq[level] += 1
    return _Plan(
        labels=labels,
        sizes=sizes,
        comm_sizes=comm_sizes,
        t_order=t_order,
        t_code=t_code,
        t_name=t_name,
        rows=rows,
    )


def _area_frame(plan: _Plan, geo: _Geography, to_wgs: Transformer) -> gpd.GeoDataFrame:
    """Areas in EPSG:4326; parents are coverage unions of their children."""
    rows = plan.rows
    leaf = _to_wgs_geoms(geo.cells[[r.cell for r in rows]], to_wgs)
    parent = np.array([r.parent for r in rows], dtype=object)
    towns = [
        _as_multi(_coverage_union(leaf[parent == plan.t_code[t]])) for t in plan.t_order
    ]
    county = _as_multi(_coverage_union(np.array(towns, dtype=object)))
    n_t = len(plan.t_order)
    return gpd.GeoDataFrame(
        {
            "code": [COUNTY_CODE]
            + [plan.t_code[t] for t in plan.t_order]
            + [r.code for r in rows],
            "name": [COUNTY]
            + [plan.t_name[t] for t in plan.t_order]
            + [r.name for r in rows],
            "level": ["county"] + ["township"] * n_t + [r.level for r in rows],
            "parent_code": [None] + [COUNTY_CODE] * n_t + [r.parent for r in rows],
        },
        geometry=gpd.GeoSeries([county, *towns, *leaf], crs=WGS84),
    )


def _household_frame(
    rng: np.random.Generator, plan: _Plan, geo: _Geography, to_wgs: Transformer
) -> gpd.GeoDataFrame:
    """Households of every village/community, in code order."""
    cells = geo.cells[[r.cell for r in plan.rows]]
    inner = shapely.buffer(cells, -EDGE_MARGIN_M)
    hit = shapely.intersects(inner, geo.forbidden)
    allowed = inner.copy()
    allowed[hit] = shapely.difference(inner[hit], geo.forbidden)
    small = shapely.area(allowed) < 0.05 * shapely.area(inner)
    allowed[small] = inner[small]

    # very large buildings (> 300 households) go to the largest communities
    comm_sizes = plan.comm_sizes
    n_comm = len(comm_sizes)
    n_big = 1 + int(comm_sizes.sum()) // 40_000
    big_rank = np.empty(n_comm, dtype=np.int64)
    big_rank[np.argsort(-comm_sizes, kind="stable")] = np.arange(n_comm)
    town_zone = geo.town.buffer(1.15 * geo.r_town)
    street_roads: dict[str, dict[str, int]] = {}
    t_name = {plan.t_code[t]: plan.t_name[t] for t in plan.t_order}
    chunks: list[_Chunk] = []
    for region, row in zip(allowed, plan.rows, strict=True):
        size = int(plan.sizes[row.cell])
        shapely.prepare(region)
        if row.level == "community":
            zone = shapely.intersection(region, town_zone)
            if zone.is_empty or zone.area < min(0.25e6, 0.2 * region.area):
                zone = region
            shapely.prepare(zone)
            n_big_here = -(-(n_big - int(big_rank[row.cell])) // n_comm)
            chunk = _urban_households(
                rng,
                zone,
                size,
                row.code,
                street_roads.setdefault(row.parent, {}),
                n_big=max(0, n_big_here) if size >= 700 else 0,
            )
        else:
            chunk = _rural_households(rng, region, size, row.code)
        # community addresses name the road, not the community
        chunk.place = t_name[row.parent] + (row.name if row.level == "village" else "")
        chunks.append(chunk)
    return _assemble_households(rng, chunks, to_wgs)


# --------------------------------------------------------------------------- sizes


def _distribute(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (exact sum)."""
    w = np.asarray(weights, dtype=float)
    raw = w / w.sum() * total
    base = np.floor(raw).astype(np.int64)
    rest = int(total - base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return base


def _split(
    rng: np.random.Generator, total: int, parts: int, *, floor: int, sigma: float
) -> np.ndarray:
    """Lognormal-ish split of ``total`` into ``parts`` sizes, each ``>= floor``."""
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    parts = max(1, min(parts, total // max(floor, 1)))
    floor = min(floor, total // parts)
    w = rng.lognormal(0.0, sigma, parts)
    return floor + _distribute(total - floor * parts, w)


def _plan_sizes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Household counts of communities (dense town) and rural villages."""
    logn = np.log10(n)
    n_town = max(round(0.3 * n), min(1_050, round(0.6 * n)))
    avg_comm = float(
        np.interp(logn, [3.3, 4.3, 5.3, 6.0], [1_050, 1_800, 3_000, 5_500])
    )
    n_comm = max(1, round(n_town / avg_comm))
    comm = _split(rng, n_town, n_comm, floor=min(700, n_town), sigma=0.4)

    n_rural = n - n_town
    m_v = float(np.interp(logn, [3.3, 4.3, 5.3, 6.0], [260, 380, 600, 950]))
    n_v = max(1, round(n_rural / m_v))
    k_small = k_mid = max(2 if n < 5_000 else 3, round(0.08 * n_v))
    k_large = max(1, round(0.03 * n_v)) if n_rural >= 8_000 else 0
    reserve = 40
    while (
        k_small * 40 + k_mid * 300 + k_large * 1_000 + reserve > n_rural
        and k_small + k_mid + k_large
    ):
        if k_large:
            k_large -= 1
        elif k_mid >= k_small and k_mid:
            k_mid -= 1
        else:
            k_small -= 1
    span = k_small * 150 + k_mid * 95 + k_large * 1_200
    need = k_small * 40 + k_mid * 300 + k_large * 1_000
    frac = float(np.clip((n_rural - reserve - need) / max(span, 1), 0.0, 1.0))
    special = np.concatenate(
        [
            40 + np.floor(rng.random(k_small) * 150 * frac),
            300 + np.floor(rng.random(k_mid) * 95 * frac),
            1_000 + np.floor(rng.random(k_large) * 1_200 * frac),
        ]
    ).astype(np.int64)
    rest = n_rural - int(special.sum())
    n_reg = max(1, n_v - len(special))
    regular = _split(rng, rest, n_reg, floor=30, sigma=0.6)
    return comm, np.concatenate([special, regular])


# --------------------------------------------------------------------------- geometry


@lru_cache(maxsize=8)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _to_wgs_geoms(geoms: np.ndarray, to_wgs: Transformer) -> np.ndarray:
    """Reproject metric geometries to EPSG:4326 rounded to 7 decimals."""

    def fn(coords: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs.transform(coords[:, 0], coords[:, 1])
        return np.round(np.column_stack([lon, lat]), COORD_DECIMALS)

    out = shapely.transform(geoms, fn)
    bad = ~shapely.is_valid(out)
    if bad.any():  # pragma: no cover - rounding at 1 cm practically never breaks cells
        out[bad] = shapely.make_valid(out[bad])
    polys = shapely.get_type_id(out) == 3
    out[polys] = [MultiPolygon([g]) for g in out[polys]]
    return out


def _as_multi(g: BaseGeometry) -> MultiPolygon:
    if isinstance(g, MultiPolygon):
        return g
    if isinstance(g, Polygon):
        return MultiPolygon([g])
    polys = [p for p in shapely.get_parts(g) if isinstance(p, Polygon)]
    return MultiPolygon(polys)


def _coverage_union(geoms: np.ndarray) -> BaseGeometry:
    """Union of an exact polygon coverage, keeping every boundary vertex."""
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) == 1:
        return geoms[0]
    if shapely.coverage_is_valid(geoms):
        return shapely.coverage_union_all(geoms)
    return shapely.union_all(geoms)  # pragma: no cover


def _county_polygon(rng: np.random.Generator, x0: float, y0: float) -> Polygon:
    """Irregular, star-shaped county outline (~ 38 x 34 km)."""
    theta = np.linspace(0.0, 2 * np.pi, 361)[:-1]
    r = np.ones_like(theta)
    for k, amp in ((2, 0.07), (3, 0.06), (5, 0.035), (8, 0.02), (13, 0.01)):
        r += amp * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    r += rng.normal(0.0, 0.004, theta.size)
    x = x0 + 19_000.0 * r * np.cos(theta)
    y = y0 + 17_000.0 * r * np.sin(theta)
    return shapely.make_valid(Polygon(np.column_stack([x, y])))


def _river_profile(
    rng: np.random.Generator, x0: float, y0: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Callable ``y(x)`` of the 衢江 centreline: flows ENE with meanders."""
    phases = rng.uniform(0, 2 * np.pi, 3)

    def y(x: np.ndarray) -> np.ndarray:
        d = x - x0
        out = y0 + 1_500.0 + 0.1 * d
        for amp, lam, ph in zip(
            (1_200.0, 500.0, 200.0), (18_000.0, 7_000.0, 2_500.0), phases, strict=True
        ):
            out = out + amp * np.sin(2 * np.pi * d / lam + ph)
        return out

    return y


def _wiggle(
    rng: np.random.Generator,
    t: np.ndarray,
    amps: tuple[float, ...],
    lams: tuple[float, ...],
) -> np.ndarray:
    out = np.zeros_like(t)
    for amp, lam in zip(amps, lams, strict=True):
        out += amp * np.sin(2 * np.pi * t / lam + rng.uniform(0, 2 * np.pi))
    return out


def _longest_inside(line: LineString, county: Polygon) -> LineString:
    clipped = shapely.intersection(line, county.buffer(300.0))
    parts = [p for p in shapely.get_parts(shapely.line_merge(clipped)) if p.length > 0]
    return max(parts, key=lambda p: p.length)


def _barrier_lines(
    rng: np.random.Generator,
    county: Polygon,
    river_y: Callable[[np.ndarray], np.ndarray],
    town: Point,
) -> list[LineString]:
    """Rivers, roads and railway crossing the county (order of ``_BARRIER_SPECS``)."""
    minx, miny, maxx, maxy = county.bounds
    xs = np.arange(minx - 3_000.0, maxx + 3_000.0, 250.0)
    ys = np.arange(miny - 3_000.0, maxy + 3_000.0, 250.0)
    x0 = 0.5 * (minx + maxx)
    # 衢江
    qu = LineString(np.column_stack([xs, river_y(xs)]))
    # 乌溪江: from the southern hills north to the confluence just east of the town
    cx = town.x + 1_500.0
    cy = float(river_y(np.array([cx]))[0])
    yy = ys[ys < cy]
    wx = (
        cx
        + 0.15 * (cy - yy)
        + _wiggle(rng, yy, (900.0, 300.0), (9_000.0, 2_800.0))
        * np.clip((cy - yy) / 2_000.0, 0, 1)
    )
    wu = LineString(np.vstack([np.column_stack([wx, yy]), [[cx, cy]]]))
    # G320: along the north bank, through the town
    g320 = LineString(
        np.column_stack(
            [
                xs,
                _trend(river_y, xs) + 1_400.0 + _wiggle(rng, xs, (250.0,), (6_000.0,)),
            ]
        )
    )
    # G60 expressway further north, straighter
    g60 = LineString(
        np.column_stack(
            [
                xs,
                _trend(river_y, xs)
                + 8_500.0
                + 0.05 * (xs - x0)
                + _wiggle(rng, xs, (500.0,), (22_000.0,)),
            ]
        )
    )
    # S222: north-south provincial road passing west of the town
    sx = town.x - 2_500.0 + _wiggle(rng, ys, (700.0, 200.0), (14_000.0, 4_000.0))
    s222 = LineString(np.column_stack([sx, ys]))
    # 沪昆铁路
    rail = LineString(
        np.column_stack(
            [
                xs,
                _trend(river_y, xs)
                + 4_200.0
                + 0.04 * (xs - x0)
                + _wiggle(rng, xs, (300.0,), (30_000.0,)),
            ]
        )
    )
    return [_longest_inside(g, county) for g in (qu, wu, g320, g60, s222, rail)]


def _trend(river_y: Callable[[np.ndarray], np.ndarray], xs: np.ndarray) -> np.ndarray:
    """Smoothed river course (moving average over ~6 km)."""
    y = river_y(xs)
    k = 25
    pad = np.pad(y, k, mode="edge")
    return np.convolve(pad, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")


def _spread_points(
    rng: np.random.Generator, region: BaseGeometry, n: int
) -> np.ndarray:
    """Exactly ``n`` well-spread points inside ``region`` (jittered grid subset)."""
    if n == 0:
        return np.zeros((0, 2))
    shapely.prepare(region)
    minx, miny, maxx, maxy = region.bounds
    s = np.sqrt(region.area / (n * 1.15))
    for _ in range(60):
        gx, gy = np.meshgrid(
            np.arange(minx + s / 2, maxx, s), np.arange(miny + s / 2, maxy, s)
        )
        gx = gx.ravel() + rng.uniform(-0.35 * s, 0.35 * s, gx.size)
        gy = gy.ravel() + rng.uniform(-0.35 * s, 0.35 * s, gy.size)
        ok = shapely.contains_xy(region, gx, gy)
        if ok.sum() >= n:
            pts = np.column_stack([gx[ok], gy[ok]])
            pick = np.sort(rng.choice(len(pts), n, replace=False))
            return pts[pick]
        s *= 0.9
    raise RuntimeError("could not place seed points")  # pragma: no cover


def _community_seeds(
    rng: np.random.Generator, county: Polygon, town: Point, r_town: float, n: int
) -> np.ndarray:
    if n == 1:
        return np.array(
            [[town.x + rng.uniform(-100, 100), town.y + rng.uniform(-100, 100)]]
        )
    region = shapely.intersection(town.buffer(r_town), county.buffer(-300.0))
    return _spread_points(rng, region, n)


def _voronoi_cells(seeds: np.ndarray, county: Polygon) -> np.ndarray:
    """Voronoi cells of ``seeds`` (in seed order) clipped to the county."""
    if len(seeds) == 1:
        return np.array([county], dtype=object)
    vor = shapely.voronoi_polygons(
        shapely.multipoints(seeds), extend_to=county.buffer(10_000.0), ordered=True
    )
    cells = shapely.get_parts(vor)
    if len(cells) != len(seeds):  # pragma: no cover
        raise RuntimeError("voronoi cell count mismatch")
    return shapely.intersection(cells, county)


def _kmeans(
    rng: np.random.Generator, pts: np.ndarray, k: int, iters: int = 25
) -> np.ndarray:
    """Plain Lloyd k-means labels with farthest-point initialisation."""
    if k <= 1:
        return np.zeros(len(pts), dtype=np.int64)
    centers = [pts[rng.integers(len(pts))]]
    d2 = ((pts - centers[0]) ** 2).sum(1)
    for _ in range(k - 1):
        centers.append(pts[int(np.argmax(d2))])
        d2 = np.minimum(d2, ((pts - centers[-1]) ** 2).sum(1))
    c = np.array(centers)
    labels = np.zeros(len(pts), dtype=np.int64)
    for _ in range(iters):
        labels = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(2).argmin(1)
        for j in range(k):
            m = labels == j
            if m.any():
                c[j] = pts[m].mean(0)
    # relabel in order of first appearance for stability
    _, first = np.unique(labels, return_index=True)
    remap = np.empty(k, dtype=np.int64)
    remap[labels[np.sort(first)]] = np.arange(len(first))
    return remap[labels]


def _split_streets(
    comm: np.ndarray, river_y: Callable[[np.ndarray], np.ndarray], n_streets: int
) -> np.ndarray:
    """Township label (0 or 1) of each community: north / south of the river."""
    if n_streets == 1:
        return np.zeros(len(comm), dtype=np.int64)
    north = comm[:, 1] > river_y(comm[:, 0])
    if 0.3 <= north.mean() <= 0.7:
        return (~north).astype(np.int64)
    return (comm[:, 0] > np.median(comm[:, 0])).astype(np.int64)


def _fix_contiguity(
    cells: np.ndarray, labels: np.ndarray, max_iter: int = 20
) -> np.ndarray:
    """Reassign cells so that every township is one connected polygon."""
    labels = labels.copy()
    tree = shapely.STRtree(cells)
    for _ in range(max_iter):
        changed = False
        for t in np.unique(labels):
            idx = np.flatnonzero(labels == t)
            parts = shapely.get_parts(shapely.union_all(cells[idx]))
            if len(parts) <= 1:
                continue
            main = parts[int(np.argmax(shapely.area(parts)))]
            stray = idx[~shapely.intersects(main, shapely.point_on_surface(cells[idx]))]
            for i in stray:
                nbrs = [
                    j
                    for j in tree.query(cells[i], predicate="intersects")
                    if labels[j] != t
                ]
                if not nbrs:
                    continue
                shared = shapely.length(
                    shapely.intersection(
                        shapely.boundary(cells[i]), shapely.boundary(cells[nbrs])
                    )
                )
                labels[i] = labels[nbrs[int(np.argmax(shared))]]
                changed = True
        if not changed:
            break
    return labels


def _angular_order(pts: np.ndarray, cx: float, cy: float) -> list[int]:
    """Indices of ``pts`` clockwise from north around ``(cx, cy)``."""
    pts = np.asarray(pts, dtype=float).reshape(-1, 2)
    ang = np.mod(np.arctan2(pts[:, 0] - cx, pts[:, 1] - cy), 2 * np.pi)
    return [int(i) for i in np.argsort(ang, kind="stable")]


# --------------------------------------------------------------------------- names


def _township_names(rng: np.random.Generator, kinds: list[str]) -> list[str]:
    pools = {
        "街道": list(_STREET_NAMES),
        "镇": list(_TOWN_NAMES),
        "乡": list(_XIANG_NAMES),
    }
    used = {n for pool in pools.values() for n in pool}
    extra = iter(_unique_names(rng, len(kinds), exclude=used))
    out = []
    for kind in kinds:
        pool = pools[kind]
        out.append((pool.pop(0) if pool else next(extra)) + kind)
    return out


def _unique_names(
    rng: np.random.Generator,
    k: int,
    *,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """``k`` distinct two-character place names (湖仁, 沈家, ...)."""
    na, nb = len(_PLACE_A), len(_PLACE_B)
    out: list[str] = []
    seen = set(exclude)
    for flat in rng.permutation(na * nb):
        name = _PLACE_A[flat // nb] + _PLACE_B[flat % nb]
        if name[0] == name[1] or name in seen:
            continue
        seen.add(name)
        out.append(name)
        if len(out) == k:
            return out
    # more names than two-character combinations: add a third character
    i = 0
    while len(out) < k:
        name = (
            _PLACE_A[i % na]
            + _PLACE_B[(i // na) % nb]
            + _PLACE_B[(i // (na * nb)) % nb]
        )
        i += 1
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _person_names(rng: np.random.Generator, n: int) -> list[str]:
    rank = np.arange(1, len(_SURNAMES) + 1)
    p = 1.0 / rank**0.9
    sur = rng.choice(len(_SURNAMES), n, p=p / p.sum())
    g1 = rng.integers(0, len(_GIVEN), n)
    g2 = rng.integers(0, len(_GIVEN), n)
    two = rng.random(n) < 0.7
    return [
        _SURNAMES[s] + _GIVEN[a] + (_GIVEN[b] if t else "")
        for s, a, b, t in zip(
            sur.tolist(), g1.tolist(), g2.tolist(), two.tolist(), strict=True
        )
    ]


# --------------------------------------------------------------------------- households


@dataclass
class _Chunk:
    """Households of one village/community, in metric coordinates."""

    code: str
    x: np.ndarray
    y: np.ndarray
    people: np.ndarray
    tail: list[str]  # address after township (and village) name: "3组12号"
    building: list[int | None]  # building number inside the area, or None
    unit: list[str | None]
    apartment: np.ndarray  # bool, address has 幢/单元
    place: str = ""  # township (+ village) part of the address


def _uniform_in(
    rng: np.random.Generator, geom: BaseGeometry, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` uniform random points strictly inside (prepared) ``geom``."""
    minx, miny, maxx, maxy = geom.bounds
    ratio = max(geom.area / max((maxx - minx) * (maxy - miny), 1e-9), 1e-3)
    xs, ys, got = [], [], 0
    for _ in range(200):
        if got >= k:
            break
        m = int((k - got) / ratio * 1.3) + 16
        x = rng.uniform(minx, maxx, m)
        y = rng.uniform(miny, maxy, m)
        ok = shapely.contains_xy(geom, x, y)
        xs.append(x[ok])
        ys.append(y[ok])
        got += int(ok.sum())
    if got < k:  # pragma: no cover
        raise RuntimeError("could not sample points in area")
    return np.concatenate(xs)[:k], np.concatenate(ys)[:k]


def _scatter(
    rng: np.random.Generator,
    geom: BaseGeometry,
    cx: np.ndarray,
    cy: np.ndarray,
    sigma: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points around per-point centres, all inside ``geom``."""
    n = len(cx)
    x = cx + rng.normal(0.0, 1.0, n) * sigma
    y = cy + rng.normal(0.0, 1.0, n) * sigma
    bad = np.flatnonzero(~shapely.contains_xy(geom, x, y))
    for _ in range(8):
        if bad.size == 0:
            break
        x[bad] = cx[bad] + rng.normal(0.0, 1.0, bad.size) * sigma[bad]
        y[bad] = cy[bad] + rng.normal(0.0, 1.0, bad.size) * sigma[bad]
        bad = bad[~shapely.contains_xy(geom, x[bad], y[bad])]
    if bad.size:
        x[bad], y[bad] = _uniform_in(rng, geom, bad.size)
    return x, y


def _people_counts(rng: np.random.Generator, n: int, probs: np.ndarray) -> np.ndarray:
    return rng.choice(len(probs), n, p=probs).astype(np.int64)


def _rural_households(
    rng: np.random.Generator, region: BaseGeometry, size: int, code: str
) -> _Chunk:
    """Households of a village, clustered in hamlets (村民小组 / 自然村)."""
    k = int(np.clip(round(size / rng.uniform(25.0, 70.0)), 1, 18))
    k = min(k, size)
    hsize = 1 + _distribute(size - k, rng.dirichlet(np.full(k, 2.0)))
    hx, hy = _uniform_in(rng, region, k)
    sig = 20.0 + 5.0 * np.sqrt(hsize)
    rep = np.repeat(np.arange(k), hsize)
    x, y = _scatter(rng, region, hx[rep], hy[rep], sig[rep])
    hamlet_names = _unique_names(rng, k)
    use_name = rng.random(size) < 0.08  # 自然村 name instead of 组
    num = np.arange(size) - np.repeat(np.cumsum(hsize) - hsize, hsize) + 1
    tail = [
        f"{hamlet_names[g]}{m}号" if u else f"{g + 1}组{m}号"
        for g, m, u in zip(rep.tolist(), num.tolist(), use_name.tolist(), strict=True)
    ]
    return _Chunk(
        code=code,
        x=x,
        y=y,
        people=_people_counts(rng, size, _P_RURAL),
        tail=tail,
        building=[None] * size,
        unit=[None] * size,
        apartment=np.zeros(size, dtype=bool),
    )


def _compound_layout(
    rng: np.random.Generator, zone: BaseGeometry, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Building points of a residential compound (小区) of ``k`` buildings."""
    cols = int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / cols))
    gi = np.arange(k) % cols - (cols - 1) / 2
    gj = np.arange(k) // cols - (rows - 1) / 2
    dx, dy = rng.uniform(35.0, 55.0), rng.uniform(28.0, 45.0)
    for _ in range(30):
        cx, cy = _uniform_in(rng, zone, 1)
        th = rng.uniform(0, np.pi)
        u, v = gi * dx, gj * dy
        x = cx[0] + u * np.cos(th) - v * np.sin(th) + rng.normal(0, 2.0, k)
        y = cy[0] + u * np.sin(th) + v * np.cos(th) + rng.normal(0, 2.0, k)
        if shapely.contains_xy(zone, x, y).all():
            return x, y
    return _uniform_in(rng, zone, k)


def _urban_households(
    rng: np.random.Generator,
    zone: BaseGeometry,
    size: int,
    code: str,
    roads: dict[str, int],
    *,
    n_big: int = 0,
) -> _Chunk:
    """Households of a community: apartment compounds plus some low-rise houses."""
    # ``n_big`` very large buildings (> 300 households), each alone in a compound
    big: list[int] = []
    fit = np.flatnonzero(_BIG_CONFIGS.prod(1) <= 0.45 * size / max(n_big, 1))
    if n_big and fit.size:
        big = [int(b) for b in rng.choice(fit, n_big)]
    low0 = round(rng.uniform(0.05, 0.15) * size)
    budget = size - low0 - sum(int(_BIG_CONFIGS[b].prod()) for b in big)
    draw = rng.integers(0, len(_APT_CONFIGS), max(4, budget // 20 + 4))
    cum = np.cumsum(_APT_CONFIGS[draw].prod(1))
    n_b = int(np.searchsorted(cum, budget, side="right"))
    cfg = np.vstack(
        [_BIG_CONFIGS[big].reshape(-1, 3), _APT_CONFIGS[draw[:n_b]].reshape(-1, 3)]
    )
    cap = cfg.prod(1)
    n_low = size - int(cap.sum())
    n_bld = len(cfg)

    # roads of this community (shared with neighbours through ``roads``)
    new = _unique_names(rng, 3)
    mine = [n + _ROAD_SUFFIX[int(rng.integers(len(_ROAD_SUFFIX)))] for n in new]
    if roads:
        old = list(roads)
        mine += [
            old[int(j)] for j in rng.choice(len(old), min(2, len(old)), replace=False)
        ]
    for r in mine:
        roads.setdefault(r, int(rng.integers(1, 9)))

    # compounds: big buildings alone, the rest in groups of 2-12
    groups: list[np.ndarray] = [np.array([b]) for b in range(len(big))]
    b0 = len(big)
    while b0 < n_bld:
        g = int(rng.integers(2, 13))
        groups.append(np.arange(b0, min(b0 + g, n_bld)))
        b0 += g
    bx = np.empty(n_bld)
    by = np.empty(n_bld)
    bno = np.empty(n_bld, dtype=np.int64)
    baddr = [""] * n_bld
    for grp in groups:
        x, y = _compound_layout(rng, zone, len(grp))
        bx[grp], by[grp] = x, y
        road = mine[int(rng.integers(len(mine)))]
        door = roads[road]
        roads[road] = door + int(rng.integers(1, 5))
        bno[grp] = np.arange(1, len(grp) + 1)
        for b in grp:
            baddr[b] = f"{road}{door}号"

    # apartment households: unit / floor / room enumerated inside each building
    rep = np.repeat(np.arange(n_bld), cap)
    k = np.arange(rep.size) - np.repeat(np.cumsum(cap) - cap, cap)
    per_unit = (cfg[:, 1] * cfg[:, 2])[rep]
    unit_no = k // per_unit + 1
    floor = (k % per_unit) // cfg[rep, 2] + 1
    room = k % cfg[rep, 2] + 1
    unit = [
        f"{n}幢{u}单元{f}{r:02d}室"
        for n, u, f, r in zip(
            bno[rep].tolist(),
            unit_no.tolist(),
            floor.tolist(),
            room.tolist(),
            strict=True,
        )
    ]
    tail_apt = [baddr[b] + u for b, u in zip(rep.tolist(), unit, strict=True)]

    # low-rise / self-built houses (城中村) in a few clusters, one door number each
    tail_low: list[str] = []
    if n_low > 0:
        kc = min(n_low, int(rng.integers(1, 4)))
        csize = 1 + _distribute(n_low - kc, rng.dirichlet(np.full(kc, 2.0)))
        cx, cy = _uniform_in(rng, zone, kc)
        crep = np.repeat(np.arange(kc), csize)
        lx, ly = _scatter(rng, zone, cx[crep], cy[crep], np.full(n_low, 60.0))
        for c in crep.tolist():
            road = mine[c % len(mine)]
            tail_low.append(f"{road}{roads[road]}号")
            roads[road] += 1
    else:
        lx = ly = np.zeros(0)

    people = np.concatenate(
        [_people_counts(rng, rep.size, _P_URBAN), _people_counts(rng, n_low, _P_URBAN)]
    )
    return _Chunk(
        code=code,
        x=np.concatenate([bx[rep], lx]),
        y=np.concatenate([by[rep], ly]),
        people=people,
        tail=tail_apt + tail_low,
        building=[*(rep + 1).tolist(), *([None] * n_low)],
        unit=[*unit, *([None] * n_low)],
        apartment=np.concatenate(
            [np.ones(rep.size, dtype=bool), np.zeros(n_low, dtype=bool)]
        ),
    )


def _assemble_households(
    rng: np.random.Generator, chunks: list[_Chunk], to_wgs: Transformer
) -> gpd.GeoDataFrame:
    x = np.concatenate([c.x for c in chunks])
    y = np.concatenate([c.y for c in chunks])
    lon, lat = to_wgs.transform(x, y)
    lon = np.round(lon, COORD_DECIMALS)
    lat = np.round(lat, COORD_DECIMALS)
    n = lon.size
    apartment = np.concatenate([c.apartment for c in chunks])
    # nudge accidental coincident points of houses that are not in a building
    solo = ~apartment
    for step in range(1, 6):
        key = pd.DataFrame({"lon": lon[solo], "lat": lat[solo]})
        dup = key.duplicated().to_numpy()
        if not dup.any():
            break
        where = np.flatnonzero(solo)[dup]
        lon[where] = np.round(lon[where] + 3e-7 * step, COORD_DECIMALS)

    ids: list[str] = []
    bids: list[str | None] = []
    codes: list[str] = []
    for c in chunks:
        m = len(c.tail)
        ids.extend(f"H{c.code}-{s:05d}" for s in range(1, m + 1))
        bids.extend(None if b is None else f"B{c.code}-{b:04d}" for b in c.building)
        codes.extend([c.code] * m)

    # address variants seen in real registers
    prefix_opts = [PROVINCE + CITY + COUNTY, CITY + COUNTY, COUNTY, ""]
    pv = rng.choice(4, n, p=[0.88, 0.06, 0.04, 0.02])
    dong = rng.random(n) < 0.10
    no_shi = rng.random(n) < 0.04
    full = rng.random(n) < 0.015
    addr: list[str] = []
    pos = 0
    for c in chunks:
        place = c.place
        for j, t in enumerate(c.tail):
            i = pos + j
            if c.apartment[j]:
                if dong[i]:
                    t = t.replace("幢", "栋")
                if no_shi[i]:
                    t = t[:-1]
            if full[i]:
                t = t.translate(_FULLWIDTH)
            addr.append(prefix_opts[pv[i]] + place + t)
        pos += len(c.tail)

    return gpd.GeoDataFrame(
        {
            "household_id": ids,
            "address": addr,
            "people": np.concatenate([c.people for c in chunks]),
            "building_id": bids,
            "unit": [u for c in chunks for u in c.unit],
            "area_code": codes,
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=WGS84,
    )


# --------------------------------------------------------------------------- people


def _phones(rng: np.random.Generator, p_landline: np.ndarray) -> list[str]:
    n = len(p_landline)
    land = rng.random(n) < p_landline
    local = rng.integers(0, 1_000_000, n)
    pre = rng.integers(0, len(_MOBILE_PREFIX), n)
    sub = rng.integers(0, 100_000_000, n)
    return [
        f"0570-8{lo:06d}" if is_land else f"{_MOBILE_PREFIX[p]}{s:08d}"
        for is_land, lo, p, s in zip(
            land.tolist(), local.tolist(), pre.tolist(), sub.tolist(), strict=True
        )
    ]


def _make_people(
    rng: np.random.Generator,
    *,
    township_codes: list[str],
    area_codes: list[str],
    area_sizes: list[int],
) -> pd.DataFrame:
    roles: list[str] = []
    codes: list[str] = []
    landline: list[float] = []
    by_town: dict[str, list[int]] = {t: [] for t in township_codes}
    for k, code in enumerate(area_codes):
        by_town[code[:9] + "000"].append(k)
    for t in township_codes:
        roles.append("grid_leader")
        codes.append(t)
        landline.append(0.7)
        for k in by_town[t]:
            h = area_sizes[k]
            n_gw = max(1, round(h / 250))
            n_pm = max(1, round(h / rng.uniform(15.0, 25.0))) if h else 0
            roles += ["grid_worker"] * n_gw + ["party_member"] * n_pm
            codes += [area_codes[k]] * (n_gw + n_pm)
            landline += [0.35] * n_gw + [0.05] * n_pm
    n = len(roles)
    phones = _phones(rng, np.array(landline))
    names = _person_names(rng, n)
    # the handlers of 村事 and 政事 (三事分流), drawn after everyone else so the
    # people above keep their ids, names and phones: one village committee
    # member per village/community, one township office per township
    handlers = [*area_codes, *township_codes]
    roles += ["village_committee"] * len(area_codes) + ["township_office"] * len(
        township_codes
    )
    codes += handlers
    phones += _phones(rng, np.full(len(handlers), 0.8))
    names += _person_names(rng, len(handlers))
    total = len(roles)
    width = max(6, len(str(total)))
    return pd.DataFrame(
        {
            "person_id": [f"P{i:0{width}d}" for i in range(1, total + 1)],
            "name": names,
            "role": roles,
            "work_phone": phones,
            "area_code": codes,
        }
    )
