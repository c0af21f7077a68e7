"""Partitioning a unit into grids: recursive straight cuts, then moves and sequence fallbacks."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import _Atom, _Unit
from geo.gridding._geometry import (
    _ANGLES,
    _overlay,
    _parts_with_atoms,
    _poly_only,
    _repaired,
)
from geo.gridding._moves import _move_into_band, _out_of_band
from geo.gridding._recut import _parts, _recut_pieces
from geo.gridding._sequences import _sequence_partition
from geo.plan import Band

#: each cut angle's direction, from libm (as the cuts always took them)
_DXS = np.array([math.cos(t) for t in _ANGLES.tolist()])
_DYS = np.array([math.sin(t) for t in _ANGLES.tolist()])


class _Points(NamedTuple):
    """A unit's atoms as arrays: cut coordinates, loads and building stacks."""

    xs: np.ndarray
    ys: np.ndarray
    ws: np.ndarray
    stacks: np.ndarray


def _partition(
    u: _Unit,
    atoms: list[_Atom],
    band: Band,
    kx: float,
    *,
    notes: dict[str, Any] | None = None,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Cut the unit's polygon into grids by recursive weighted straight cuts.

    When cuts, building moves and ordered sequences leave a grid of a feasible
    unit out of band, windows around it are re-cut on the building graph
    (:func:`geo.gridding._recut._recut_pieces`); if that search hits its time
    cap, ``notes["_cause"]`` says so (``("search_timed_out", {"cap_s": …})``).
    """
    k = band.grid_count(u.load)
    idx = np.asarray(u.atoms, dtype=np.int64)
    if k <= 1:
        return [(u.geom, idx.tolist())]
    idx_l = idx.tolist()
    sel = [atoms[i] for i in idx_l]
    pts = _Points(
        xs=np.array([a.x for a in sel]) * kx,
        ys=np.array([a.y for a in sel]),
        ws=np.array([a.load for a in sel]),
        stacks=np.array([a.stack for a in sel]),
    )
    out: list[tuple[BaseGeometry, list[int]]] = []
    # cut in locally isotropic coordinates (x scaled by cos(lat)), then scale back
    scaled = shapely.transform(u.geom, lambda c: c * np.array([kx, 1.0]))
    _split(scaled, np.arange(len(idx)), k, pts, band, kx=1.0, out=out)
    unscale = np.array([1.0 / kx, 1.0])
    pieces = [
        (
            # (scaling back can leave a ring crossing itself a hair's width)
            _repaired(_poly_only(shapely.transform(g, lambda c: c * unscale))),
            [idx_l[j] for j in m],
        )
        for g, m in out
    ]
    if len(pieces) > 1:
        pieces = _move_into_band(pieces, atoms, band)
        if _out_of_band(pieces, atoms, band):
            better = _sequence_partition(u, atoms, band, kx, pieces)
            if better is not None:
                pieces = better
    broken = int(shapely.get_num_geometries(u.geom)) == 1 and any(
        _parts(g) > 1 for g, _ in pieces
    )
    if (_out_of_band(pieces, atoms, band) or broken) and band.feasible(u.load):
        pieces = _recut_pieces(u.geom, pieces, atoms, band, kx, notes=notes)
    return pieces


def _split(
    geom: BaseGeometry,
    members: np.ndarray,
    k: int,
    pts: _Points,
    band: Band,
    *,
    kx: float,
    out: list[tuple[BaseGeometry, list[int]]],
) -> None:
    xs, ys, ws, stacks = pts.xs, pts.ys, pts.ws, pts.stacks
    if k <= 1 or len(members) <= 1:
        out.append((geom, members.tolist()))
        return
    w = ws[members]
    total = float(w.sum())
    cx0 = float(np.mean(xs[members]))
    cy0 = float(np.mean(ys[members]))
    px = (xs[members] - cx0) * kx
    py = ys[members] - cy0
    st = stacks[members]
    best: tuple[Any, ...] | None = None
    # every angle's order along its direction, prefix loads and cuttable gaps,
    # in a few 2-D numpy calls (row by row the same sorts and sums), shared by
    # every split of the load tried below
    dxs, dys = _DXS, _DYS
    proj = px[None, :] * dxs[:, None] + py[None, :] * dys[:, None]
    orders = np.argsort(proj, axis=1, kind="stable")
    sps = np.take_along_axis(proj, orders, axis=1)
    left_ws = np.cumsum(w[orders], axis=1)[:, :-1]
    right_ws = total - left_ws
    sos = st[orders]
    cuttables = (sps[:, 1:] - sps[:, :-1] > 1e-12) | (
        (sos[:, 1:] == sos[:, :-1]) & (sos[:, 1:] >= 0)
    )
    # the even split first; uneven splits only if no straight cut keeps the band
    k1_options = [k // 2] + [j for j in range(1, k) if j != k // 2]
    for k1 in k1_options:
        k2 = k - k1
        ideal = total * k1 / k
        in_bands = (
            (left_ws >= k1 * band.min - 1e-9)
            & (left_ws <= k1 * band.max + 1e-9)
            & (right_ws >= k2 * band.min - 1e-9)
            & (right_ws <= k2 * band.max + 1e-9)
        )
        # the candidate cuts of every angle (cheap, in numpy), then their halves
        # all at once (one vectorised overlay each), scored in the same order
        cands: list[tuple[bool, int, np.ndarray, float, float, float]] = []
        # per angle, the cuts that keep the band (else every cuttable one): the
        # one nearest the ideal load (the first among equals) and, when several
        # keep the band, those at a quarter and three quarters of them, for all
        # angles in a few 2-D calls (row by row what one angle at a time gave)
        ok_m = cuttables & in_bands
        band_oks = ok_m.any(axis=1)
        cand_m = np.where(band_oks[:, None], ok_m, cuttables)
        n_cand = cand_m.sum(axis=1)
        nears = np.where(cand_m, np.abs(left_ws - ideal), np.inf).argmin(axis=1)
        rank = np.cumsum(cand_m, axis=1)
        q1 = (rank > (n_cand // 4)[:, None]).argmax(axis=1)
        q3 = (rank > ((3 * n_cand) // 4)[:, None]).argmax(axis=1)
        for a, theta, band_ok, n_c, near, i1, i3 in zip(
            range(len(_ANGLES)),
            _ANGLES.tolist(),
            band_oks.tolist(),
            n_cand.tolist(),
            nears.tolist(),
            q1.tolist(),
            q3.tolist(),
            strict=True,
        ):
            if n_c == 0:
                continue
            order, sp, left_w = orders[a], sps[a], left_ws[a]
            picks = {near}
            if band_ok and n_c > 2:
                picks |= {i1, i3}
            for i in sorted(picks):
                c = (sp[i] + sp[i + 1]) / 2
                cands.append((band_ok, i, order, float(left_w[i]), theta, float(c)))
        # a cut that keeps the band (score 0 first) beats every cut that does
        # not, wherever it stands in the order: the others' halves are built
        # only when no cut keeping the band survives its overlay
        halves = _halves(
            geom,
            [cd for cd in cands if cd[0]],
            members,
            pts,
            cx0=cx0,
            cy0=cy0,
            kx=kx,
            ideal=ideal,
        )
        if not halves:
            halves = _halves(
                geom,
                [cd for cd in cands if not cd[0]],
                members,
                pts,
                cx0=cx0,
                cy0=cy0,
                kx=kx,
                ideal=ideal,
            )
        for score, left, right, lm, rm in halves:
            if best is None or score < best[0]:
                best = (score, left, right, lm, rm, k1)
        if best is not None and best[0][0] == 0:
            break
    if best is None:
        out.append((geom, members.tolist()))
        return
    _, left, right, lm, rm, k1 = best
    _split(left, lm, k1, pts, band, kx=kx, out=out)
    _split(right, rm, k - k1, pts, band, kx=kx, out=out)


def _halves(
    geom: BaseGeometry,
    cands: list[tuple[bool, int, np.ndarray, float, float, float]],
    members: np.ndarray,
    pts: _Points,
    *,
    cx0: float,
    cy0: float,
    kx: float,
    ideal: float,
) -> list[tuple[tuple[Any, ...], BaseGeometry, BaseGeometry, np.ndarray, np.ndarray]]:
    """The two halves of ``geom`` for each candidate cut ``(band_ok, i, order,
    left load, angle, offset)`` and their score, in the candidates' order; a
    candidate whose overlay fails (or leaves a half empty) is left out."""
    if not cands:
        return []
    # the half-planes of :func:`_halfplane`, built in one call
    th = np.array([cd[4] for cd in cands])
    off = np.array([cd[5] for cd in cands])
    dx, dy = np.cos(th), np.sin(th)
    cx, cy = cx0 + off * dx / kx, cy0 + off * dy
    minx, miny, maxx, maxy = geom.bounds
    r = 4 * max(maxx - minx, maxy - miny, 1e-9) + np.abs(cx - minx) + np.abs(cy - miny)
    ux, uy, nx, ny = -dy / kx, dx, dx / kx, dy
    nu, nn = np.hypot(ux, uy), np.hypot(nx, ny)
    ux, uy, nx, ny = ux / nu * r, uy / nu * r, nx / nn * r, ny / nn * r
    ring = np.empty((len(cands), 5, 2))
    ring[:, 0, 0], ring[:, 0, 1] = cx + ux, cy + uy
    ring[:, 1, 0], ring[:, 1, 1] = cx + ux - nx, cy + uy - ny
    ring[:, 2, 0], ring[:, 2, 1] = cx - ux - nx, cy - uy - ny
    ring[:, 3, 0], ring[:, 3, 1] = cx - ux, cy - uy
    ring[:, 4] = ring[:, 0]
    hps = shapely.polygons(ring)
    try:
        lefts = shapely.intersection(geom, hps)
    except shapely.errors.GEOSException:  # one at a time, with the fallbacks
        lefts = np.array(
            [_overlay(shapely.intersection, geom, hp) for hp in hps], dtype=object
        )
    xs, ys = pts.xs, pts.ys
    # the polygonal left halves, their parts and Polsby-Popper in vectorised calls
    kept = []
    for q, (cd, lg) in enumerate(zip(cands, lefts, strict=True)):
        if lg is None or (left := _poly_only(lg)).is_empty:
            continue
        kept.append((q, cd, lg, left))
    if not kept:
        return []
    lhalves = np.array([left for *_, left in kept], dtype=object)
    l_parts = shapely.get_num_geometries(lhalves)
    l_pp = _pp_array(lhalves)
    # a lower bound of each score from its left half alone: a score adds the
    # right half's fragment and takes the lesser Polsby-Popper of the two
    bound = []
    for (_, (band_ok, i, order, lw, _, _), _, left), np_l, pp_l in zip(
        kept, l_parts.tolist(), l_pp.tolist(), strict=True
    ):
        lm = members[order[: i + 1]]
        frag_l = int(_parts_with_atoms(left, xs[lm], ys[lm]) > 1) if np_l > 1 else 0
        bound.append((0 if band_ok else 1, frag_l, -round(pp_l, 3), abs(lw - ideal)))
    scored: dict[int, tuple[Any, ...]] = {}

    def score(picks: list[int]) -> None:
        """Right halves and exact scores of the kept candidates ``picks``."""
        rights = _differences(geom, [kept[q][2] for q in picks])
        todo = []
        for q, rg in zip(picks, rights, strict=True):
            _, _, lg, left = kept[q]
            if rg is None:
                continue
            # the right half from the polygonal left half (as the cut always took it)
            if left is not lg:
                rg = _overlay(shapely.difference, geom, left)
                if rg is None:
                    continue
            if (right := _poly_only(rg)).is_empty:
                continue
            todo.append((q, right))
        if not todo:
            return
        rhalves = np.array([rt for _, rt in todo], dtype=object)
        r_parts = shapely.get_num_geometries(rhalves).tolist()
        r_pp = _pp_array(rhalves).tolist()
        for (q, right), np_r, pp_r in zip(todo, r_parts, r_pp, strict=True):
            _, (_, i, order, _, _, _), _, left = kept[q]
            rm = members[order[i + 1 :]]
            flag, frag, _, gap = bound[q]
            if np_r > 1:
                frag += int(_parts_with_atoms(right, xs[rm], ys[rm]) > 1)
            pp = min(float(l_pp[q]), pp_r)
            scored[q] = ((flag, frag, -round(pp, 3), gap), right)

    # the right half of the best bound first; then only candidates that can
    # still beat (or, earlier in the order, tie) the best exact score so far
    # need theirs: every other one would lose to it, so the same cut wins
    first = min(range(len(kept)), key=lambda q: (bound[q], q))
    score([first])
    if scored:
        w = min(scored, key=lambda q: (scored[q][0], q))
        s_w = scored[w][0]
        rest = [
            q
            for q in range(len(kept))
            if q not in scored and (bound[q] < s_w or (bound[q] == s_w and q < w))
        ]
    else:
        rest = [q for q in range(len(kept)) if q != first]
    if rest:
        score(rest)
    out = []
    for q in sorted(scored):
        _, (_, i, order, _, _, _), _, left = kept[q]
        sc, right = scored[q]
        out.append((sc, left, right, members[order[: i + 1]], members[order[i + 1 :]]))
    return out


def _differences(geom: BaseGeometry, lefts: list[BaseGeometry]) -> list[Any]:
    """``geom`` minus each of ``lefts`` in one vectorised call (one at a time, with
    the fallbacks, when GEOS objects to one of them); None where that fails."""
    try:
        return list(shapely.difference(geom, np.array(lefts, dtype=object)))
    except shapely.errors.GEOSException:
        return [_overlay(shapely.difference, geom, lg) for lg in lefts]


def _pp_array(geoms: np.ndarray) -> np.ndarray:
    """Polsby-Popper of each of ``geoms`` (0 without a perimeter)."""
    area, perim = shapely.area(geoms), shapely.length(geoms)
    return np.divide(
        4 * math.pi * area, perim * perim, out=np.zeros(len(geoms)), where=perim > 0
    )
