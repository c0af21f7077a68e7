"""Benchmark: point and address lookups through the HTTP API vs. the same SQL directly.

Starts the API the way the README does (``gridmap run --households N --host
127.0.0.1 --port P``) on a benchmark database of the sample county (200,000
households by default), then, for each concurrency in ``--concurrency``:

* **API**: ``wrk`` (a C load generator, Debian package ``wrk``) sends ``GET
  /lookup`` for points and for addresses of randomly sampled households over
  keep-alive connections for ``--duration`` seconds: requests/s, p50, p99, errors;
* **direct SQL (the ceiling)**: ``pgbench`` (C) runs the very statements the API's
  hot path runs (``geo.store.lookup.POINT_ANSWER_SQL`` / ``PUBLIC_ADDRESS_ANSWERS_SQL``,
  with ``--keyed`` the full answer ``ADDRESS_ANSWERS_SQL``; the key's scope
  statement, which the API runs first in the same transaction, is not counted),
  prepared, with the same concurrency, no HTTP and no Python: transactions/s and
  mean latency. Each pgbench transaction first fetches its sample point or key by
  primary key (``\\gset``), a cheap extra round trip, so the ceiling is slightly
  understated. ``API / direct`` is the API's share of it.

Then one ``POST /lookup/batch`` of 10,000 points (median of 3) against
``geo.store.lookup.lookup_points`` on one connection (same SQL, no HTTP).

    .venv/bin/python bench/lookup.py [--households 200000] [--duration 10]
        [--concurrency 1,4,16,64] [--reuse] [--workers 1] [--database NAME]

``--keyed`` sends a viewer key with every lookup (the answers then carry the
household and go the reference path, and each read is a line of the audit);
``--audit off`` starts the server with ``GRIDMAP_AUDIT=false``, so the two runs
give the audit's cost (collection caps are raised for the benchmark).
``--audit both`` measures the cost in one run: once the server (audit on) is
ready, a second one (``gridmap serve``, audit off, same database, same number of
processes) starts on another port, and for each kind and concurrency ``wrk``
alternates between them for ``--rounds`` rounds each (on, off, off, on, on, …),
so that whatever else the machine does falls on both sides alike. Each side's
figure is the median of its rounds; ``on_over_off`` is their ratio.

``--reuse`` keeps the benchmark database when it already holds the county (the
setup of 200,000 households takes about 80 s). Loopback only; the server is
stopped at the end. Results go to ``bench/results/lookup-N.json``, the server's
log to ``.gridmap/bench-lookup.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import existing_database, fresh_database, reusable_database
from _paths import shown
from _server import free_port, wait_ready
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api.cli.serve import default_workers
from geo.address import address_keys
from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key, revoke_key, split_token
from geo.store.lookup import (
    ADDRESS_ANSWERS_SQL,
    HOT_PATH_SETTINGS,
    POINT_ANSWER_SQL,
    PUBLIC_ADDRESS_ANSWERS_SQL,
    lookup_points,
)

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SAMPLE = 5_000

# wrk: cycle through the request paths of a file (one per line, each thread from
# its own random start) and print the figures as one JSON line at the end
_WRK_LUA = """
local paths = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(#paths)
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(
            f"{tool} is not installed: apt-get install -y {tool} (or: make bench-lookup)"
        )
    return path


def _database(name: str, households: int, reuse: bool) -> str:
    if reuse and (url_s := reusable_database(name, households)):
        return url_s
    return fresh_database(name)


def _wrk(
    base: str, paths: Path, lua: Path, concurrency: int, duration: int
) -> dict[str, Any]:
    threads = min(2, concurrency)
    out = subprocess.run(
        [
            _need("wrk"),
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            base,
            "--",
            str(paths),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(r"^WRK (\{.*\})$", out, re.MULTILINE)
    if m is None:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    r = json.loads(m.group(1))
    return {
        "requests": r["requests"],
        "errors": r["errors"],
        "per_s": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
    }


def _pgbench(url: str, script: Path, concurrency: int, duration: int) -> dict[str, Any]:
    u = make_url(url)
    # the API's lookup connections' session settings (geo.store.lookup)
    options = " ".join(
        "-c " + x.removeprefix("SET ").replace(" = ", "=") for x in HOT_PATH_SETTINGS
    )
    env = {**os.environ, "PGPASSWORD": u.password or "", "PGOPTIONS": options}
    out = subprocess.run(
        [
            _need("pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(concurrency),
            "-j",
            str(min(2, concurrency)),
            "-T",
            str(duration),
            "-f",
            str(script),
            "-h",
            u.host or HOST,
            "-p",
            str(u.port or 5432),
            "-U",
            u.username or "postgres",
            u.database or "",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    tps = re.search(r"^tps = ([\d.]+)", out, re.MULTILINE)
    lat = re.search(r"^latency average = ([\d.]+) ms", out, re.MULTILINE)
    failed = re.search(r"^number of failed transactions: (\d+)", out, re.MULTILINE)
    if tps is None or lat is None:
        raise SystemExit(f"pgbench printed no figures:\n{out}")
    return {
        "per_s": round(float(tps.group(1)), 1),
        "mean_ms": round(float(lat.group(1)), 2),
        "failed": int(failed.group(1)) if failed else 0,
    }


def _pg_statement(sql: str) -> str:
    """A psycopg statement as a pgbench one: %(name)s -> :name, on one line."""
    return re.sub(r"%\((\w+)\)s", r":\1", sql).replace("\n", " ")


def _prepare_inputs(url: str, tmp: Path, keyed: bool) -> dict[str, Any]:
    """Sample households; write wrk path files, pgbench scripts and the sample table."""
    engine = make_engine(url)
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT h.address, ST_X(h.geom), ST_Y(h.geom) FROM households h "
                "WHERE h.address IS NOT NULL ORDER BY md5(h.id::text) LIMIT :n"
            ),
            {"n": SAMPLE},
        ).all()
        keys = address_keys([r[0] for r in rows])
        conn.execute(text("DROP TABLE IF EXISTS bench_lookup_sample"))
        conn.execute(
            text(
                "CREATE TABLE bench_lookup_sample (i int PRIMARY KEY, lon float8, "
                "lat float8, key text)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO bench_lookup_sample SELECT * FROM unnest("
                "CAST(:i AS int[]), CAST(:x AS float8[]), CAST(:y AS float8[]), "
                "CAST(:k AS text[]))"
            ),
            {
                "i": list(range(1, len(rows) + 1)),
                "x": [float(r[1]) for r in rows],
                "y": [float(r[2]) for r in rows],
                "k": keys,
            },
        )
    engine.dispose()
    (tmp / "point.txt").write_text(
        "".join(f"/lookup?lon={r[1]}&lat={r[2]}\n" for r in rows)
    )
    (tmp / "address.txt").write_text(
        "".join(
            "/lookup?" + urllib.parse.urlencode({"address": r[0]}) + "\n" for r in rows
        )
    )
    (tmp / "urls.lua").write_text(_WRK_LUA)
    n = len(rows)
    (tmp / "point.sql").write_text(
        f"\\set i random(1, {n})\n"
        "SELECT lon, lat FROM bench_lookup_sample WHERE i = :i \\gset\n"
        + _pg_statement(POINT_ANSWER_SQL)
        + ";\n"
    )
    (tmp / "address.sql").write_text(
        f"\\set i random(1, {n})\n\\set lim 5\n"
        "SELECT key FROM bench_lookup_sample WHERE i = :i \\gset\n"
        + _pg_statement(ADDRESS_ANSWERS_SQL if keyed else PUBLIC_ADDRESS_ANSWERS_SQL)
        + ";\n"
    )
    return {"points": [(float(r[1]), float(r[2])) for r in rows], "keys": keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--households", type=int, default=200_000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per run")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--batch", type=int, default=10_000, help="points in the batch")
    ap.add_argument("--workers", type=int, default=None, help="server processes")
    ap.add_argument("--reuse", action="store_true", help="keep a loaded database")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--audit",
        choices=("on", "off", "both"),
        default="on",
        help="record the audit; both: a server of each, measured in turns",
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="turns per side with --audit both"
    )
    ap.add_argument(
        "--keyed", action="store_true", help="send a viewer key with each lookup"
    )
    ap.add_argument(
        "--database",
        default=None,
        help="serve an existing database as it is (e.g. gridmap_bench_province_5000000 "
        "from bench/province.py) with gridmap serve, instead of a sample county",
    )
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if max(levels) > 256 or args.duration > 120 or args.batch > 10_000:
        raise SystemExit(
            "keep --concurrency <= 256, --duration <= 120, --batch <= 10000"
        )
    _need("wrk")
    _need("pgbench")

    port = free_port(HOST)
    base = f"http://{HOST}:{port}"
    gridmap = str(ROOT / ".venv" / "bin" / "gridmap")
    if args.database:
        url, args.households = existing_database(args.database)
        cmd = [gridmap, "serve", "--host", HOST, "--port", str(port)]
    else:
        url = _database(
            f"gridmap_bench_lookup_{args.households}", args.households, args.reuse
        )
        cmd = [
            gridmap,
            "run",
            "--households",
            str(args.households),
            "--host",
            HOST,
            "--port",
            str(port),
        ]
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": url,
        "GRIDMAP_AUDIT": "false" if args.audit == "off" else "true",
        # a benchmark reveals every sampled household: no cap in the way
        "GRIDMAP_CAP_HOUSEHOLDS_PER_KEY": "100000000",
        "GRIDMAP_CAP_HOUSEHOLDS_PER_CLIENT": "100000000",
    }
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    log_path = ROOT / ".gridmap" / "bench-lookup.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("wb")
    print(f"starting: gridmap {' '.join(cmd[1:])} (log {shown(log_path, ROOT)})")
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    procs = [proc]
    try:
        wait_ready(base, proc, timeout_s=900)
        setup_s = time.perf_counter() - t
        print(f"server ready in {setup_s:.1f} s ({args.households} households)")
        bases = {args.audit: base}
        if args.audit == "both":
            bases = {"on": base, "off": _second_server(args, env, log, procs)}
        with tempfile.TemporaryDirectory() as tmp:
            results = _bench(args, levels, url, bases, Path(tmp))
        results["setup_seconds"] = round(setup_s, 1)
        results["audit"] = args.audit
        results["keyed"] = args.keyed
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
    label = args.database or args.households
    if args.keyed:
        label = f"{label}-keyed-audit-{args.audit}"
    out = args.out or ROOT / "bench" / "results" / f"lookup-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {shown(out, ROOT)}")


def _second_server(
    args: argparse.Namespace,
    env: dict[str, str],
    log: Any,
    procs: list[subprocess.Popen[bytes]],
) -> str:
    """Start ``gridmap serve`` with the audit off on the same database; its URL."""
    port = free_port(HOST)
    cmd = [str(ROOT / ".venv" / "bin" / "gridmap"), "serve", "--host", HOST]
    cmd += ["--port", str(port), "--workers", str(args.workers or default_workers())]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**env, "GRIDMAP_AUDIT": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    procs.append(proc)
    base = f"http://{HOST}:{port}"
    wait_ready(base, proc, timeout_s=300)
    print(f"second server (audit off) ready on port {port}")
    return base


def _turns(
    bases: dict[str, str],
    paths: Path,
    lua: Path,
    concurrency: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One side's wrk figures, or with two sides each side's median over
    ``--rounds`` turns taken alternately (on, off, off, on, …)."""
    if len(bases) == 1:
        (base,) = bases.values()
        return _wrk(base, paths, lua, concurrency, args.duration)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in bases}
    sides = list(bases)
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            runs[side].append(_wrk(bases[side], paths, lua, concurrency, args.duration))
    out: dict[str, Any] = {}
    for side, rs in runs.items():
        out[side] = {
            "per_s": statistics.median(x["per_s"] for x in rs),
            "p50_ms": statistics.median(x["p50_ms"] for x in rs),
            "p99_ms": statistics.median(x["p99_ms"] for x in rs),
            "errors": sum(x["errors"] for x in rs),
            "rounds_per_s": [x["per_s"] for x in rs],
        }
    out["on_over_off"] = round(out["on"]["per_s"] / out["off"]["per_s"], 3)
    # the audit-on side stands for "the API" in the ratios to direct SQL
    out.update({k: out["on"][k] for k in ("per_s", "p50_ms", "p99_ms", "errors")})
    return out


def _bench(
    args: argparse.Namespace,
    levels: list[int],
    url: str,
    bases: dict[str, str],
    tmp: Path,
) -> dict[str, Any]:
    inputs = _prepare_inputs(url, tmp, args.keyed)
    results: dict[str, Any] = {
        "households": args.households,
        "duration_s": args.duration,
        "workers": args.workers or default_workers(),
        "cpus": os.cpu_count(),
        "load_generators": "wrk (API), pgbench -M prepared (direct SQL)",
    }
    lua = tmp / "urls.lua"
    if args.keyed:
        with session_scope(make_engine(url)) as s:
            token = create_key(s, "viewer", name="bench/lookup.py --keyed")
        lua.write_text(
            lua.read_text() + f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        )
    # warm-up, not measured: connection pools, prepared statements, caches
    for b in bases.values():
        _wrk(b, tmp / "address.txt", lua, 4, 2)
        _wrk(b, tmp / "point.txt", lua, 4, 2)
    base = bases.get("on", next(iter(bases.values())))
    for kind in ("point", "address"):
        runs = []
        for c in levels:
            api = _turns(bases, tmp / f"{kind}.txt", lua, c, args)
            direct = _pgbench(url, tmp / f"{kind}.sql", c, args.duration)
            api["share_of_direct"] = round(api["per_s"] / direct["per_s"], 2)
            runs.append({"concurrency": c, "api": api, "direct_sql": direct})
            turns = ""
            if "on_over_off" in api:
                turns = (
                    f" | audit off {api['off']['per_s']:7.0f}/s, on/off "
                    f"{api['on_over_off']:.2f} (rounds on {api['on']['rounds_per_s']}"
                    f" off {api['off']['rounds_per_s']})"
                )
            print(
                f"{kind:8} c={c:<3} API {api['per_s']:7.0f}/s p50 {api['p50_ms']:6.2f} ms "
                f"p99 {api['p99_ms']:7.2f} ms errors {api['errors']} | direct "
                f"{direct['per_s']:7.0f}/s mean {direct['mean_ms']:5.2f} ms | "
                f"API/direct {api['share_of_direct']:.2f}{turns}"
            )
        results[kind] = runs
    points = inputs["points"]
    batch = [points[i % len(points)] for i in range(args.batch)]
    body = {"items": [{"lon": x, "lat": y} for x, y in batch]}
    times = []
    # batches need a key (a viewer key, created here and revoked below)
    key_engine = make_engine(url)
    with session_scope(key_engine) as s:
        token = create_key(s, "viewer", name="bench/lookup.py")
    with httpx.Client(
        base_url=base, timeout=300, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for _ in range(3):
            t = time.perf_counter()
            r = client.post("/lookup/batch", json=body)
            times.append(time.perf_counter() - t)
            r.raise_for_status()
    with session_scope(key_engine) as s:
        revoke_key(s, str(split_token(token)))
    key_engine.dispose()
    engine = make_engine(url)
    direct_times = []
    for _ in range(3):
        t = time.perf_counter()
        with Session(engine) as s:
            lookup_points(s, [x for x, _ in batch], [y for _, y in batch])
        direct_times.append(time.perf_counter() - t)
    direct_batch = statistics.median(direct_times)
    engine.dispose()
    results["batch"] = {
        "points": len(batch),
        "api_seconds_median": round(statistics.median(times), 3),
        "direct_sql_seconds": round(direct_batch, 3),
    }
    print(
        f"batch    {len(batch)} points: API {statistics.median(times):.2f} s "
        f"(median of 3), direct SQL {direct_batch:.2f} s (median of 3)"
    )
    return results


if __name__ == "__main__":
    main()
