"""Grid codes: natural ordering and the next free code of an area."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely


def _natural(
    grids: gpd.GeoDataFrame,
    hh: gpd.GeoDataFrame,
    old: pd.Series,
    *,
    prev_pos: np.ndarray | None = None,
) -> np.ndarray:
    """Grid position of each household under the old plan (kept if still inside).

    ``prev_pos``: each household's old grid as a position in ``grids`` (-1 for none),
    when the caller has it already."""
    codes = grids["grid_code"].astype(str).to_numpy()
    pos_of = pd.Series(np.arange(len(codes)), index=codes)
    pts = np.asarray(hh.geometry.values, dtype=object)
    polys = np.asarray(grids.geometry.values, dtype=object)
    shapely.prepare(polys)  # many points per polygon: test them against prepared ones
    out = np.full(len(hh), -1, dtype=np.int64)
    if prev_pos is None:
        prev = hh["household_id"].map(old).to_numpy(dtype=object)
        at = pos_of.reindex(prev).to_numpy()
        prev_pos = np.where(np.isnan(at), -1, np.nan_to_num(at, nan=-1)).astype(
            np.int64
        )
    known = prev_pos >= 0
    if known.any():
        p = prev_pos[known]
        still = shapely.intersects(polys[p], pts[known])
        # on the edge (within a hair): still there
        edge = np.flatnonzero(~still)
        if len(edge):
            still[edge] = shapely.distance(polys[p[edge]], pts[known][edge]) < 1e-9
        idx = np.flatnonzero(known)
        out[idx[still]] = p[still]
    todo = np.flatnonzero(out < 0)
    if len(todo):
        p_idx, g_idx = grids.sindex.query(pts[todo], predicate="intersects")
        order = np.lexsort((codes[g_idx], p_idx))
        p_idx, g_idx = p_idx[order], g_idx[order]
        first = np.ones(len(p_idx), dtype=bool)
        first[1:] = p_idx[1:] != p_idx[:-1]
        out[todo[p_idx[first]]] = g_idx[first]
    return out


def _positions(keys: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each of ``keys`` (strings) in ``index``, -1 where it is not
    there: a hash lookup in Arrow, several times faster than ``Series.map`` on
    hundreds of thousands of identifiers."""
    k = pa.array(keys)
    v = pa.array(index)
    if k.type != v.type:
        v = v.cast(k.type)
    found = pc.index_in(k, value_set=v)
    return np.asarray(
        found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64
    )


def _next_code(area: str, used: set[str], digits: int = 2) -> str:
    """The next free sequence number in ``area`` after every code ever used."""
    pat = re.compile(rf"^{re.escape(area)}(\d{{{digits}}})$")
    seqs = [int(m.group(1)) for c in used if (m := pat.match(c))]
    n = max(seqs, default=0) + 1
    code = f"{area}{str(n).zfill(digits)}"
    used.add(code)
    return code
