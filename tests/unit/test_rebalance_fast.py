"""The shortcuts rebalancing takes give what the plain computations give."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import geo.gridding._adjacency as adjacency_mod
import geo.gridding._atoms as atoms_mod
from geo.gridding._adjacency import _components, _connected, _graph
from geo.gridding._atoms import _Atom, _clipped, _raw_cells
from geo.gridding._codes import _id_rows, _positions
from geo.gridding.rebalance import _oversize, _oversize_of
from geo.plan import Band


def test_id_rows_are_the_lookup_and_count_of_the_identifiers() -> None:
    rng = np.random.default_rng(0)
    pool = [f"h{i}" for i in range(40)]
    for trial in range(300):
        n, m = int(rng.integers(0, 30)), int(rng.integers(0, 30))
        repeat = trial % 5 == 0
        keys = list(rng.choice(pool, n, replace=repeat)) if n else []
        index = (
            keys[: min(m, n)]
            if trial % 3 == 0
            else (list(rng.choice(pool, m, replace=True)) if m else [])
        )
        ks, ix = pd.Series(keys, dtype="str"), pd.Series(index, dtype="str")
        rows, distinct = _id_rows(ks, ix)
        if ks.duplicated().any():
            assert rows is None
            continue
        assert rows is not None
        assert rows.tolist() == _positions(ks, pd.Index(ix)).tolist()
        assert distinct == pd.Index(ix).nunique()


def test_id_rows_take_columns_put_together_from_several_frames() -> None:
    keys = pd.concat(
        [pd.Series(["a", "b"], dtype="str"), pd.Series(["c"], dtype="str")],
        ignore_index=True,
    )
    index = pd.concat(
        [pd.Series(["c"], dtype="str"), pd.Series(["a", "x"], dtype="str")],
        ignore_index=True,
    )
    rows, distinct = _id_rows(keys, index)
    assert rows is not None
    assert rows.tolist() == [1, -1, 0]
    assert distinct == 3


def test_id_rows_leave_other_columns_to_the_caller() -> None:
    with pytest.raises(TypeError):
        _id_rows(pd.Series([1, 2]), pd.Series(["a"], dtype="str"))
    with pytest.raises(TypeError):
        _id_rows(pd.Series(["a", None], dtype="str"), pd.Series(["a"], dtype="str"))


@pytest.mark.parametrize("weighted", [False, True])
def test_oversize_sieve_finds_what_grouping_every_household_finds(
    weighted: bool,
) -> None:
    rng = np.random.default_rng(1)
    band = Band(200, 300)
    found = 0
    for trial in range(60):
        n = int(rng.integers(1, 3000))
        xy = rng.integers(0, int(rng.integers(1, 40)), (n, 2)) * 1e-4 + 118
        hh = gpd.GeoDataFrame(
            {"household_id": [f"h{i}" for i in range(n)]},
            geometry=shapely.points(xy),
            crs=4326,
        )
        if trial % 2:
            b = rng.integers(0, int(rng.integers(1, 30)), n)
            ids = [None if rng.random() < 0.5 else f"B{x}" for x in b]
            hh["building_id"] = pd.array(ids, dtype="str")
        pos = rng.integers(0, 3, n)
        loads = rng.random(n) * 3 if weighted else np.ones(n)
        codes = ["A", "B", "C"]
        b_all = (
            pd.factorize(hh["building_id"])[0]
            if "building_id" in hh.columns
            else np.full(n, -1)
        )
        xy_all = shapely.get_coordinates(hh.geometry.values)
        every = _oversize_of(
            hh,
            np.arange(n),
            b_all=b_all,
            xy_all=xy_all,
            pos_all=pos,
            loads_all=loads,
            band=band,
            codes=codes,
        )
        assert _oversize(hh, pos, loads, band, codes) == every
        found += bool(every)
    assert found  # some buildings were over the band


def _voronoi_case(seed: int) -> tuple[np.ndarray, shapely.Polygon, list]:
    rng = np.random.default_rng(seed)
    ring = shapely.Point(118.5, 29.0).buffer(0.002, quad_segs=3)
    window = shapely.difference(ring, shapely.box(118.5, 28.999, 118.503, 29.003))
    pts = rng.uniform([118.498, 28.998], [118.502, 29.002], (300, 2))
    keep = shapely.contains_xy(window, pts[:, 0], pts[:, 1])
    keys = [tuple(p) for p in pts[keep].tolist()]
    return _raw_cells(window, keys), window, keys


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cells_inside_the_polygon_are_those_the_overlay_gives(seed: int) -> None:
    raw, window, _ = _voronoi_case(seed)
    built, inner = _clipped(raw, window)
    assert inner.any() and not inner.all()
    plain = shapely.intersection(raw, window)
    assert [shapely.to_wkb(c) for c in built] == [shapely.to_wkb(c) for c in plain]


def test_cells_are_overlaid_when_the_shortcut_disagrees(monkeypatch) -> None:
    raw, window, _ = _voronoi_case(3)
    monkeypatch.setattr(
        atoms_mod, "_started_on", lambda polys: shapely.normalize(polys)
    )
    built, inner = _clipped(raw, window)
    assert not inner.any()
    plain = shapely.intersection(raw, window)
    assert [shapely.to_wkb(c) for c in built] == [shapely.to_wkb(c) for c in plain]


def _window_graph(seed: int, shortcut: bool, monkeypatch) -> adjacency_mod._Graph:
    _, window, keys = _voronoi_case(seed)
    atoms = [_Atom(x, y, 1.0, 1, np.array([i])) for i, (x, y) in enumerate(keys)]
    if not shortcut:
        monkeypatch.setattr(
            atoms_mod,
            "_clipped",
            lambda cells, geom: (
                shapely.intersection(cells, geom),
                np.zeros(len(cells), dtype=bool),
            ),
        )
    g = _graph(window, list(range(len(atoms))), atoms, 0.87)
    monkeypatch.undo()
    assert g is not None
    return g


@pytest.mark.parametrize("seed", [0, 4])
def test_shared_edges_measured_from_vertices_are_the_intersections(
    seed: int, monkeypatch
) -> None:
    fast = _window_graph(seed, True, monkeypatch)
    slow = _window_graph(seed, False, monkeypatch)
    for name in ("eu", "ev", "elen", "area", "perim", "w", "virtual"):
        assert getattr(fast, name).tobytes() == getattr(slow, name).tobytes(), name
    assert [[shapely.to_wkb(p) for p in r] for r in fast.regions] == [
        [shapely.to_wkb(p) for p in r] for r in slow.regions
    ]


def test_connected_is_components_in_one_piece() -> None:
    rng = np.random.default_rng(2)
    for _ in range(500):
        n, m = int(rng.integers(1, 30)), int(rng.integers(0, 50))
        eu, ev = rng.integers(0, n, m), rng.integers(0, n, m)
        whole = int(_components(n, eu.tolist(), ev.tolist()).max()) == 0
        assert _connected(n, eu, ev) == whole


def test_kruskal_draws_the_tree_boruvka_draws(monkeypatch) -> None:
    import geo.gridding._trees as trees_mod

    rng = np.random.default_rng(3)
    for trial in range(200):
        n = int(rng.integers(1, 60))
        m = int(rng.integers(0, 4 * n))
        eu, ev = rng.integers(0, n, m), rng.integers(0, n, m)
        nodes = np.flatnonzero(rng.random(n) < 0.9) if trial % 2 else np.arange(n)
        inside = np.zeros(n, dtype=bool)
        inside[nodes] = True
        keep = inside[eu] & inside[ev]
        eu, ev = eu[keep], ev[keep]
        # ties in weight too (broken by position)
        w = rng.integers(0, 5, len(eu)).astype(float)
        kruskal = trees_mod._spanning_tree(nodes, eu, ev, w)
        monkeypatch.setattr(trees_mod, "_KRUSKAL_MAX", -1)
        boruvka = trees_mod._spanning_tree(nodes, eu, ev, w)
        monkeypatch.undo()
        if boruvka is None:
            assert kruskal is None
        else:
            assert kruskal is not None and kruskal.tolist() == boruvka.tolist()
