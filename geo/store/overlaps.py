"""Overlapping sibling areas: find them before a load, refuse them or clip them.

Two admin areas are *siblings* when they share a parent, or when both have no
parent and the same level. Siblings must not overlap: a household in the
overlap would belong to two areas and generation would draw overlapping grids.
Independently digitised borders never match exactly, so shared edges and thin
slivers along them are tolerated (see :data:`OVERLAP_SHARE` and
:data:`OVERLAP_M2`); anything larger is refused, or, when asked, clipped out of
the later area. Areas are measured in the metric CRS of :mod:`geo.crs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from geo.crs import STORAGE_CRS, metric_crs_for

__all__ = [
    "OVERLAP_M2",
    "OVERLAP_SHARE",
    "Clip",
    "Overlap",
    "clip_overlaps",
    "sibling_overlaps",
]

#: An overlap up to this share of the smaller area is a sliver and tolerated...
OVERLAP_SHARE = 0.005
#: ...and so is one up to this many square metres, whatever the areas' size.
OVERLAP_M2 = 100.0


@dataclass(frozen=True)
class Overlap:
    """Area ``code`` (row ``row`` of the file) overlaps ``other_code``.

    ``other_row`` is the other area's row in the file, or None when it is
    already loaded. ``m2`` is the overlap's area, ``share`` its share of the
    smaller of the two areas.
    """

    code: str
    name: str
    row: int
    other_code: str
    other_name: str
    other_row: int | None
    m2: float
    share: float

    def __str__(self) -> str:
        where = (
            f"row {self.other_row} of the file"
            if self.other_row is not None
            else "already loaded"
        )
        return (
            f"area {self.code} ({self.name}) overlaps its sibling {self.other_code} "
            f"({self.other_name}, {where}) by {self.m2:,.0f} m² ({self.share:.1%} of "
            "the smaller area); sibling areas must not overlap. Fix the boundaries, "
            "or load with clip=True to cut overlaps out of the later area"
        )


@dataclass(frozen=True)
class Clip:
    """What ``clip=True`` cut out of area ``code``: ``m2`` overlapping ``others``."""

    code: str
    name: str
    row: int
    others: tuple[str, ...]
    m2: float

    def __str__(self) -> str:
        return (
            f"clipped {self.m2:,.0f} m² out of {self.code} ({self.name}, row {self.row}) "
            f"where it overlapped {', '.join(self.others)}"
        )


def _key(parent: object, level: object) -> tuple[str, str]:
    if parent is None or (isinstance(parent, float) and np.isnan(parent)):
        return ("level", str(level))
    return ("parent", str(parent))


@dataclass
class _Frame:
    """New and loaded areas together: new ones first (with file rows)."""

    codes: list[str]
    names: list[str]
    rows: list[int | None]
    keys: list[tuple[str, str]]
    geoms: np.ndarray  # lon/lat
    metric: np.ndarray  # metres


def _frame(new: gpd.GeoDataFrame, existing: gpd.GeoDataFrame) -> _Frame:
    kept = existing[~existing["code"].isin(set(new["code"]))]
    codes = [str(c) for c in new["code"]] + [str(c) for c in kept["code"]]
    names = [str(n) for n in new["name"]] + [str(n) for n in kept["name"]]
    rows: list[int | None] = [int(r) for r in range(1, len(new) + 1)]
    rows += [None] * len(kept)
    keys = [
        _key(p, lv) for p, lv in zip(new["parent_code"], new["level"], strict=True)
    ] + [_key(p, lv) for p, lv in zip(kept["parent_code"], kept["level"], strict=True)]
    geoms = np.concatenate(
        [
            np.asarray(new.geometry.values, dtype=object),
            np.asarray(kept.geometry.values, dtype=object),
        ]
    )
    series = gpd.GeoSeries(geoms, crs=STORAGE_CRS)
    metric = np.asarray(series.to_crs(metric_crs_for(series)).values, dtype=object)
    return _Frame(codes, names, rows, keys, geoms, metric)


def _pairs(f: _Frame, n_new: int) -> list[tuple[int, int, float, float]]:
    """(i, j, overlap m², share of the smaller) for overlapping siblings, i new."""
    if n_new == 0:
        return []
    tree = shapely.STRtree(f.metric)
    left, right = tree.query(f.metric[:n_new], predicate="intersects")
    keep = [
        (int(i), int(j))
        for i, j in zip(left, right, strict=True)
        if i != j and f.keys[i] == f.keys[j] and not (j < n_new and j < i)
    ]
    if not keep:
        return []
    a = f.metric[[i for i, _ in keep]]
    b = f.metric[[j for _, j in keep]]
    m2 = shapely.area(shapely.intersection(a, b))
    smaller = np.minimum(shapely.area(a), shapely.area(b))
    share = np.divide(m2, smaller, out=np.ones_like(m2), where=smaller > 0)
    return [
        (i, j, float(m), float(s))
        for (i, j), m, s in zip(keep, m2, share, strict=True)
        if m > OVERLAP_M2 and s > OVERLAP_SHARE
    ]


def sibling_overlaps(
    new: gpd.GeoDataFrame, existing: gpd.GeoDataFrame
) -> list[Overlap]:
    """Overlaps beyond the tolerance between siblings, at least one of them new.

    ``new`` holds the areas of a file (``code, name, level, parent_code``,
    lon/lat polygons) in file order; ``existing`` the loaded areas in the same
    shape (areas whose code is in ``new`` are replaced by the new version).
    """
    f = _frame(new, existing)
    out = []
    for i, j, m2, share in _pairs(f, len(new)):
        # name the later area first: it is the one clip=True would cut
        if j < len(new) and j > i:
            i, j = j, i
        row = f.rows[i]
        assert row is not None
        out.append(
            Overlap(
                f.codes[i],
                f.names[i],
                row,
                f.codes[j],
                f.names[j],
                f.rows[j],
                m2,
                share,
            )
        )
    return sorted(out, key=lambda o: (o.row, o.other_code))


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    g = shapely.make_valid(g)
    parts = [
        p
        for p in shapely.get_parts(g)
        if p.geom_type in {"Polygon", "MultiPolygon"} and not p.is_empty
    ]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    if not polys:
        return shapely.MultiPolygon()
    return shapely.orient_polygons(shapely.MultiPolygon(polys))


def clip_overlaps(
    new: gpd.GeoDataFrame, existing: gpd.GeoDataFrame
) -> tuple[np.ndarray, list[Clip]]:
    """Cut every overlap beyond the tolerance out of the later area.

    Loaded areas come before the file's; within the file, earlier rows come
    first. Returns the new areas' geometries (lon/lat MultiPolygons, in file
    order; possibly empty when an area lay wholly inside siblings) and what
    was clipped.
    """
    f = _frame(new, existing)
    n = len(new)
    earlier: dict[int, list[int]] = {}
    for i, j, _, _ in _pairs(f, n):
        later, first = (j, i) if (j < n and j > i) else (i, j)
        earlier.setdefault(later, []).append(first)
    geoms = f.geoms.copy()
    to_metric = gpd.GeoSeries(f.geoms, crs=STORAGE_CRS)
    crs = metric_crs_for(to_metric)
    clips: list[Clip] = []
    for i in sorted(earlier):
        others = sorted(set(earlier[i]), key=lambda j: (f.rows[j] or 0, f.codes[j]))
        cut = shapely.difference(
            geoms[i], shapely.union_all([geoms[j] for j in others])
        )
        cut = _polygonal(cut)
        before, after = (
            gpd.GeoSeries([geoms[i], cut], crs=STORAGE_CRS).to_crs(crs).area.to_numpy()
        )
        geoms[i] = cut
        row = f.rows[i]
        assert row is not None
        clips.append(
            Clip(
                f.codes[i],
                f.names[i],
                row,
                tuple(f"{f.codes[j]} ({f.names[j]})" for j in others),
                float(before - after),
            )
        )
    return geoms[:n], clips
