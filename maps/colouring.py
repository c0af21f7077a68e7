"""Grid adjacency and greedy colouring so that no two neighbouring grids share a colour."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

__all__ = ["GRID_PALETTE", "MEMBER_PALETTE", "adjacency", "greedy_colouring"]

#: Soft, distinguishable fills for grids (colour-blind friendlier order first).
GRID_PALETTE: tuple[str, ...] = (
    "#8dd3c7",
    "#fdb462",
    "#bebada",
    "#fb8072",
    "#80b1d3",
    "#b3de69",
    "#fccde5",
    "#ffed6f",
    "#bc80bd",
    "#ccebc5",
    "#d9d9d9",
    "#e5c494",
)
#: Saturated colours for the party members who cover households.
MEMBER_PALETTE: tuple[str, ...] = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#1f78b4",
    "#b2182b",
    "#01665e",
)


def adjacency(geoms: Any) -> list[set[int]]:
    """Neighbours of each polygon: the polygons it touches (shares an edge or a point).

    Examples
    --------
    >>> import shapely
    >>> boxes = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)]
    >>> adjacency(boxes)
    [{1}, {0}, set()]
    """
    arr = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    nbrs: list[set[int]] = [set() for _ in range(len(arr))]
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i != j:
            nbrs[i].add(j)
            nbrs[j].add(i)
    return nbrs


def greedy_colouring(neighbours: list[set[int]], n_colours: int) -> list[int]:
    """Colour index per node, different from every neighbour's when possible.

    Welsh–Powell order (most neighbours first, ties by index, so the result is
    deterministic); each node takes the lowest colour no neighbour has. Grid
    maps are planar, so a dozen colours are plenty; if a node ever has every
    colour around it, it takes the one least used among its neighbours.

    Examples
    --------
    >>> greedy_colouring([{1, 2}, {0, 2}, {0, 1}, set()], 3)
    [0, 1, 2, 0]
    """
    order = sorted(range(len(neighbours)), key=lambda i: (-len(neighbours[i]), i))
    colour = [-1] * len(neighbours)
    for i in order:
        used = [colour[j] for j in neighbours[i] if colour[j] >= 0]
        free = [c for c in range(n_colours) if c not in used]
        colour[i] = free[0] if free else min(range(n_colours), key=used.count)
    return colour
