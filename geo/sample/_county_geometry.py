"""Geometry of the sample county: its outline, barriers, seeds, cells and townships
grown from them (metric CRS, then WGS 84)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo.sample._county_facts import (
    COORD_DECIMALS,
)

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
