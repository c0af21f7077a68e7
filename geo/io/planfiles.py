"""The file-mode plan format: grids.geojson, assignments.csv, report.json (a contract)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.crs import STORAGE_CRS
from geo.io.tables import _fail, read_table

__all__ = ["GRID_FILE_COLUMNS", "read_plan_files", "write_plan_files"]


#: Columns of ``grids.geojson`` other tools read; keep them stable.
GRID_FILE_COLUMNS = ("grid_code", "area_code", "households")


def write_plan_files(
    grids: gpd.GeoDataFrame,
    assignments: pd.DataFrame,
    report: Mapping[str, Any],
    out_dir: str | Path,
) -> dict[str, Path]:
    """Write a plan as ``grids.geojson``, ``assignments.csv`` and ``report.json``.

    ``grids.geojson`` has one feature per grid with ``grid_code``, ``area_code``,
    ``households`` (plus ``load``, ``exception``, ``cause`` when present), EPSG:4326
    polygons; ``assignments.csv`` is ``household_id,grid_code`` with every
    household once; ``report.json`` holds metrics, exceptions and seconds.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = [c for c in ("load", "exception", "cause", "areas") if c in grids.columns]
    g = grids[[*GRID_FILE_COLUMNS, *extra, grids.geometry.name]].to_crs(STORAGE_CRS)
    paths = {
        "grids": out / "grids.geojson",
        "assignments": out / "assignments.csv",
        "report": out / "report.json",
    }
    tmp = paths["grids"].with_suffix(".tmp.geojson")
    g.to_file(tmp, driver="GeoJSON", engine="pyogrio", RFC7946="YES", WRITE_NAME="NO")
    tmp.replace(paths["grids"])
    assignments[["household_id", "grid_code"]].to_csv(
        paths["assignments"], index=False, encoding="utf-8"
    )
    paths["report"].write_text(
        json.dumps(report, ensure_ascii=False, indent=2, default=_json_default),
        encoding="utf-8",
    )
    return paths


def read_plan_files(plan_dir: str | Path) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Read ``grids.geojson`` and ``assignments.csv`` written by :func:`write_plan_files`."""
    d = Path(plan_dir)
    for name in ("grids.geojson", "assignments.csv"):
        if not (d / name).exists():
            raise _fail(str(d), f"not a plan folder: {name} is missing")
    grids = read_table(d / "grids.geojson")
    missing = [c for c in GRID_FILE_COLUMNS if c not in grids.columns]
    if missing:
        raise _fail("grids.geojson", f"missing column(s) {', '.join(missing)}")
    assignments = pd.read_csv(d / "assignments.csv", dtype=str, keep_default_na=False)
    if list(assignments.columns[:2]) != ["household_id", "grid_code"]:
        raise _fail("assignments.csv", "expected the columns household_id,grid_code")
    return grids.to_crs(STORAGE_CRS), assignments


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    return str(o)
