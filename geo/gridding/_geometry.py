"""Robust polygon operations shared by generation, rebalancing and edits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

_ANGLES = np.deg2rad(np.arange(0.0, 180.0, 22.5))


#: precision (degrees, ~0.01 mm) for overlay operations that move cells between grids
_GRID = 1e-10


#: parts smaller than this (degrees², ~0.01 m²) are overlay slivers, not territory
_SLIVER = 1e-12


def _poly_only(g: BaseGeometry) -> BaseGeometry:
    """The polygonal part of an overlay result (drops touching lines and points)."""
    if g.geom_type in {"Polygon", "MultiPolygon"} or g.is_empty:
        return g
    # (a collection can hold multipolygons, as make_valid returns them, and other
    # collections: their polygons count too)
    parts = shapely.get_parts(g)
    while any(p.geom_type in {"MultiPolygon", "GeometryCollection"} for p in parts):
        parts = shapely.get_parts(parts)
    polys = [p for p in parts if p.geom_type == "Polygon"]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _repaired(g: BaseGeometry) -> BaseGeometry:
    """``g`` if valid, else its polygonal part made valid by structure: each ring
    read as the shell or hole it is meant to be (the area the ring encloses),
    lines and collapsed parts dropped, slivers cleaned. A cut or an unscaled copy
    can leave a ring touching or crossing itself a hair's width; repaired by its
    linework instead, such a ring can gain area its neighbours hold."""
    if g.is_valid:
        return g
    fixed = shapely.make_valid(g, method="structure", keep_collapsed=False)
    return _clean(_poly_only(fixed))


def _union(geoms: Any) -> BaseGeometry:
    """Union that falls back to a 1e-11° precision grid when GEOS hits a robustness error."""
    arr = np.asarray(list(geoms), dtype=object)
    try:
        return _clean(shapely.union_all(arr))
    except shapely.errors.GEOSException:
        fixed = shapely.make_valid(arr)
        return _clean(_poly_only(shapely.union_all(fixed, grid_size=1e-11)))


def _overlay(op: Any, a: Any, b: Any) -> Any:
    """``op(a, b)`` for a shapely overlay (intersection, difference); when GEOS hits
    a robustness error (a side location conflict on near-degenerate edges), again
    on made-valid inputs snapped to a 1e-11° grid; None if that fails too."""
    try:
        return op(a, b)
    except shapely.errors.GEOSException:
        try:
            return op(shapely.make_valid(a), shapely.make_valid(b), grid_size=1e-11)
        except shapely.errors.GEOSException:
            return None


def _clean(g: BaseGeometry) -> BaseGeometry:
    """Drop sliver parts an overlay can leave behind."""
    if shapely.get_num_geometries(g) <= 1:
        return g
    parts = shapely.get_parts(g)
    keep = [p for p in parts if p.area > _SLIVER]
    if len(keep) == len(parts) or not keep:
        return g
    return keep[0] if len(keep) == 1 else shapely.MultiPolygon(keep)


def _halfplane(
    geom: BaseGeometry, cx: float, cy: float, dx: float, dy: float, kx: float
) -> BaseGeometry:
    """Polygon of points p with ((p.x - cx)·kx, p.y - cy) · (dx, dy) <= 0, covering ``geom``."""
    minx, miny, maxx, maxy = geom.bounds
    r = 4 * max(maxx - minx, maxy - miny, 1e-9) + abs(cx - minx) + abs(cy - miny)
    # direction along the cut, and the normal, back in degree space
    ux, uy = -dy / kx, dx
    nx, ny = dx / kx, dy
    norm_u = math.hypot(ux, uy)
    norm_n = math.hypot(nx, ny)
    ux, uy, nx, ny = ux / norm_u * r, uy / norm_u * r, nx / norm_n * r, ny / norm_n * r
    return shapely.Polygon(
        [
            (cx + ux, cy + uy),
            (cx + ux - nx, cy + uy - ny),
            (cx - ux - nx, cy - uy - ny),
            (cx - ux, cy - uy),
        ]
    )


def _pp(g: BaseGeometry, kx: float = 1.0) -> float:
    """Polsby-Popper of ``g`` (already in locally isotropic coordinates)."""
    a, p = g.area, g.length
    return 0.0 if p == 0 else 4 * math.pi * a / (p * p)


def _parts_with_atoms(g: BaseGeometry, xs: np.ndarray, ys: np.ndarray) -> int:
    n_parts = int(shapely.get_num_geometries(g))
    if n_parts <= 1:
        return n_parts
    parts = shapely.get_parts(g)
    if len(parts) <= 1:
        return len(parts)
    pts = shapely.points(xs, ys)
    return sum(bool(shapely.intersects(p, pts).any()) for p in parts)


def _cover_union(geoms: list[BaseGeometry]) -> BaseGeometry:
    """Union of Voronoi cells (edge-matched, no overlaps) by coverage union, which is
    several times faster than a general union; the general one when GEOS objects."""
    try:
        out = shapely.coverage_union_all(np.asarray(geoms, dtype=object))
    except shapely.errors.GEOSException:
        return _union(geoms)
    return _clean(out) if out.is_valid else _union(geoms)
