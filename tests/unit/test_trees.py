"""Exact cuts of spanning trees (geo.gridding._trees) and the engine on units where an
in-band partition exists by construction (issue 24, items 1 and 4)."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import geo.gridding._recut as recut
from geo.gridding._atoms import _Atom
from geo.gridding._recut import _recut_pieces
from geo.gridding._trees import _cut_tree, _subset_sum_proof
from geo.gridding.generate import generate_grids
from geo.plan import Band

LO, HI = 200, 300


# ---- the tree programme against brute force -------------------------------------


def _brute_cut(parent: list[int], w: list[int], lo: int, hi: int) -> bool:
    """Whether some set of tree edges, removed, leaves every part in [lo, hi]."""
    n = len(parent)
    edges = [v for v in range(n) if parent[v] >= 0]
    for r in range(len(edges) + 1):
        for cut in itertools.combinations(edges, r):
            cs = set(cut)
            sums: dict[int, int] = {}
            for v in range(n):
                top = v
                while parent[top] >= 0 and top not in cs:
                    top = parent[top]
                sums[top] = sums.get(top, 0) + w[v]
            if all(lo <= s <= hi for s in sums.values()):
                return True
    return False


@st.composite
def trees(draw):
    n = draw(st.integers(1, 9))
    parent = [-1] + [draw(st.integers(0, v - 1)) for v in range(1, n)]
    w = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    lo = draw(st.integers(1, 8))
    hi = lo + draw(st.integers(0, 4))
    return parent, w, lo, hi


@settings(max_examples=150, deadline=None)
@given(trees())
def test_the_tree_programme_decides_exactly_and_its_cut_is_in_band(case) -> None:
    parent, w, lo, hi = case
    lab = _cut_tree(
        np.array(parent), np.arange(len(parent)), np.array(w), (lo, hi, (lo + hi) // 2)
    )
    assert (lab is not None) == _brute_cut(parent, w, lo, hi)
    if lab is None:
        return
    for p in set(lab.tolist()):
        nodes = [v for v in range(len(parent)) if lab[v] == p]
        assert lo <= sum(w[v] for v in nodes) <= hi
        # connected in the tree: one node of the part has its parent outside it
        tops = [v for v in nodes if parent[v] < 0 or lab[parent[v]] != p]
        assert len(tops) == 1


def _brute_lonely(w: list[int], lo: int, hi: int) -> set[int]:
    """Loads of buildings that belong to no subset with a total in [lo, hi]."""
    lonely = set()
    for i, wi in enumerate(w):
        others = w[:i] + w[i + 1 :]
        sums = {0}
        for x in others:
            sums |= {s + x for s in sums}
        if wi <= hi and not any(lo <= s + wi <= hi for s in sums):
            lonely.add(wi)
    return lonely


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=9),
    st.integers(1, 20),
    st.integers(0, 6),
)
def test_the_subset_sum_proof_is_exact(w, lo, width) -> None:
    hi = lo + width
    proof = _subset_sum_proof(np.array(w, dtype=float), Band(lo, hi))
    lonely = _brute_lonely(w, lo, hi)
    if not lonely:
        assert proof is None
    else:
        assert proof is not None
        assert set(proof["building_loads"]) == {float(v) for v in lonely}


def test_weighted_loads_are_not_proven() -> None:
    """Loads that are not whole (a weight column) are never "proven" infeasible."""
    assert _subset_sum_proof(np.array([170.5, 170.0, 170.0]), Band(LO, HI)) is None


# ---- adversarial units: in-band connected parts put side by side, shuffled ------


def _composition(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` positive whole sizes, at random."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(int).tolist()


def _regions(rng: np.random.Generator, nx: int, ny: int, k: int) -> np.ndarray:
    """A random partition of an ``nx × ny`` lattice into ``k`` connected regions
    (grown from random seeds, one cell at a time): shapes no straight cut follows."""
    lab = np.full((nx, ny), -1)
    seeds = rng.choice(nx * ny, size=k, replace=False)
    frontier: list[tuple[int, int, int]] = []
    for r, s in enumerate(seeds.tolist()):
        lab[s // ny, s % ny] = r
        frontier.append((s // ny, s % ny, r))
    while frontier:
        i, j, r = frontier.pop(int(rng.integers(len(frontier))))
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < nx and 0 <= b < ny and lab[a, b] < 0:
                lab[a, b] = r
                frontier.append((a, b, r))
                frontier.append((i, j, r))
                break
    return lab


@st.composite
def constructed_units(draw):
    """A village of ``nx × ny`` lattice cells, one building at the middle of each,
    cut into ``k`` random connected regions, each an in-band part (totalling
    200–300, or with ``tight`` exactly 200, so every grid must hold exactly 200).
    The buildings' cells are the lattice's squares, so each region is connected on
    the building graph: a contiguous in-band partition exists by construction, in
    shapes that straight cuts do not follow. Households come shuffled."""
    k = draw(st.integers(1, 6))
    per = draw(st.integers(1, 24))  # cells per region, about: few means big buildings
    tight = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    nx = max(1, int(np.ceil(np.sqrt(k * per))))
    ny = max(1, -(-(k * per) // nx))
    lab = _regions(rng, nx, ny, min(k, nx * ny))
    s = 0.0006
    rows = []
    for r in range(int(lab.max()) + 1):
        cells = np.argwhere(lab == r)
        total = LO if tight else int(rng.integers(LO, HI + 1))
        assume(len(cells) <= total)
        sizes = _composition(rng, total, len(cells)) if len(cells) > 1 else [total]
        for (i, j), n in zip(cells.tolist(), sizes, strict=True):
            x = (i + 0.5 + rng.uniform(-0.04, 0.04)) * s
            y = (j + 0.5 + rng.uniform(-0.04, 0.04)) * s
            rows += [(f"{i}.{j}-{m}", f"{i}.{j}", x, y) for m in range(n)]
    order = rng.permutation(len(rows))
    rows = [rows[q] for q in order]
    hh = gpd.GeoDataFrame(
        {"household_id": [r[0] for r in rows], "building_id": [r[1] for r in rows]},
        geometry=shapely.points([r[2] for r in rows], [r[3] for r in rows]),
        crs=4326,
    )
    return shapely.box(0, 0, nx * s, ny * s), hh


@settings(max_examples=40, deadline=None)
@given(constructed_units())
def test_a_unit_built_of_in_band_parts_is_always_cut_in_band(case) -> None:
    unit, hh = case
    plan = generate_grids(
        hh, gpd.GeoDataFrame({"code": ["V1"]}, geometry=[unit], crs=4326)
    )
    g = plan.grids
    assert g["load"].between(LO, HI).all(), (
        sorted(g["load"]),
        [e.get("cause") for e in plan.report["exceptions"]],
    )
    assert (g["parts"] == 1).all()
    geoms = np.asarray(g.geometry.values, dtype=object)
    union = shapely.union_all(geoms)
    assert shapely.symmetric_difference(union, unit).area < 1e-10
    assert abs(shapely.area(geoms).sum() - union.area) < 1e-10
    assert sorted(plan.assignments["household_id"]) == sorted(hh["household_id"])


@settings(max_examples=25, deadline=None)
@given(constructed_units())
def test_the_tree_method_alone_cuts_a_constructed_unit_in_band(case) -> None:
    """With the bipartition search given no steps at all, the spanning trees alone
    re-cut the whole unit (one out-of-band piece) into contiguous in-band grids."""
    unit, hh = case
    xy = shapely.get_coordinates(np.asarray(hh.geometry.values, dtype=object))
    codes, first = np.unique(hh["building_id"].to_numpy(), return_inverse=True)
    atoms = []
    for b in range(len(codes)):
        rows = np.flatnonzero(first == b)
        x, y = xy[rows[0]]
        atoms.append(_Atom(float(x), float(y), float(len(rows)), len(rows), rows))
    old_steps = recut.RECUT_STEPS
    recut.RECUT_STEPS = 0
    try:
        pieces = _recut_pieces(
            unit, [(unit, list(range(len(atoms))))], atoms, Band(LO, HI), 1.0
        )
    finally:
        recut.RECUT_STEPS = old_steps
    loads = [sum(atoms[a].load for a in m) for _, m in pieces]
    if len(hh) > HI:
        assert all(LO <= v <= HI for v in loads), loads
    assert sorted(a for _, m in pieces for a in m) == list(range(len(atoms)))
    assert all(len(shapely.get_parts(g)) == 1 for g, _ in pieces)
