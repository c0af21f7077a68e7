"""Benchmark: events (三事分流) — import, statistics and ``POST /events``, each
against the raw PostGIS equivalent in the same run.

On a benchmark database holding the sample county (20,000 households by default,
drawn, staffed and published as ``gridmap run`` does):

1. **import** — a file of ``--events`` seeded matters (1,000,000 by default,
   :func:`geo.sample.generate_events`: CSV with address and point) read, checked
   and imported as ``gridmap events import`` does (``read_event_rows`` then
   ``import_events``: COPY to staging, place each event in the plan in force,
   route it, insert it with its log entry, all or nothing). Raw: the same rows,
   already resolved, COPYed straight into ``events`` (no lookup, no routing, no
   log). Both committed; the table is emptied between them.
2. **statistics** — ``event_statistics`` for the county over all those events,
   per township and per grid (median of ``--repeat`` after a warm-up), against a
   raw ``GROUP BY`` of counts, settled and mean satisfaction.
3. **POST /events** — the API served as ``gridmap serve`` serves it (uvicorn, one
   process per CPU, at most 4; escalation off so it does not compete), ``--posts``
   reports at household addresses (half by address, half by point) sent by a
   minimal asyncio HTTP client (``--client httpx``: httpx) with ``--concurrency``
   requests in flight: each is looked up, routed and logged — the reports waiting
   in a server process together, as one statement (``api/report_batches.py``) —
   (answers are counted by status; 0 = the connection failed), into the table
   holding the imported events, vacuumed first unless ``--no-vacuum`` (not timed:
   right after a bulk import autovacuum would compete for the CPU). Raw: the same
   number of single-row INSERTs with the grid already known, from as many
   connections, no HTTP.

Prints the figures and ratios; no assertions (the targets are in issue 13:
import < 60 s, statistics < 200 ms, POST >= 500/s).

    .venv/bin/python bench/events.py [--events 1000000] [--posts 4000]
        [--concurrency 16] [--households 20000] [--repeat 5] [--reuse]
        [--no-vacuum] [--skip import,stats,post] [--client raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import fresh_database, reusable_database
from _server import free_port, wait_ready
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.cli.serve import default_workers
from geo.events.rows import read_event_rows
from geo.sample import generate_events
from geo.services import generate_and_save, load_sample, publish
from geo.store.db import make_engine, session_scope
from geo.store.event_views import published_households
from geo.store.events import event_statistics, import_events
from geo.store.keys import create_key

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
COUNTY = "330803000000"


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} CPUs"


def _database(households: int, reuse: bool) -> str:
    name = f"gridmap_bench_events_{households}"
    if reuse and (url_s := reusable_database(name, households)):
        return url_s
    url_s = fresh_database(name)
    t = time.perf_counter()
    engine = make_engine(url_s)
    with session_scope(engine) as s:
        load_sample(s, households, seed=0)
    with session_scope(engine) as s:
        saved = generate_and_save(s, COUNTY, with_staff=True, created_by="bench")
        publish(s, saved.plan_id)
    engine.dispose()
    print(f"set up {name} in {time.perf_counter() - t:.1f} s")
    return url_s


def _pg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _empty(url: str) -> None:
    with psycopg.connect(_pg(url), autocommit=True) as conn:
        conn.execute("TRUNCATE event_log, events RESTART IDENTITY")
        conn.execute("VACUUM ANALYZE events")


def _median(fn: Any, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# --------------------------------------------------------------------------- import


def _raw_copy(url: str, frame: Any, grids: dict[str, int]) -> float:
    """The same rows, resolved beforehand, COPYed straight into events."""
    f = frame
    buf = io.StringIO()
    deadline = (
        (pd_times(f["reported_at"]) + dt.timedelta(hours=72))
        .dt.strftime("%Y-%m-%dT%H:%M:%S%z")
        .tolist()
    )
    cols = zip(
        f["reported_at"].tolist(),
        f["category"].tolist(),
        f["address"].tolist(),
        f["lon"].tolist(),
        f["lat"].tolist(),
        f["address"].map(grids).tolist(),
        f["tier"].tolist(),
        f["status"].tolist(),
        deadline,
        f["settled_at"].tolist(),
        f["closed_at"].tolist(),
        f["satisfaction"].tolist(),
        strict=True,
    )
    for rep, cat, addr, lon, lat, grid, tier, status, dl, sat_at, cl_at, sat in cols:
        buf.write(
            f"{rep}\tperson\t{cat}\t{addr}\tSRID=4326;POINT({lon} {lat})\texact\t"
            f"{grid}\t{tier}\t{status}\t{dl}\t{_n(sat_at)}\t{_n(cl_at)}\t{_n(sat)}\n"
        )
    data = buf.getvalue()
    t = time.perf_counter()
    with psycopg.connect(_pg(url)) as conn:
        # raw: without the statistics rollup's trigger (migration 0006) too
        conn.execute("ALTER TABLE events DISABLE TRIGGER event_rollup_insert")
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY events (reported_at, reporter_kind, category_code, address, geom, "
                "located_by, grid_id, tier, status, deadline, settled_at, closed_at, "
                "satisfaction) FROM STDIN"
            ) as cp,
        ):
            cp.write(data)
        conn.execute("ALTER TABLE events ENABLE TRIGGER event_rollup_insert")
        conn.commit()
    return time.perf_counter() - t


def _n(v: Any) -> str:
    return "\\N" if v is None or v != v else str(v)


def pd_times(s: Any) -> Any:
    import pandas as pd

    return pd.to_datetime(s, format="ISO8601", utc=True)


def bench_import(url: str, n: int, tmp: Path) -> dict[str, float]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        households = published_households(s)
        grids = dict(
            s.execute(
                text(
                    "SELECT h.address, a.grid_id FROM households h JOIN assignments a "
                    "ON a.household_id = h.id JOIN plans p ON p.id = a.plan_id "
                    "AND p.status = 'published'"
                )
            ).all()
        )
    t = time.perf_counter()
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    frame = generate_events(
        households, end=end, seed=1, per_household=n / len(households)
    )
    path = tmp / "events.csv"
    frame.to_csv(path, index=False)
    size = path.stat().st_size / 1e6
    print(
        f"generated {len(frame):,} events ({size:.0f} MB CSV) in "
        f"{time.perf_counter() - t:.1f} s (not timed)"
    )
    _empty(url)
    raw_s = _raw_copy(url, frame, grids)
    print(
        f"  raw COPY into events (resolved, no routing, no log, no rollup): {raw_s:.1f} s"
    )
    del frame
    _empty(url)
    t = time.perf_counter()
    rows = read_event_rows(path)
    read_s = time.perf_counter() - t
    with session_scope(engine) as s:
        report = import_events(s, rows, source=path.name, actor="bench")
    total_s = time.perf_counter() - t
    engine.dispose()
    print(
        f"  gridmap import (read + check {read_s:.1f} s, place + route + insert + log "
        f"{report.seconds:.1f} s, commit): {total_s:.1f} s for {report.inserted:,} "
        f"= {report.inserted / total_s:,.0f}/s; x{total_s / raw_s:.1f} the raw COPY "
        f"(target < 60 s: {'met' if total_s < 60 else 'MISSED'})"
    )
    return {"import_s": total_s, "read_s": read_s, "raw_copy_s": raw_s}


# --------------------------------------------------------------------------- statistics


def bench_stats(url: str, repeat: int) -> dict[str, float]:
    engine = make_engine(url)
    out: dict[str, float] = {}
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    print(f"statistics over {n:,} events (median of {repeat}):")
    raw_sql = text(
        "SELECT {k}, count(*), count(*) FILTER (WHERE status IN ('settled', "
        "'evaluated', 'closed')), avg(satisfaction) FROM events GROUP BY {k}"
    )
    for group in ("township", "grid"):
        with session_scope(engine) as s:
            ours = _median(
                lambda g=group: event_statistics(s, group_by=g, area_code=COUNTY),
                repeat,
            )
            k = f"{group}_id"
            raw = _median(
                lambda k=k: s.execute(text(str(raw_sql).format(k=k))).all(), repeat
            )
        out[f"stats_{group}_ms"] = ours * 1e3
        out[f"raw_{group}_ms"] = raw * 1e3
        print(
            f"  per {group}: event_statistics {ours * 1e3:.0f} ms (every figure: by "
            f"status, tier, open, overdue, median hours, shares, satisfaction) vs raw "
            f"GROUP BY (count, settled, mean rating) {raw * 1e3:.0f} ms: "
            f"x{ours / raw:.1f} (target < 200 ms: "
            f"{'met' if ours < 0.2 else 'MISSED'})"
        )
    engine.dispose()
    return out


# --------------------------------------------------------------------------- POST /events


async def _post_all(
    base: str, token: str, bodies: list[dict[str, Any]], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    codes: dict[int, int] = {}
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60, headers=headers
    ) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                try:
                    r = await client.post("/events", json=body)
                    code = r.status_code
                except httpx.HTTPError:  # e.g. a keep-alive connection closed
                    code = 0
                lat.append(time.perf_counter() - t)
                codes[code] = codes.get(code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, lat, codes


async def _post_all_raw(
    base: str, token: str, bodies: list[dict[str, Any]], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    """:func:`_post_all` with a minimal HTTP/1.1 keep-alive client on asyncio streams.

    httpx costs ~5 ms of CPU per request here, more than the server; on two
    shared cores that throttles the server being measured. This client costs
    a fraction of a millisecond, so the figure is the server's.
    """
    host, port = base.removeprefix("http://").split(":")
    head = (
        f"POST /events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    )
    payloads = [json.dumps(b, ensure_ascii=False).encode() for b in bodies]
    queue = list(reversed(payloads))
    lat: list[float] = []
    codes: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                try:
                    writer.write(
                        f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
                    )
                    status = await reader.readline()
                    code = int(status.split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                    await reader.readexactly(length)
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    code = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                lat.append(time.perf_counter() - t)
                codes[code] = codes.get(code, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, lat, codes


async def _raw_inserts(
    url: str, rows: list[tuple[Any, ...]], concurrency: int
) -> float:
    queue = list(rows)
    conns = [
        await psycopg.AsyncConnection.connect(_pg(url), autocommit=True)
        for _ in range(concurrency)
    ]
    sql = (
        "INSERT INTO events (reporter_kind, category_code, address, geom, located_by, "
        "grid_id, tier, status, deadline) VALUES ('person', %s, %s, "
        "ST_SetSRID(ST_MakePoint(%s, %s), 4326), 'exact', %s, 'grid', 'reported', "
        "now() + interval '72 hours') RETURNING id"
    )

    async def worker(conn: psycopg.AsyncConnection[Any]) -> None:
        while queue:
            cat, addr, lon, lat, grid = queue.pop()
            await conn.execute(sql, (cat, addr, lon, lat, grid))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    took = time.perf_counter() - t0
    for c in conns:
        await c.close()
    return took


def bench_post(
    url: str, posts: int, concurrency: int, client: str = "raw"
) -> dict[str, float]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        token = create_key(s, "worker", name="bench")
        rows = s.execute(
            text(
                "SELECT h.address, ST_X(h.geom), ST_Y(h.geom), a.grid_id FROM households h "
                "JOIN assignments a ON a.household_id = h.id JOIN plans p "
                "ON p.id = a.plan_id AND p.status = 'published' ORDER BY h.id"
            )
        ).all()
        cats = [
            r[0]
            for r in s.execute(text("SELECT code FROM event_categories ORDER BY code"))
        ]
    engine.dispose()
    rnd = random.Random(3)
    picks = [rnd.choice(rows) for _ in range(posts + 200)]
    bodies = [
        (
            {"category": rnd.choice(cats), "address": a, "description": "bench"}
            if i % 2 == 0
            else {"category": rnd.choice(cats), "lon": x, "lat": y}
        )
        for i, (a, x, y, _) in enumerate(picks)
    ]
    port = free_port(HOST)
    base = f"http://{HOST}:{port}"
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_ESCALATE_EVERY_S": "0"}
    log_path = ROOT / ".gridmap" / "bench-events.log"
    log_path.parent.mkdir(exist_ok=True)
    workers = default_workers()
    cmd = [
        str(ROOT / ".venv" / "bin" / "gridmap"),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(base, proc, timeout_s=120)
            post_all = _post_all_raw if client == "raw" else _post_all
            asyncio.run(post_all(base, token, bodies[:200], concurrency))  # warm-up
            cpu0 = _cpu_s(proc.pid, url)
            took, lat, codes = asyncio.run(
                post_all(base, token, bodies[200:], concurrency)
            )
            cpu1 = _cpu_s(proc.pid, url)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    lat.sort()
    rate = codes.get(201, 0) / took
    raw_rows = [(rnd.choice(cats), a, x, y, g) for a, x, y, g in picks[200:]]
    raw_s = asyncio.run(_raw_inserts(url, raw_rows, min(concurrency, 16)))
    raw_rate = posts / raw_s
    print(
        f"POST /events: {posts:,} reports ({concurrency} in flight, {workers} server "
        f"processes, {client} client; half by address, half by point): "
        f"{rate:,.0f}/s, p50 "
        f"{lat[len(lat) // 2] * 1e3:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.0f} "
        f"ms, answers {codes}"
    )
    print(
        f"  CPU per report: server processes {(cpu1[0] - cpu0[0]) / posts * 1e3:.2f} ms, "
        f"PostgreSQL backends {(cpu1[1] - cpu0[1]) / posts * 1e3:.2f} ms "
        f"(machine: {os.cpu_count()} CPUs)"
    )
    print(
        f"  raw single-row INSERTs (grid known, no lookup/routing/log; "
        f"{min(concurrency, 16)} connections): {raw_rate:,.0f}/s; POST is "
        f"{rate / raw_rate:.0%} of it (target >= 500/s: "
        f"{'met' if rate >= 500 else 'MISSED'})"
    )
    return {"post_per_s": rate, "raw_insert_per_s": raw_rate}


def _cpu_s(server_pid: int, url: str) -> tuple[float, float]:
    """CPU seconds so far of the server's process tree and of the database's
    backends for the benchmark database, autovacuum aside (Linux /proc)."""
    db = make_url(url).database or ""
    procs: dict[int, tuple[int, str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        procs[int(entry.name)] = (
            int(stat[1]),
            cmd,
            (int(stat[11]) + int(stat[12])) / tick,
        )
    tree = {server_pid}
    for _ in range(3):
        tree |= {p for p, (ppid, _, _) in procs.items() if ppid in tree}
    server = sum(procs[p][2] for p in tree if p in procs)
    pg = sum(
        c
        for _, cmd, c in procs.values()
        if "postgres: " in cmd and f" {db} " in cmd and "autovacuum" not in cmd
    )
    return server, pg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--posts", type=int, default=4_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--households", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="POST client: a minimal asyncio HTTP/1.1 one (default) or httpx",
    )
    ap.add_argument("--reuse", action="store_true", help="keep a loaded county")
    ap.add_argument(
        "--no-vacuum",
        action="store_true",
        help="send the reports without vacuuming the imported events first",
    )
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated: import, stats, post (to rerun parts)",
    )
    args = ap.parse_args()
    if args.events > 5_000_000 or args.posts > 100_000 or args.concurrency > 256:
        raise SystemExit("keep --events <= 5M, --posts <= 100k, --concurrency <= 256")
    skip = set(filter(None, args.skip.split(",")))
    print(f"bench/events.py {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {_load()}")
    url = _database(args.households, args.reuse)
    with tempfile.TemporaryDirectory() as tmp:
        if "import" not in skip:
            bench_import(url, args.events, Path(tmp))
            print(f"  ({_load()})")
    if "stats" not in skip:
        bench_stats(url, args.repeat)
        print(f"  ({_load()})")
    if "post" not in skip and args.no_vacuum:
        print("no VACUUM before the reports (--no-vacuum)")
    elif "post" not in skip:
        # a million rows just imported are vacuumed by autovacuum within the next
        # minute, which then competes with the reports for the CPU (measured: 395/s
        # instead of 636/s on this machine): vacuum them first (not timed), so the
        # reports meet the table in its steady state
        t = time.perf_counter()
        with psycopg.connect(_pg(url), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) events, event_log")
        print(
            f"VACUUM (ANALYZE) events, event_log before the reports: "
            f"{time.perf_counter() - t:.1f} s (not timed)"
        )
    if "post" not in skip:
        bench_post(url, args.posts, args.concurrency, args.client)
        print(f"  ({_load()})")


if __name__ == "__main__":
    main()
