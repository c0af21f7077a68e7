"""Benchmark: hand edits of a draft cost what they touch, at 20k and 200k households.

    .venv/bin/python bench/edit.py [--sizes 20000,200000] [--moves 30] [--out PATH]

For each size, in the same run: a fresh database with the seeded sample county,
its plan generated, staffed and published; a draft copied from it
(``geo.editing.start_draft``); then ``--moves`` one-household moves across a grid
boundary (each a committed edit through ``geo.editing.Draft``, as the API and
the viewer make them: read the touched grids, check the rules, carry staff,
write the touched rows, record the history), a split and a merge (of the two
halves back), and an undo. Prints p50/p90 per kind and the ratio of the largest
size to the smallest, against issue 22's targets: a one-building move's p50 well
under 100 ms and 200k within 2x of 20k.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
from _db import fresh_database
from sqlalchemy import text

from geo.errors import EditError
from geo.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def _candidates(ws: Workspace, plan_id: int, limit: int) -> list[tuple[str, str]]:
    """(household, neighbouring grid) pairs: a village house nearest its grid's
    neighbour, one per grid pair, for grids with room on both sides."""
    with ws.engine.connect() as conn:
        rows = conn.execute(
            text(
                "WITH g AS (SELECT g.id, g.code, g.geom, count(x.*) AS n FROM grids g "
                "JOIN assignments x ON x.grid_id = g.id WHERE g.plan_id = :p "
                "GROUP BY g.id), pairs AS (SELECT a.id AS a, b.code AS b, b.geom AS bg "
                "FROM g a JOIN g b ON a.id < b.id AND ST_Intersects(a.geom, b.geom) "
                "WHERE a.n > 210 AND b.n < 290 LIMIT :k) "
                "SELECT (SELECT h.external_id FROM assignments x JOIN households h "
                "ON h.id = x.household_id WHERE x.grid_id = pairs.a AND h.building_id "
                "IS NULL ORDER BY h.geom <-> pairs.bg LIMIT 1), pairs.b FROM pairs"
            ),
            {"p": plan_id, "k": limit * 4},
        ).all()
    return [(h, b) for h, b in rows if h is not None]


def run_size(households: int, moves: int) -> dict[str, Any]:
    url = fresh_database(f"gridmap_bench_edit_{households}")
    ws = Workspace.connect(url)
    t0 = time.perf_counter()
    ws.load_sample(households=households, seed=0)
    county = ws.areas(level="county")["code"].iloc[0]
    area = ws.area(county)
    plan = ws.staff(ws.generate(area), area)
    pid = ws.save_draft(area, plan)
    ws.publish(pid)
    setup_s = time.perf_counter() - t0
    t = time.perf_counter()
    d = ws.draft(pid)
    draft_s = time.perf_counter() - t
    times: dict[str, list[float]] = {"move": [], "split": [], "merge": [], "undo": []}
    refused = 0
    for hid, to in _candidates(ws, d.plan_id, moves):
        if len(times["move"]) >= moves:
            break
        t = time.perf_counter()
        try:
            d.move(households=[hid], to_grid=to)
        except EditError:
            refused += 1
            continue
        times["move"].append(time.perf_counter() - t)
    with ws.engine.connect() as conn:
        big = gpd.read_postgis(
            text(
                "SELECT g.code, count(x.*) AS n, g.geom FROM grids g JOIN assignments x "
                "ON x.grid_id = g.id WHERE g.plan_id = :p GROUP BY g.id "
                "ORDER BY n DESC LIMIT 5"
            ),
            conn,
            params={"p": d.plan_id},
        )
    for code in big["code"][:3]:
        t = time.perf_counter()
        r = d.split(code, allow_out_of_band=True)
        times["split"].append(time.perf_counter() - t)
        halves = [g.code for g in r.grids if g.status != "retired"]
        t = time.perf_counter()
        try:  # a grid drawn in two parts splits into pieces that do not touch
            d.merge(halves, allow_out_of_band=True)
        except EditError as exc:
            print(f"merge of {halves} refused: {exc}", flush=True)
            d.undo()  # the split
            continue
        times["merge"].append(time.perf_counter() - t)
        t = time.perf_counter()
        d.undo()
        times["undo"].append(time.perf_counter() - t)
    ws.engine.dispose()
    out: dict[str, Any] = {
        "households": households,
        "setup_s": round(setup_s, 1),
        "draft_copy_s": round(draft_s, 3),
        "moves_refused": refused,
    }
    for k, v in times.items():
        if v:
            v = sorted(v)
            out[f"{k}_n"] = len(v)
            out[f"{k}_p50_ms"] = round(statistics.median(v) * 1000, 1)
            out[f"{k}_p90_ms"] = round(v[min(len(v) - 1, int(0.9 * len(v)))] * 1000, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="20000,200000")
    ap.add_argument("--moves", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/edit.json")
    args = ap.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        row = run_size(n, args.moves)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    small, large = rows[0], rows[-1]
    ratios = {
        k: round(large[k] / small[k], 2)
        for k in small
        if k.endswith("_p50_ms") and k in large and small[k]
    }
    print(
        f"ratio {large['households']} / {small['households']} (p50): "
        + ", ".join(f"{k[:-7]} {v}x" for k, v in ratios.items())
    )
    p50 = large.get("move_p50_ms")
    print(
        f"targets: one-household move p50 at {large['households']}: {p50} ms "
        f"({'met' if p50 is not None and p50 < 100 else 'NOT met'}: well under 100 ms); "
        f"200k within 2x of 20k: "
        + ("met" if ratios and max(ratios.values()) <= 2 else "NOT met")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"sizes": rows, "ratios_p50": ratios}, ensure_ascii=False, indent=2)
        + "\n",
        encoding="utf-8",
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
