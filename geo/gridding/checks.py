"""Checking a plan against every rule a generated or rebalanced plan must keep."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import STORAGE_CRS, metric_crs_for, transformer
from geo.plan import EXCEPTION_CAUSES, UNRESOLVED, Band, GridPlan
from geo.vocabulary import VILLAGE_LEVELS

__all__ = [
    "AREA_TOLERANCE",
    "CONTIGUITY_CAUSES",
    "EDGE_TOLERANCE_M",
    "RULES",
    "Violation",
    "check_plan",
]

#: Every rule :func:`check_plan` checks, by the name a :class:`Violation` carries.
RULES: dict[str, str] = {
    "duplicate_grid_code": "two grids share a code",
    "out_of_band": "a grid outside the band without a proven cause "
    "(geo.plan.EXCEPTION_CAUSES) in its report entry",
    "invalid_polygon": "a grid polygon that is empty, not polygonal or not valid",
    "not_contiguous": "a grid in several parts where the areas it covers are one piece, "
    "and no cause in CONTIGUITY_CAUSES explains it",
    "overlap": "two grids share more area than AREA_TOLERANCE allows",
    "gap": "part of an area the grids cover is in no grid",
    "outside_areas": "part of a grid lies outside every leaf area",
    "unassigned": "households with no grid",
    "assigned_twice": "households in more than one grid (or twice in one)",
    "unknown_household": "assignments of household ids that are not in the households",
    "unknown_grid": "assignments to a grid code that is not in the plan",
    "outside_grid": "households that lie neither in nor on the edge of their grid",
    "household_count": "a grid's ``households`` differs from its assignments",
    "building_split": "a building of at most max_households households spread over "
    "several grids",
}

#: Causes that explain a grid in several parts even where its areas are one piece.
CONTIGUITY_CAUSES: frozenset[str] = frozenset({"isolated_piece"})

#: Overlaps, gaps and overhangs up to this fraction of the covered area are float
#: noise (1e-10 of a 100 km² county is 0.01 m²).
AREA_TOLERANCE = 1e-10

#: A household this close to its grid (metres, in the metric CRS) lies on its edge.
EDGE_TOLERANCE_M = 1e-3

_EXAMPLES = 5


@dataclass(frozen=True)
class Violation:
    """One broken rule: which grid (None for plan-wide ones), which rule, the facts."""

    grid_code: str | None
    rule: str
    detail: str


def check_plan(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    min_households: float = 200,
    max_households: float = 300,
) -> list[Violation]:
    """Every way ``plan`` breaks the rules of a generated or rebalanced plan.

    The rules (names as in :data:`RULES`):

    * **band** – a grid's ``load`` (else ``households``) lies in
      ``min_households``–``max_households`` unless an entry of
      ``plan.report["exceptions"]`` with its ``grid_code`` carries a ``cause``
      (a string or a list of strings) from :data:`geo.plan.EXCEPTION_CAUSES`
      and none lists :data:`geo.plan.UNRESOLVED`. An unresolved cause, an
      unknown cause or entries without a cause prove nothing: ``out_of_band``.
    * **valid** – every grid polygon is a valid, non-empty (Multi)Polygon.
    * **contiguous** – a grid in several parts is allowed only when its parts
      lie in different pieces of the union of the leaf areas it covers (an
      area with exclaves) or a cause in :data:`CONTIGUITY_CAUSES` is listed
      for it; otherwise ``not_contiguous``.
    * **tiling** – in a metric CRS (:func:`geo.crs.metric_crs_for` of the
      areas), no two grids share more than :data:`AREA_TOLERANCE` of the
      covered area, no grid reaches outside the leaf areas, and the grids'
      union equals the union of the leaf areas they cover (an area is covered
      when a grid overlaps it or a household lies in it). Leaf areas are the
      areas at the plan's ``respect_level`` (village and community by
      default); all areas when there is no ``level`` column.
    * **households** – every household in exactly one grid, no assignment of
      an unknown household or to an unknown grid, each household in or on the
      edge of its grid (within :data:`EDGE_TOLERANCE_M`), each grid's
      ``households`` equal to its assignments, and when ``households`` has a
      ``building_id``, a building of at most ``max_households`` households in
      one grid.

    Household rules are reported once per grid (with a count and example
    ids), so the number of violations counts grids, not households.

    Parameters
    ----------
    plan
        A generated or rebalanced plan.
    households
        Points with ``household_id`` (any CRS), optionally ``building_id``.
    areas
        Polygons with ``code`` and optionally ``level`` (any CRS).
    min_households, max_households
        The band.

    Returns
    -------
    list of Violation
        Empty when the plan keeps every rule.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, (1000, 2))), crs=4326)
    >>> village = gpd.GeoDataFrame({"code": ["V1"], "level": ["village"]},
    ...     geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, village)
    >>> check_plan(plan, hh, village)
    []
    >>> g = plan.grids.copy()
    >>> g.loc[0, "load"] = 150
    >>> [v.rule for v in check_plan(GridPlan(g, plan.assignments, plan.report), hh, village)]
    ['out_of_band']
    """
    band = Band(min_households, max_households)
    grids = plan.grids.reset_index(drop=True)
    codes = grids["grid_code"].astype(str).to_numpy()
    out: list[Violation] = []

    dup = pd.Series(codes)[pd.Series(codes).duplicated()].unique()
    out.extend(
        Violation(c, "duplicate_grid_code", f"grid code {c} is used more than once")
        for c in dup
    )
    causes = _causes_by_grid(plan.report.get("exceptions") or [])

    out.extend(_check_band(grids, codes, causes, band))

    geoms = np.asarray(grids.geometry.values, dtype=object)
    bad_geom = _check_valid(geoms, codes, out)

    # overlays run in the grids' own CRS, where their edges are straight (a
    # vertex on a neighbour's edge stays on it); areas and distances are
    # measured after projecting the results to a metric CRS
    crs = grids.crs or STORAGE_CRS
    leaf = _leaf_areas(areas, plan.report.get("params", {}).get("respect_level"))
    leaf = leaf.to_crs(crs)
    m2 = _Measure(crs, metric_crs_for(leaf.to_crs(STORAGE_CRS)))
    leaf_g = np.asarray(leaf.geometry.values, dtype=object)
    geoms = geoms.copy()
    geoms[bad_geom] = None
    hh = households.reset_index(drop=True)
    pts = np.asarray(hh.to_crs(crs).geometry.values, dtype=object)

    covered = _covered_leaves(leaf_g, geoms, pts)
    total = float(m2.area(leaf_g[covered]).sum()) if covered.any() else 0.0
    tol = AREA_TOLERANCE * max(total, 1.0)
    leaf_codes = leaf["code"].astype(str).to_numpy()

    out.extend(_check_contiguity(geoms, codes, causes, leaf_g, m2, tol))
    out.extend(_check_tiling(geoms, codes, leaf_g, leaf_codes, covered, m2=m2, tol=tol))
    out.extend(_check_households(plan, grids, geoms, codes, hh, pts, m2=m2, band=band))
    return out


# --------------------------------------------------------------------------- parts


def _causes_by_grid(exceptions: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Causes listed per grid code (an entry without a cause lists none)."""
    by: dict[str, list[str]] = {}
    for e in exceptions:
        code = e.get("grid_code")
        if code is None:
            continue
        cause = e.get("cause")
        if cause is None:
            listed = []
        elif isinstance(cause, str):
            listed = [cause]
        else:
            listed = [str(c) for c in cause]
        by.setdefault(str(code), []).extend(listed)
    return by


def _check_band(
    grids: gpd.GeoDataFrame,
    codes: np.ndarray,
    causes: dict[str, list[str]],
    band: Band,
) -> list[Violation]:
    col = "load" if "load" in grids.columns else "households"
    load = pd.to_numeric(grids[col], errors="coerce").to_numpy(dtype=float)
    out = []
    for code, n in zip(codes, load, strict=True):
        if band.min - 1e-9 <= n <= band.max + 1e-9:
            continue
        listed = causes.get(code, [])
        proven = [c for c in listed if c in EXCEPTION_CAUSES]
        if proven and UNRESOLVED not in listed:
            continue
        if code not in causes:
            why = "no exception entry"
        elif not listed:
            why = "no cause in its exception entries"
        elif set(listed) == {UNRESOLVED}:
            why = "cause unresolved"
        else:
            why = f"causes {sorted(set(listed))}"
        out.append(
            Violation(
                code,
                "out_of_band",
                f"{n:g} households, outside {band.min:g}–{band.max:g}: {why}",
            )
        )
    return out


def _check_valid(
    geoms: np.ndarray, codes: np.ndarray, out: list[Violation]
) -> np.ndarray:
    """Append invalid-polygon violations; True where a geometry cannot be measured
    (empty or not polygonal; an invalid polygon is still measured, made valid)."""
    unmeasurable = np.zeros(len(geoms), dtype=bool)
    for i, (g, code) in enumerate(zip(geoms, codes, strict=True)):
        if g is None or g.is_empty:
            why = "empty polygon"
        elif g.geom_type not in ("Polygon", "MultiPolygon"):
            why = f"a {g.geom_type}, not a polygon"
        elif not g.is_valid:
            out.append(Violation(code, "invalid_polygon", shapely.is_valid_reason(g)))
            continue
        else:
            continue
        unmeasurable[i] = True
        out.append(Violation(code, "invalid_polygon", why))
    return unmeasurable


def _leaf_areas(areas: gpd.GeoDataFrame, respect_level: str | None) -> gpd.GeoDataFrame:
    if "level" not in areas.columns:
        return areas.reset_index(drop=True)
    levels = (
        VILLAGE_LEVELS if respect_level in (None, "village") else (str(respect_level),)
    )
    return areas[areas["level"].isin(levels)].reset_index(drop=True)


def _valid(g: BaseGeometry) -> BaseGeometry:
    return g if g.is_valid else shapely.make_valid(g)


class _Measure:
    """Areas and lengths in metres of geometries given in another CRS.

    Areas are the source-CRS area times the local scale (the Jacobian of the
    projection to ``metric`` at the geometry's centroid): projecting a sliver
    along an edge would bend its straight edges differently from its vertices
    and invent area that is not there.
    """

    def __init__(self, crs: Any, metric: Any) -> None:
        self.crs, self.metric = crs, metric
        self.to_metric = transformer(crs, metric)

    def area(self, geoms: Any) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(geoms, dtype=object))
        if not len(arr):
            return np.zeros(0)
        area = shapely.area(arr)
        c = shapely.get_coordinates(shapely.centroid(shapely.envelope(arr)))
        if len(c) != len(arr):  # empty results have no centroid and no area
            c = np.zeros((len(arr), 2))
            live = ~shapely.is_empty(arr)
            c[live] = shapely.get_coordinates(shapely.centroid(arr[live]))
        d = 1e-6 * max(1.0, float(np.abs(c).max(initial=0.0)))
        x0, y0 = self.to_metric.transform(c[:, 0], c[:, 1])
        x1, y1 = self.to_metric.transform(c[:, 0] + d, c[:, 1])
        x2, y2 = self.to_metric.transform(c[:, 0], c[:, 1] + d)
        jac = np.abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / (d * d)
        return np.asarray(area * jac, dtype=float)

    def overlay_area(self, op: Any, a: Any, b: Any, tol: float) -> np.ndarray:
        """Area in m² of ``op(a, b)`` (elementwise), robust to GEOS overlay faults.

        GEOS's overlay can return a wrong result on nearly coincident edges (seen:
        the intersection of a village with the union of its grids coming back
        empty). A result above ``tol`` is computed again on a precision grid
        about 1e-13 of the coordinates' magnitude (≈ 1 µm in degrees) and the
        smaller answer kept: a real gap, overlap or overhang survives both.
        """
        a = np.atleast_1d(np.asarray(a, dtype=object))
        if not len(a):
            return np.zeros(0)
        out = self.area(op(a, b))
        redo = np.flatnonzero(out > tol)
        if len(redo):
            bb = b[redo] if isinstance(b, np.ndarray) else b
            xy = shapely.get_coordinates(a[redo])
            snap = 1e-13 * max(1.0, float(np.abs(xy).max(initial=0.0)))
            try:
                again = self.area(op(a[redo], bb, grid_size=snap))
            except shapely.errors.GEOSException:
                again = out[redo]
            out[redo] = np.minimum(out[redo], again)
        return out

    def length(self, geoms: Any) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(geoms, dtype=object))
        if not len(arr):
            return np.zeros(0)
        return gpd.GeoSeries(arr, crs=self.crs).to_crs(self.metric).length.to_numpy()


def _covered_leaves(leaf: np.ndarray, grids: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Leaf areas a grid overlaps (by area) or a household lies in."""
    covered = np.zeros(len(leaf), dtype=bool)
    if not len(leaf):
        return covered
    tree = shapely.STRtree(leaf)
    live = np.array([g is not None for g in grids], dtype=bool)
    if live.any():
        gs = np.asarray([_valid(g) for g in grids[live]], dtype=object)
        gi, li = tree.query(gs, predicate="intersects")
        inter = shapely.area(shapely.intersection(gs[gi], leaf[li]))
        covered[np.unique(li[inter > 0])] = True
    if len(pts):
        _, li = tree.query(pts, predicate="intersects")
        covered[np.unique(li)] = True
    return covered


def _check_contiguity(
    grids: np.ndarray,
    codes: np.ndarray,
    causes: dict[str, list[str]],
    leaf: np.ndarray,
    m2: _Measure,
    tol: float,
) -> list[Violation]:
    out = []
    tree = shapely.STRtree(leaf) if len(leaf) else None
    for g, code in zip(grids, codes, strict=True):
        if g is None:
            continue
        parts = shapely.get_parts(_valid(g))
        if len(parts) <= 1:
            continue
        if CONTIGUITY_CAUSES & set(causes.get(code, [])):
            continue
        near = tree.query(g, predicate="intersects") if tree is not None else []
        shared = shapely.intersection(_valid(g), leaf[near]) if len(near) else []
        mine = [leaf[j] for j, s in zip(near, m2.area(shared), strict=True) if s > tol]
        pieces = shapely.get_parts(shapely.union_all(mine)) if mine else []
        home = [
            int(np.argmax(shapely.area(shapely.intersection(p, pieces))))
            if len(pieces)
            else -1
            for p in parts
        ]
        if len(pieces) and len(set(home)) == len(home):
            continue  # each part in its own piece of the areas (exclaves)
        out.append(
            Violation(
                code,
                "not_contiguous",
                f"{len(parts)} parts where the areas it covers are "
                f"{len(pieces)} piece(s), and no cause in {sorted(CONTIGUITY_CAUSES)}",
            )
        )
    return out


def _check_tiling(
    grids: np.ndarray,
    codes: np.ndarray,
    leaf: np.ndarray,
    leaf_codes: np.ndarray,
    covered: np.ndarray,
    *,
    m2: _Measure,
    tol: float,
) -> list[Violation]:
    out = []
    live = np.flatnonzero([g is not None for g in grids])
    gs = np.asarray([_valid(grids[i]) for i in live], dtype=object)
    if len(gs):
        tree = shapely.STRtree(gs)
        a, b = tree.query(gs, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        shared = m2.overlay_area(shapely.intersection, gs[a], gs[b], tol)
        for i, j, s in zip(a, b, shared, strict=True):
            if s > tol:
                out.append(
                    Violation(
                        codes[live[i]],
                        "overlap",
                        f"shares {s:.3g} m² with grid {codes[live[j]]}",
                    )
                )
    land = shapely.union_all(leaf) if len(leaf) else shapely.Polygon()
    over = m2.overlay_area(shapely.difference, gs, land, tol)
    for i, o in zip(live, over, strict=True):
        if o > tol:
            out.append(
                Violation(
                    codes[i], "outside_areas", f"{o:.3g} m² outside every leaf area"
                )
            )
    tiles = shapely.union_all(gs) if len(gs) else shapely.Polygon()
    cov = np.flatnonzero(covered)
    gaps = m2.overlay_area(shapely.difference, leaf[cov], tiles, tol)
    sizes = m2.area(leaf[cov]) if len(cov) else np.zeros(0)
    for j, gap, size in zip(cov, gaps, sizes, strict=True):
        if gap > tol:
            out.append(
                Violation(
                    None,
                    "gap",
                    f"{gap:.3g} m² of area {leaf_codes[j]} "
                    f"({gap / max(size, 1e-300):.2%}) is in no grid",
                )
            )
    return out


def _examples(ids: Iterable[Any]) -> str:
    ids = list(ids)
    more = f" and {len(ids) - _EXAMPLES} more" if len(ids) > _EXAMPLES else ""
    return ", ".join(map(str, ids[:_EXAMPLES])) + more


def _check_households(
    plan: GridPlan,
    grids: gpd.GeoDataFrame,
    geoms: np.ndarray,
    codes: np.ndarray,
    hh: gpd.GeoDataFrame,
    pts: np.ndarray,
    *,
    m2: _Measure,
    band: Band,
) -> list[Violation]:
    out = []
    asg = plan.assignments
    ids = hh["household_id"].astype(str).to_numpy()
    a_ids = asg["household_id"].astype(str).to_numpy()
    a_grid = asg["grid_code"].astype(str).to_numpy()

    unknown = pd.unique(a_ids[~_isin(a_ids, ids)])
    if len(unknown):
        out.append(
            Violation(
                None,
                "unknown_household",
                f"{len(unknown)} assigned household id(s) not in the households: "
                f"{_examples(unknown)}",
            )
        )
    stray = ~_isin(a_grid, codes)
    for code in pd.unique(a_grid[stray]):
        n = int((a_grid == code).sum())
        out.append(
            Violation(
                str(code),
                "unknown_grid",
                f"{n} household(s) assigned to it, not in the plan",
            )
        )
    counts = pd.Series(a_ids).value_counts()
    missing = ids[~_isin(ids, a_ids)]
    if len(missing):
        out.append(
            Violation(
                None,
                "unassigned",
                f"{len(missing)} household(s) in no grid: {_examples(missing)}",
            )
        )
    twice = counts[counts > 1]
    if len(twice):
        out.append(
            Violation(
                None,
                "assigned_twice",
                f"{len(twice)} household(s) assigned more than once: "
                f"{_examples(twice.index)}",
            )
        )

    # each household in (or on the edge of) its grid
    pos = pd.Series(np.arange(len(ids)), index=ids)
    pos = pos[~pos.index.duplicated()]
    gpos = pd.Series(np.arange(len(codes)), index=codes)
    gpos = gpos[~gpos.index.duplicated()]
    ok = _isin(a_ids, ids) & ~stray
    h_idx = pos.reindex(a_ids[ok]).to_numpy(dtype=np.int64)
    g_idx = gpos.reindex(a_grid[ok]).to_numpy(dtype=np.int64)
    inside = np.zeros(len(h_idx), dtype=bool)
    live = np.flatnonzero([g is not None for g in geoms])
    if len(live) and len(h_idx):
        valid = np.asarray([_valid(geoms[i]) for i in live], dtype=object)
        tree_pos = np.full(len(geoms), -1)
        tree_pos[live] = np.arange(len(live))
        mine = tree_pos[g_idx]
        here = pts[h_idx]
        p_hit, g_hit = shapely.STRtree(valid).query(here, predicate="covered_by")
        inside[p_hit[mine[p_hit] == g_hit]] = True
        near = np.flatnonzero(~inside & (mine >= 0))
        if len(near):  # on the edge up to float noise: measure the gap in metres
            gap = m2.length(shapely.shortest_line(valid[mine[near]], here[near]))
            inside[near] = gap <= EDGE_TOLERANCE_M
    if (~inside).any():
        bad = pd.DataFrame({"grid": a_grid[ok][~inside], "hh": a_ids[ok][~inside]})
        for code, grp in bad.groupby("grid", sort=True):
            out.append(
                Violation(
                    str(code),
                    "outside_grid",
                    f"{len(grp)} household(s) lie outside the grid: "
                    f"{_examples(grp['hh'])}",
                )
            )

    if "households" in grids.columns:
        per_grid = pd.Series(a_grid).value_counts()
        for code, n in zip(codes, grids["households"], strict=True):
            have = int(per_grid.get(code, 0))
            if int(n) != have:
                out.append(
                    Violation(
                        code,
                        "household_count",
                        f"says {int(n)} households, {have} assigned",
                    )
                )

    if "building_id" in hh.columns:
        bld = pd.DataFrame(
            {"building": hh["building_id"].to_numpy()[h_idx], "grid": a_grid[ok]}
        ).dropna(subset=["building"])
        size = hh["building_id"].value_counts()
        spread = bld.groupby("building")["grid"].nunique()
        split = spread[(spread > 1) & (size.reindex(spread.index) <= band.max)]
        for b in split.index:
            where = sorted(bld.loc[bld["building"] == b, "grid"].unique())
            out.append(
                Violation(
                    where[0],
                    "building_split",
                    f"building {b} ({int(size[b])} households) spread over grids "
                    f"{', '.join(where)}",
                )
            )
    return out


def _isin(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin`` by hashing (numpy sorts object arrays, which is slow on strings)."""
    return np.asarray(pd.Index(values).isin(pool), dtype=bool)
