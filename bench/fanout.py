"""Benchmark: generation single-process vs fanned out on a Dask LocalCluster.

The seeded sample county (``--households``, default 20,000) is loaded into a fresh
benchmark database; then the same generation (``geo.services.generate_and_save``,
read → draw → store as a draft) runs

* in one process (no scheduler: exactly the code path without Dask);
* on a ``distributed.LocalCluster`` with 1 worker process, then with 2
  (one thread each), one task per township, each task reading its township from
  PostGIS and writing it back with COPY.

Cluster start-up is timed separately (a long-lived cluster pays it once). Each
run is repeated ``--repeat`` times; the best time counts. Every fanned-out plan
is checked to have the same grid codes and household counts as the
single-process plan. The machine's load average is printed before and after:
on a shared machine the figures move with it.

    .venv/bin/python bench/fanout.py --households 20000 --out bench/results/fanout-$(date +%F).md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import fresh_database

from geo.services import generate_and_save, load_sample
from geo.store.db import make_engine, session_scope
from geo.store.fanout import plan_units
from geo.store.plans import plan_grids


def _county(engine) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with engine.connect() as c:
        return str(
            c.execute(
                text("SELECT code FROM admin_areas WHERE level = 'county'")
            ).scalar()
        )


def _signature(engine, plan_id: int) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        g = plan_grids(s, plan_id)
    return list(zip(g["grid_code"], g["households"].astype(int), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--households", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", default="1,2", help="LocalCluster sizes to time")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="also write Markdown here")
    args = ap.parse_args()

    from distributed import LocalCluster

    lines: list[str] = []

    def say(msg: str = "") -> None:
        print(msg, flush=True)
        lines.append(msg)

    load0 = os.getloadavg()
    url = fresh_database("gridmap_bench_fanout")
    engine = make_engine(url)
    t = time.perf_counter()
    with session_scope(engine) as s:
        load_sample(s, args.households, seed=args.seed)
    load_s = time.perf_counter() - t
    county = _county(engine)
    with session_scope(engine) as s:
        units, _ = plan_units(s, county)
    n_hh = sum(u.households for u in units)
    say(f"# Fan-out bench, {dt.date.today().isoformat()}")
    say()
    say(
        f"Sample county seed {args.seed}: {n_hh} households in {len(units)} townships "
        f"(the units); loaded in {load_s:.1f} s. Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average before: "
        + ", ".join(f"{x:.2f}" for x in load0)
        + "."
    )
    say()
    say(
        "Households per unit: "
        + ", ".join(f"{u.code} {u.households}" for u in units)
        + f" (the largest is {max(u.households for u in units) / n_hh:.0%} of the "
        "county: with 2 workers it bounds the wall time)."
    )
    say()
    say("| run | best s | all s | households/s | vs single | same grids |")
    say("|---|---|---|---|---|---|")

    times: list[float] = []
    plan_ids: list[int] = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        with session_scope(engine) as s:
            saved = generate_and_save(s, county, created_by="bench single")
        times.append(time.perf_counter() - t)
        plan_ids.append(saved.plan_id)
    ref = _signature(engine, plan_ids[0])
    single = min(times)
    say(
        f"| single process | {single:.2f} | {', '.join(f'{x:.2f}' for x in times)} | "
        f"{n_hh / single:,.0f} | 1.00 | (reference, {len(ref)} grids) |"
    )
    startups: dict[int, float] = {}
    bests: dict[int, float] = {}
    for w in (int(x) for x in args.workers.split(",") if x.strip()):
        t = time.perf_counter()
        with LocalCluster(
            n_workers=w,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        ) as cluster:
            cluster.wait_for_workers(w)
            startups[w] = time.perf_counter() - t
            times = []
            same = True
            for _ in range(args.repeat):
                t = time.perf_counter()
                with session_scope(engine) as s:
                    saved = generate_and_save(
                        s,
                        county,
                        created_by=f"bench {w} workers",
                        scheduler=cluster.scheduler_address,
                    )
                times.append(time.perf_counter() - t)
                assert saved.fanout is not None and not saved.fanout.failed
                same = same and _signature(engine, saved.plan_id) == ref
        best = bests[w] = min(times)
        say(
            f"| LocalCluster, {w} worker{'s' if w > 1 else ''} | {best:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in times)} | {n_hh / best:,.0f} "
            f"({n_hh / best / w:,.0f} per worker) | {single / best:.2f} | "
            f"{'yes' if same else 'NO'} |"
        )
    say()
    say(
        "Cluster start-up (not in the times above): "
        + ", ".join(f"{w} worker(s) {s:.1f} s" for w, s in startups.items())
        + "."
    )
    if 1 in bests and 2 in bests:
        say(f"Speed-up 2 vs 1 worker: {bests[1] / bests[2]:.2f}.")
    load1 = os.getloadavg()
    say("Load average after: " + ", ".join(f"{x:.2f}" for x in load1) + ".")
    engine.dispose()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
