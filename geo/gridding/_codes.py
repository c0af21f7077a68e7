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


def _id_rows(
    keys: pd.Series, index: pd.Series | pd.Index
) -> tuple[np.ndarray | None, int]:
    """One hash pass over two columns of identifiers (Arrow strings, none missing):
    the row of each of ``keys`` in ``index`` (its first, as :func:`_positions`
    gives it; -1 where it is not there) and how many distinct values ``index``
    holds (``nunique``); rows None when ``keys`` repeat a value.

    Raises ``TypeError`` for other columns (the caller looks them up one by one).
    """
    for col in (keys, index):
        dt = col.dtype
        if not (isinstance(dt, pd.StringDtype) and dt.storage == "pyarrow"):
            raise TypeError("identifiers are not Arrow strings")
    k, v = pa.array(keys), pa.array(index)
    # (a column put together from several frames comes in chunks)
    if isinstance(k, pa.ChunkedArray):
        k = k.combine_chunks()
    if isinstance(v, pa.ChunkedArray):
        v = v.combine_chunks()
    if k.type != v.type:
        v = v.cast(k.type)
    if k.null_count or v.null_count:
        raise TypeError("missing identifiers")
    m = len(v)
    enc = pa.concat_arrays([v, k]).dictionary_encode()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    d = len(enc.dictionary)
    cv, ck = codes[:m], codes[m:]
    if len(ck) and int(np.bincount(ck, minlength=d).max()) > 1:
        return None, 0
    at = np.full(d, -1, dtype=np.int64)
    count = np.bincount(cv, minlength=d)
    distinct = int((count > 0).sum())
    if distinct == m:
        at[cv] = np.arange(m)
    else:  # repeated identifiers: the first of each
        seen, first = np.unique(cv, return_index=True)
        at[seen] = first
    return at[ck], distinct


def _next_code(area: str, used: set[str], digits: int = 2) -> str:
    """The next free sequence number in ``area`` after every code ever used."""
    pat = re.compile(rf"^{re.escape(area)}(\d{{{digits}}})$")
    seqs = [int(m.group(1)) for c in used if (m := pat.match(c))]
    n = max(seqs, default=0) + 1
    code = f"{area}{str(n).zfill(digits)}"
    used.add(code)
    return code
