"""Benchmark: load N households (default 1,000,000) from GeoParquet into PostGIS.

Prints seconds per stage and households/s for GridMap's COPY + upsert path and,
in the same process on the same data, for the naive baseline (row-by-row
INSERTs through SQLAlchemy ``executemany``) on a slice, with the ratio.

    .venv/bin/python bench/load.py [--households 1000000] [--baseline 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import fresh_database
from sqlalchemy import text

from geo.io import prepare, read_table
from geo.sample import generate_county
from geo.store.db import make_engine, session_scope
from geo.store.loading import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--households", type=int, default=1_000_000)
    ap.add_argument(
        "--baseline", type=int, default=20_000, help="rows for the naive baseline"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t = time.perf_counter()
    county = generate_county(args.households, seed=args.seed)
    gen_s = time.perf_counter() - t
    n = len(county.households)
    print(
        f"sample county: {n} households, {len(county.areas)} areas (generated in {gen_s:.1f} s)"
    )

    url = fresh_database()
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "households.parquet"
        county.households.to_parquet(path)
        with session_scope(engine) as s:
            load(s, prepare(county.areas, "areas", source="areas"))

        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        frame = read_table(path)
        stages["read GeoParquet"] = time.perf_counter() - t0
        t = time.perf_counter()
        prepared = prepare(frame, "households", source=path.name)
        stages["validate"] = time.perf_counter() - t
        t = time.perf_counter()
        marks: dict[str, float] = {}

        def progress(step: str, done: int, total: int) -> None:
            marks.setdefault(step, time.perf_counter())

        with session_scope(engine) as s:
            report = load(s, prepared, progress=progress)
            t_commit = time.perf_counter()
        stages["resolve areas + normalise + COPY + upsert"] = t_commit - t
        total = time.perf_counter() - t0
        order = sorted(marks.items(), key=lambda kv: kv[1])
        for (step, at), nxt in zip(order, [*order[1:], ("end", t_commit)], strict=True):
            stages[f"  {step}"] = nxt[1] - at

        t = time.perf_counter()
        with session_scope(engine) as s:
            again = load(s, prepare(read_table(path), "households", source=path.name))
        reload_s = time.perf_counter() - t

    print(
        f"\nGridMap load of {n} households: {total:.1f} s ({n / total:,.0f} households/s)"
    )
    for k, v in stages.items():
        print(f"  {k:45s} {v:7.2f} s")
    print(f"  {report}")
    print(f"re-load of the same file (idempotent): {reload_s:.1f} s — {again}")
    print(
        f"target: 1,000,000 households under 60 s → {'MET' if n >= 1_000_000 and total < 60 else ('n/a (smaller run)' if n < 1_000_000 else 'MISSED')}"
    )

    # baseline: row-by-row INSERTs of a slice, same process, same data
    k = min(args.baseline, n)
    sl = county.households.iloc[:k]
    rows = [
        {
            "e": f"base-{hid}",
            "a": addr,
            "p": int(p),
            "x": g.x,
            "y": g.y,
        }
        for hid, addr, p, g in zip(
            sl["household_id"], sl["address"], sl["people"], sl.geometry, strict=True
        )
    ]
    t = time.perf_counter()
    with session_scope(engine) as s:
        s.execute(
            text(
                "INSERT INTO households (external_id, address, people, geom) "
                "VALUES (:e, :a, :p, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            ),
            rows,
        )
    base_s = time.perf_counter() - t
    base_rate = k / base_s
    ours_rate = n / total
    print(
        f"\nbaseline (row-by-row INSERT, {k} rows, no validation/normalisation): "
        f"{base_s:.1f} s = {base_rate:,.0f} rows/s → {n} rows ≈ {n / base_rate:.0f} s"
    )
    print(f"ratio GridMap / baseline throughput: {ours_rate / base_rate:.1f}x")
    engine.dispose()


if __name__ == "__main__":
    main()
