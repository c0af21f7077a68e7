"""Benchmark: a sample province end to end on a Dask LocalCluster (issue 14).

For each size in ``--households`` (e.g. ``200000,1000000``; the first one is the
reference for lookups), in a fresh benchmark database:

1. **load**: :func:`geo.sample.generate_province` with ``--counties`` counties,
   generated and loaded county by county (``geo.services.load_province_part``,
   COPY, one commit per county) — the client never holds more than one county;
2. **generate + store**: ``generate_and_save`` over the province on a
   ``distributed.LocalCluster`` of 1, then 2 worker processes (one thread each);
   one task per county (the units of a province), each task reading its county
   from PostGIS and writing its grids back with COPY. Both plans are checked to
   have the same grids (codes and household counts);
3. **publish** the 2-worker plan (one transaction);
4. **lookups**: ``--lookups`` sampled households, one at a time on one
   connection, through the API's hot-path statements
   (``geo.store.lookup.POINT_ANSWER_SQL`` / ``ADDRESS_ANSWERS_SQL``, prepared):
   p50 and p95 per kind (no HTTP).

Memory: the client's RSS is sampled every 0.2 s with psutil (the LocalCluster's
scheduler runs in the client process, so it is included); each worker's peak is
its RSS sampled every 0.2 s by a thread on the worker during the run (a fresh
cluster per worker count). The load average is printed before and after each size: the machine is
shared and the figures move with it.

    .venv/bin/python bench/province.py --households 200000,1000000 --counties 20 \\
        --out bench/results/province-$(date +%F).txt
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
from _db import fresh_database
from sqlalchemy import text

from geo.address import address_keys
from geo.sample import PROVINCE_CODE, generate_province
from geo.services import generate_and_save, load_province_part, publish
from geo.store.db import make_engine, session_scope
from geo.store.lookup import ADDRESS_ANSWERS_SQL, HOT_PATH_SETTINGS, POINT_ANSWER_SQL
from geo.store.plans import plan_grids

MB = 1024 * 1024


class RssPeak:
    """Peak RSS of this process, sampled in a thread while in the ``with`` block."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> RssPeak:
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _start_rss(dask_worker: Any) -> int:
    """Start sampling this worker's RSS every 0.2 s (state kept on the worker)."""
    import threading

    import psutil

    proc = psutil.Process()
    state: dict[str, Any] = {"peak": proc.memory_info().rss, "stop": threading.Event()}

    def loop() -> None:
        while not state["stop"].is_set():
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            state["stop"].wait(0.2)

    threading.Thread(target=loop, daemon=True).start()
    dask_worker._bench_rss = state
    return int(state["peak"])


def _stop_rss(dask_worker: Any) -> int:
    """Stop sampling; the peak RSS seen on this worker since :func:`_start_rss`."""
    state = dask_worker._bench_rss
    state["stop"].set()
    return int(state["peak"])


def _signature(engine: Any, plan_id: int) -> list[tuple[str, int]]:
    with session_scope(engine) as s:
        g = plan_grids(s, plan_id)
    return list(zip(g["grid_code"], g["households"].astype(int), strict=True))


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _lookups(engine: Any, n: int) -> dict[str, dict[str, float]]:
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT h.address, ST_X(h.geom), ST_Y(h.geom) FROM households h "
                "WHERE h.address IS NOT NULL ORDER BY md5(h.id::text) LIMIT :n"
            ),
            {"n": n},
        ).all()
    keys = address_keys([r[0] for r in rows])
    raw = engine.raw_connection()
    out: dict[str, dict[str, float]] = {}
    try:
        cur = raw.cursor()
        for setting in HOT_PATH_SETTINGS:  # as the API's lookup connections
            cur.execute(setting)
        for kind, sql, params in (
            ("point", POINT_ANSWER_SQL, [{"lon": r[1], "lat": r[2]} for r in rows]),
            ("address", ADDRESS_ANSWERS_SQL, [{"key": k, "lim": 5} for k in keys]),
        ):
            for p in params[:50]:  # warm-up (plans, cache)
                cur.execute(sql, p, prepare=True)
                cur.fetchall()
            times: list[float] = []
            found = 0
            for p in params:
                t = time.perf_counter()
                cur.execute(sql, p, prepare=True)
                found += bool(cur.fetchall())
                times.append((time.perf_counter() - t) * 1000)
            out[kind] = {
                "p50": statistics.median(times),
                "p95": _pct(times, 95),
                "found": found / len(params),
            }
        raw.rollback()
    finally:
        raw.close()
    return out


def _url(name: str) -> str:
    from sqlalchemy.engine import make_url

    from geo.store.db import database_url
    from geo.store.settings import Settings

    base = make_url(database_url(Settings(), start=True))
    return base.set(database=name).render_as_string(hide_password=False)


def _loaded(name: str, n: int) -> bool:
    """Does database ``name`` exist and hold exactly ``n`` households?"""
    try:
        engine = make_engine(_url(name))
        with engine.connect() as c:
            got = c.execute(text("SELECT count(*) FROM households")).scalar_one()
        engine.dispose()
    except Exception:
        return False
    return int(got) == n


def _published_signature(engine: Any) -> list[tuple[str, int]] | None:
    with engine.connect() as c:
        plan = c.execute(
            text(
                "SELECT p.id FROM plans p JOIN admin_areas a ON a.id = p.area_id "
                "WHERE a.code = :c AND p.status = 'published'"
            ),
            {"c": PROVINCE_CODE},
        ).scalar()
    return None if plan is None else _signature(engine, int(plan))


def run_size(
    n: int,
    counties: int,
    seed: int,
    workers: list[int],
    n_lookups: int,
    say: Any,
    *,
    reuse: bool = False,
) -> dict[str, Any]:
    res: dict[str, Any] = {"households": n}
    say(f"## {n:,} households in {counties} counties (seed {seed})")
    say("load average before: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    name = f"gridmap_bench_province_{n}"
    province = generate_province(n, counties=counties, seed=seed)
    sizes = [s.households for s in province.counties]
    ref: list[tuple[str, int]] | None = None
    if reuse and _loaded(name, n):
        url = _url(name)
        engine = make_engine(url)
        say(f"reusing {name} (loaded by an earlier run: no load figures here)")
        ref = _published_signature(engine)
        if ref is not None:
            say(
                f"reference grids: the published plan of the earlier run ({len(ref):,})"
            )
    else:
        url = fresh_database(name)
        engine = make_engine(url)

        t = time.perf_counter()
        with RssPeak() as mem:
            with session_scope(engine) as s:
                load_province_part(s, province, None)
            for spec in province.counties:
                with session_scope(engine) as s:
                    load_province_part(s, province, spec)
        res["load_s"] = time.perf_counter() - t
        res["load_rss"] = mem.peak
        say(
            f"load (generate + prepare + COPY, county by county): {res['load_s']:.1f} s, "
            f"{n / res['load_s']:,.0f} households/s; client peak RSS {mem.peak / MB:,.0f} MB"
        )
        with engine.connect() as c:
            size = c.execute(
                text("SELECT pg_database_size(current_database())")
            ).scalar()
        say(f"database size after load: {int(size) / MB:,.0f} MB")
    say(f"households per county: min {min(sizes):,}, max {max(sizes):,}")

    res["url"] = url
    from distributed import Client, LocalCluster

    last_plan = 0
    res["runs"] = {}
    for w in workers:
        with LocalCluster(
            n_workers=w,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        ) as cluster:
            cluster.wait_for_workers(w)
            with Client(cluster) as client:
                base = client.run(_start_rss)
                t = time.perf_counter()
                with RssPeak() as mem:
                    with session_scope(engine) as s:
                        saved = generate_and_save(
                            s,
                            PROVINCE_CODE,
                            created_by=f"bench {w} workers",
                            scheduler=cluster.scheduler_address,
                        )
                secs = time.perf_counter() - t
                peaks = client.run(_stop_rss)
        assert saved.fanout is not None and not saved.fanout.failed, saved.fanout
        sig = _signature(engine, saved.plan_id)
        same = ref is None or sig == ref
        ref = ref or sig
        last_plan = saved.plan_id
        res["runs"][w] = {
            "s": secs,
            "per_worker": n / secs / w,
            "worker_peak": max(peaks.values()),
            "client_peak": mem.peak,
        }
        say(
            f"generate + store on LocalCluster({w} worker{'s' if w > 1 else ''}): "
            f"{secs:.1f} s, {n / secs:,.0f} households/s ({n / secs / w:,.0f} per worker), "
            f"{len(sig):,} grids; worker peak RSS "
            + ", ".join(f"{v / MB:,.0f} MB" for v in peaks.values())
            + f" (at start {max(base.values()) / MB:,.0f} MB); client peak RSS "
            f"{mem.peak / MB:,.0f} MB; same grids as the first run: {'yes' if same else 'NO'}"
        )
    if 1 in res["runs"] and 2 in res["runs"]:
        res["speedup"] = res["runs"][1]["s"] / res["runs"][2]["s"]
        say(f"speed-up 2 vs 1 worker: {res['speedup']:.2f}")
    if last_plan:  # (--workers "" with --reuse: lookups only, on what is published)
        t = time.perf_counter()
        with session_scope(engine) as s:
            publish(s, last_plan, allow_unstaffed=True)  # drawn unstaffed
        res["publish_s"] = time.perf_counter() - t
        say(f"publish (one transaction): {res['publish_s']:.2f} s")
    res["lookups"] = _lookups(engine, n_lookups)
    for kind, v in res["lookups"].items():
        say(
            f"{kind} lookup ({n_lookups} sampled households, one connection, prepared): "
            f"p50 {v['p50']:.2f} ms, p95 {v['p95']:.2f} ms, answered {v['found']:.0%}"
        )
    say("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    say()
    engine.dispose()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--households", default="200000,1000000")
    ap.add_argument("--counties", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--lookups", type=int, default=2_000)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep a size's database when it already holds the province (skip the load)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved lookup rounds")
    ap.add_argument("--out", type=Path, default=None, help="also write the output here")
    args = ap.parse_args()
    lines: list[str] = []

    def say(msg: str = "") -> None:
        print(msg, flush=True)
        lines.append(msg)

    say(
        f"# Province bench, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    )
    say()
    workers = [int(x) for x in args.workers.split(",") if x.strip()]
    results = [
        run_size(
            int(n),
            args.counties,
            args.seed,
            workers,
            args.lookups,
            say,
            reuse=args.reuse,
        )
        for n in args.households.split(",")
        if n.strip()
    ]
    if len(results) > 1:
        # the machine is shared: measure all sizes again, interleaved, in
        # ``--rounds`` rounds, and keep each size's best round (least disturbed)
        say("## Lookups of all sizes again, interleaved (best of the rounds)")
        say("load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
        engines = [make_engine(r["url"]) for r in results]
        best: list[dict[str, dict[str, float]]] = [{} for _ in results]
        for _ in range(args.rounds):
            for i, eng in enumerate(engines):
                for kind, v in _lookups(eng, args.lookups).items():
                    if kind not in best[i] or v["p50"] < best[i][kind]["p50"]:
                        best[i][kind] = v
        for eng in engines:
            eng.dispose()
        base = best[0]
        for r, b in zip(results, best, strict=True):
            for kind in ("point", "address"):
                say(
                    f"{kind} at {r['households']:,}: p50 {b[kind]['p50']:.2f} ms, "
                    f"p95 {b[kind]['p95']:.2f} ms "
                    f"({b[kind]['p50'] / base[kind]['p50']:.2f}x the first size's p50)"
                )
        say("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
