"""Shared scoring for ``bench/generate.py``: one yardstick for every grid generator.

Every tool hands in a plain household → label assignment and is scored the same
way, village by village (memory stays bounded by the largest village):

* **building groups** – households sharing a ``building_id``, else the same point,
  are one vertex (coordinates in the county's metric UTM CRS);
* **adjacency** – Delaunay triangulation of the group points of one village
  (``scipy.spatial.Delaunay``; 1–2 points and collinear sets handled), never an
  all-pairs structure; there are no edges between villages;
* **size** – households per label, in band when ``lo <= size <= hi``;
* **contiguity** – in every village a label touches, its groups form one connected
  piece of that village's Delaunay graph;
* **village-line crossings** – labels whose households lie in more than one village;
* **compactness** – Polsby-Popper ``4πA/P²`` of the union of the label's Voronoi
  cells (``shapely.voronoi_polygons`` of the group points, clipped to the village
  polygon), in metres. For a label inside one village the union's area and
  perimeter come from the cells directly (``P = Σ cell perimeters − 2 Σ shared
  edges`` between Delaunay neighbours of the same label); labels that cross
  villages are unioned for real. A building split between labels gives its whole
  cell to each of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError

from geo.crs import metric_crs_for

__all__ = [
    "LEAF_LEVELS",
    "Prepared",
    "Village",
    "delaunay_edges",
    "evaluate",
    "parts_per_village",
    "prepare",
    "to_csr",
    "voronoi_cells",
]

LEAF_LEVELS = ("village", "community")
#: metres added to the x of a group point that coincides with another group's
_JITTER_M = 0.01
#: holes and parts smaller than this (m²) left by unioning across villages are seams
_SLIVER_M2 = 1.0


@dataclass(frozen=True)
class Village:
    """One village's input in metric coordinates.

    ``rows`` are the county household rows of the village and ``group`` the local
    building-group index of each of them; ``xy``/``count`` describe the groups.
    """

    index: int
    code: str
    geom: Any
    rows: np.ndarray
    group: np.ndarray
    xy: np.ndarray
    count: np.ndarray

    @property
    def households(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Prepared:
    """Households grouped into building groups, sorted by (village, group)."""

    n: int
    crs: CRS
    codes: list[str]
    geoms: np.ndarray  # village polygons, metric CRS
    order: np.ndarray  # household rows sorted by (village, group)
    hh_start: np.ndarray  # V + 1 offsets into ``order``
    hh_group: np.ndarray  # global group id of each sorted household
    hh_village: np.ndarray  # village index of each sorted household
    g_start: np.ndarray  # V + 1 offsets into the group arrays
    g_xy: np.ndarray  # (G, 2) group points, metric CRS
    g_count: np.ndarray  # (G,) households per group

    @property
    def villages(self) -> int:
        return len(self.codes)

    @property
    def groups(self) -> int:
        return len(self.g_count)

    def village(self, v: int) -> Village:
        hs, he = self.hh_start[v], self.hh_start[v + 1]
        gs, ge = self.g_start[v], self.g_start[v + 1]
        return Village(
            index=v,
            code=self.codes[v],
            geom=self.geoms[v],
            rows=self.order[hs:he],
            group=self.hh_group[hs:he] - gs,
            xy=self.g_xy[gs:ge],
            count=self.g_count[gs:ge],
        )

    def iter_villages(self) -> Iterator[Village]:
        for v in range(self.villages):
            if self.hh_start[v + 1] > self.hh_start[v]:
                yield self.village(v)


def prepare(households: gpd.GeoDataFrame, areas: gpd.GeoDataFrame) -> Prepared:
    """Group households into building groups per village, in the metric CRS.

    Households are placed in villages by ``area_code`` when it names a
    village/community, else by the polygon containing them.
    """
    leaf = areas
    if "level" in areas.columns:
        leaf = areas[areas["level"].isin(LEAF_LEVELS)]
    leaf = leaf.to_crs("EPSG:4326").reset_index(drop=True)
    crs = metric_crs_for(leaf)
    codes = leaf["code"].astype(str).tolist()
    n = len(households)
    hh = households.to_crs("EPSG:4326")

    village = np.full(n, -1, dtype=np.int64)
    if "area_code" in hh.columns:
        lookup = pd.Series(np.arange(len(codes)), index=codes)
        got = lookup.reindex(hh["area_code"].astype(str).to_numpy())
        ok = got.notna().to_numpy()
        village[ok] = got.to_numpy()[ok].astype(np.int64)
    todo = np.flatnonzero(village < 0)
    if len(todo):
        pts = np.asarray(hh.geometry.values, dtype=object)[todo]
        p_idx, a_idx = leaf.sindex.query(pts, predicate="intersects")
        first = np.unique(p_idx, return_index=True)[1]
        village[todo[p_idx[first]]] = a_idx[first]
    if (village < 0).any():
        raise ValueError(f"{int((village < 0).sum())} households are in no village")

    lon = shapely.get_x(hh.geometry.values)
    lat = shapely.get_y(hh.geometry.values)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    if "building_id" in hh.columns:
        bid = pd.factorize(hh["building_id"], use_na_sentinel=True)[0]
    else:
        bid = np.full(n, -1)
    in_bld = bid >= 0
    keys = pd.DataFrame(
        {
            "v": village,
            "b": bid,
            "x": np.where(in_bld, 0.0, x),
            "y": np.where(in_bld, 0.0, y),
        }
    )
    gid = keys.groupby(["v", "b", "x", "y"], sort=True).ngroup().to_numpy()
    order = np.argsort(gid, kind="stable")
    n_groups = int(gid.max()) + 1 if n else 0
    g_count = np.bincount(gid, minlength=n_groups)
    g_xy = np.column_stack(
        [
            np.bincount(gid, weights=x, minlength=n_groups) / g_count,
            np.bincount(gid, weights=y, minlength=n_groups) / g_count,
        ]
    )
    g_village = np.zeros(n_groups, dtype=np.int64)
    g_village[gid] = village
    # distinct points per village (Delaunay and Voronoi need them)
    for step in range(1, 50):
        pts = pd.DataFrame({"v": g_village, "x": g_xy[:, 0], "y": g_xy[:, 1]})
        dup = pts.duplicated().to_numpy()
        if not dup.any():
            break
        g_xy[dup, 0] += _JITTER_M * step

    n_v = len(codes)
    g_start = np.searchsorted(g_village, np.arange(n_v + 1))
    hh_village = village[order]
    hh_start = np.searchsorted(hh_village, np.arange(n_v + 1))
    geoms = np.asarray(leaf.to_crs(crs).geometry.values, dtype=object)
    return Prepared(
        n=n,
        crs=crs,
        codes=codes,
        geoms=geoms,
        order=order,
        hh_start=hh_start,
        hh_group=gid[order],
        hh_village=hh_village,
        g_start=g_start,
        g_xy=g_xy,
        g_count=g_count,
    )


def delaunay_edges(xy: np.ndarray) -> np.ndarray:
    """Undirected edges ``(m, 2)`` (``a < b``) of the Delaunay graph of ``xy``.

    One point: no edge; two points: one edge; all points collinear: a chain
    along the line. Points Qhull leaves out (coplanar) join their nearest vertex.

    Examples
    --------
    >>> delaunay_edges(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])).tolist()
    [[0, 1], [0, 2], [1, 2]]
    >>> delaunay_edges(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])).tolist()
    [[0, 1], [1, 2]]
    """
    n = len(xy)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if n == 2:
        return np.array([[0, 1]], dtype=np.int64)
    try:
        tri = Delaunay(xy)
    except QhullError:
        # collinear: chain the points along their main direction
        c = xy - xy.mean(axis=0)
        axis = np.linalg.svd(c, full_matrices=False)[2][0]
        seq = np.argsort(c @ axis, kind="stable")
        e = np.column_stack([seq[:-1], seq[1:]])
    else:
        s = tri.simplices
        e = np.vstack([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
        if len(tri.coplanar):
            e = np.vstack([e, tri.coplanar[:, [0, 2]]])
    e = np.sort(e.astype(np.int64), axis=1)
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0)


def to_csr(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """METIS-style ``(xadj, adjncy)`` of an undirected edge list."""
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    o = np.lexsort((dst, src))
    xadj = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=xadj[1:])
    return xadj, dst[o]


def _polygonal(g: Any) -> Any:
    if g is None or g.geom_type in ("Polygon", "MultiPolygon") or g.is_empty:
        return g
    polys = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
    return shapely.multipolygons(polys) if polys else shapely.Polygon()


def voronoi_cells(xy: np.ndarray, geom: Any) -> np.ndarray:
    """Voronoi cell of each point (same order), clipped to ``geom``."""
    if len(xy) == 1:
        return np.array([geom], dtype=object)
    vor = shapely.voronoi_polygons(
        shapely.multipoints(xy), extend_to=geom, ordered=True
    )
    cells = shapely.get_parts(vor)
    if len(cells) != len(xy):  # pragma: no cover - GEOS drops only duplicates
        raise RuntimeError("Voronoi cells do not match the points")
    cells = shapely.intersection(cells, geom)
    odd = ~np.isin(shapely.get_type_id(cells), (3, 6))
    for i in np.flatnonzero(odd):
        cells[i] = _polygonal(cells[i])
    return cells


def parts_per_village(v: Village) -> int:
    """``max(1, round(households / 250))`` — the grid count every baseline is given."""
    return max(1, round(v.households / 250))


# --------------------------------------------------------------------------- scoring


@dataclass
class _Score:
    """Per-label accumulators of one tool (labels ``0..L-1``)."""

    labels: np.ndarray  # per sorted household
    size: np.ndarray
    villages: np.ndarray
    area: np.ndarray
    perim: np.ndarray
    connected: np.ndarray
    pieces: dict[int, list[Any]]


def _new_score(prep: Prepared, labels: np.ndarray) -> _Score:
    lab = pd.factorize(pd.Series(labels), use_na_sentinel=False)[0]
    lab = lab[prep.order].astype(np.int64)
    n_lab = int(lab.max()) + 1 if len(lab) else 0
    pairs = np.unique(lab * max(prep.villages, 1) + prep.hh_village)
    villages = np.bincount(pairs // max(prep.villages, 1), minlength=n_lab)
    return _Score(
        labels=lab,
        size=np.bincount(lab, minlength=n_lab),
        villages=villages,
        area=np.zeros(n_lab),
        perim=np.zeros(n_lab),
        connected=np.ones(n_lab, dtype=bool),
        pieces={},
    )


def _score_village(
    sc: _Score,
    lab: np.ndarray,
    grp: np.ndarray,
    edges: np.ndarray,
    cells: np.ndarray,
    c_area: np.ndarray,
    c_perim: np.ndarray,
    shared: np.ndarray,
) -> None:
    """Add one village's contribution to the per-label accumulators of ``sc``."""
    n_g = len(cells)
    # (label, group) pairs: a group split between labels belongs to each of them
    ul, linv = np.unique(lab, return_inverse=True)
    keys = np.unique(linv.astype(np.int64) * n_g + grp)
    p_lab, p_grp = keys // n_g, keys % n_g
    # Delaunay edges whose two ends share a label -> edges between pairs
    by_grp = np.lexsort((p_lab, p_grp))
    g_first = np.searchsorted(p_grp[by_grp], np.arange(n_g))
    n_per = np.bincount(p_grp, minlength=n_g)
    if len(edges):
        k = n_per[edges[:, 0]]
        rep = np.repeat(np.arange(len(edges)), k)
        off = np.arange(len(rep)) - np.repeat(np.cumsum(k) - k, k)
        lab_a = p_lab[by_grp[g_first[edges[rep, 0]] + off]]
        key_a = lab_a * n_g + edges[rep, 0]
        key_b = lab_a * n_g + edges[rep, 1]
        pos_b = np.minimum(np.searchsorted(keys, key_b), len(keys) - 1)
        hit = keys[pos_b] == key_b
        pid_a = np.searchsorted(keys, key_a[hit])
        pid_b = pos_b[hit]
        e_lab = lab_a[hit]
        e_len = shared[rep[hit]]
    else:
        pid_a = pid_b = e_lab = np.zeros(0, dtype=np.int64)
        e_len = np.zeros(0)
    n_p = len(keys)
    graph = coo_matrix((np.ones(len(pid_a)), (pid_a, pid_b)), shape=(n_p, n_p))
    comp = connected_components(graph, directed=False)[1]
    n_comp = np.bincount(np.unique(p_lab * n_p + comp) // n_p, minlength=len(ul))

    area = np.bincount(p_lab, weights=c_area[p_grp], minlength=len(ul))
    perim = np.bincount(p_lab, weights=c_perim[p_grp], minlength=len(ul))
    perim -= 2 * np.bincount(e_lab, weights=e_len, minlength=len(ul))
    sc.connected[ul[n_comp > 1]] = False
    local = sc.villages[ul] == 1
    sc.area[ul[local]] += area[local]
    sc.perim[ul[local]] += perim[local]
    for j in np.flatnonzero(~local):
        piece = shapely.union_all(cells[p_grp[p_lab == j]])
        sc.pieces.setdefault(int(ul[j]), []).append(piece)


def evaluate(
    prep: Prepared,
    labels: dict[str, np.ndarray],
    *,
    lo: float = 200,
    hi: float = 300,
) -> dict[str, dict[str, Any]]:
    """Score each tool's household labels (aligned to the household frame's rows)."""
    scores = {name: _new_score(prep, np.asarray(lab)) for name, lab in labels.items()}
    for v in range(prep.villages):
        hs, he = prep.hh_start[v], prep.hh_start[v + 1]
        if he == hs:
            continue
        vil = prep.village(v)
        edges = delaunay_edges(vil.xy)
        cells = voronoi_cells(vil.xy, vil.geom)
        c_area = shapely.area(cells)
        c_perim = shapely.length(cells)
        if len(edges):
            bnd = shapely.boundary(cells)
            shared = shapely.length(
                shapely.intersection(bnd[edges[:, 0]], bnd[edges[:, 1]])
            )
        else:
            shared = np.zeros(0)
        for sc in scores.values():
            _score_village(
                sc, sc.labels[hs:he], vil.group, edges, cells, c_area, c_perim, shared
            )
    return {name: _summary(sc, lo, hi) for name, sc in scores.items()}


def _drop_slivers(g: Any, min_area: float = _SLIVER_M2) -> Any:
    """``g`` without holes and parts under ``min_area`` m² (seams between villages)."""
    polys = []
    for p in shapely.get_parts(g):
        if p.geom_type != "Polygon" or p.area < min_area:
            continue
        holes = [r for r in p.interiors if shapely.Polygon(r).area >= min_area]
        polys.append(shapely.Polygon(p.exterior, holes))
    if not polys:
        return g
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _summary(sc: _Score, lo: float, hi: float) -> dict[str, Any]:
    for lab, pieces in sc.pieces.items():
        u = _drop_slivers(shapely.union_all(pieces))
        sc.area[lab], sc.perim[lab] = u.area, u.length
    n = len(sc.size)
    if n == 0:
        return {"grids": 0}
    pp = np.where(
        sc.perim > 0, 4 * math.pi * sc.area / np.maximum(sc.perim, 1e-12) ** 2, 0.0
    )
    in_band = (sc.size >= lo) & (sc.size <= hi)
    return {
        "grids": n,
        "households": int(sc.size.sum()),
        "in_band": int(in_band.sum()),
        "in_band_share": round(float(in_band.mean()), 4),
        "min_households": int(sc.size.min()),
        "max_households": int(sc.size.max()),
        "mean_households": round(float(sc.size.mean()), 2),
        "under_band": int((sc.size < lo).sum()),
        "over_band": int((sc.size > hi).sum()),
        "contiguous": int(sc.connected.sum()),
        "contiguous_share": round(float(sc.connected.mean()), 4),
        "village_crossings": int((sc.villages > 1).sum()),
        "pp_mean": round(float(pp.mean()), 4),
        "pp_median": round(float(np.median(pp)), 4),
        "pp_min": round(float(pp.min()), 4),
    }
