"""Seeded generator of a realistic sample county (衢州市衢江区) for tests and demos.

The county's layout (townships, villages, communities) and its files live here;
its fixed facts in :mod:`geo.sample._county_facts`, its geometry in
:mod:`geo.sample._county_geometry`, its households and people in
:mod:`geo.sample._county_households`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo.sample._county_facts import (
    _BARRIER_SPECS,
    CENTER_LONLAT,
    CITY,
    COORD_DECIMALS,
    COUNTY,
    COUNTY_CODE,
    COUNTY_PREFIX,
    EDGE_MARGIN_M,
    FORMATS,
    METRIC,
    PROVINCE,
    WGS84,
)
from geo.sample._county_geometry import (
    _angular_order,
    _as_multi,
    _barrier_lines,
    _community_seeds,
    _county_polygon,
    _coverage_union,
    _fix_contiguity,
    _kmeans,
    _river_profile,
    _split_streets,
    _spread_points,
    _to_wgs_geoms,
    _transformer,
    _voronoi_cells,
)
from geo.sample._county_households import (
    _assemble_households,
    _Chunk,
    _make_people,
    _plan_sizes,
    _rural_households,
    _township_names,
    _unique_names,
    _urban_households,
)

__all__ = [
    "CENTER_LONLAT",
    "CITY",
    "COORD_DECIMALS",
    "COUNTY",
    "COUNTY_CODE",
    "COUNTY_PREFIX",
    "EDGE_MARGIN_M",
    "FORMATS",
    "METRIC",
    "PROVINCE",
    "WGS84",
    "SampleCounty",
    "generate_county",
    "write_county",
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
