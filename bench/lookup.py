"""Benchmark: point and address lookups through the HTTP API vs. the same SQL directly.

Starts the API the way the README does (``gridmap run --households N --port P``,
on 127.0.0.1 only, against a fresh benchmark database), then:

* point and address lookups from an asyncio httpx client with bounded concurrency
  and a bounded number of requests: p50 / p99 latency and requests/s;
* the same lookups issued directly (``geo.lookup`` in threads, same SQL, no HTTP)
  with the same concurrency: the ceiling, and the API's share of it;
* one ``POST /lookup/batch`` of 10,000 points (median of 3).

    .venv/bin/python bench/lookup.py [--households 20000] [--requests 2000] [--concurrency 16]

Loopback only; the server is stopped at the end (by its pid). Results go to
``bench/results/lookup-N.json``, the server's log to ``.gridmap/bench-lookup.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import fresh_database
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from geo.db import make_engine
from geo.lookup import lookup_address, lookup_point

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(lat_s: list[float], wall_s: float, errors: int) -> dict[str, Any]:
    return {
        "requests": len(lat_s),
        "errors": errors,
        "p50_ms": round(_pct(lat_s, 0.50) * 1000, 2),
        "p99_ms": round(_pct(lat_s, 0.99) * 1000, 2),
        "per_s": round(len(lat_s) / wall_s, 1),
    }


async def _http_load(
    base: str, params: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for p in params:
        queue.put_nowait(p)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    p = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t = time.perf_counter()
                r = await client.get("/lookup", params=p)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return _summary(latencies, wall, errors)


def _direct_load(
    engine: Any, calls: list[Callable[[Session], Any]], concurrency: int
) -> dict[str, Any]:
    def one(fn: Callable[[Session], Any]) -> float:
        t = time.perf_counter()
        with Session(engine) as s, s.begin():
            fn(s)
        return time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, calls))
    return _summary(latencies, time.perf_counter() - t0, 0)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early (code {proc.returncode})")
        try:
            if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout_s:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--households", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=2_000, help="per lookup kind")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch", type=int, default=10_000, help="points in the batch")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.requests > 100_000 or args.concurrency > 256:
        raise SystemExit("keep --requests <= 100000 and --concurrency <= 256")

    url = fresh_database("gridmap_bench_lookup")
    port = _free_port()
    base = f"http://{HOST}:{port}"
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    cmd = [
        str(ROOT / ".venv" / "bin" / "gridmap"),
        "run",
        "--households",
        str(args.households),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    log_path = ROOT / ".gridmap" / "bench-lookup.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("wb")
    print(f"starting: {' '.join(cmd[1:])} (log {log_path.relative_to(ROOT)})")
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_ready(base, proc, timeout_s=900)
        setup_s = time.perf_counter() - t
        print(
            f"server ready in {setup_s:.1f} s (setup of {args.households} households)"
        )
        results = _bench(args, url, base)
        results["setup_seconds"] = round(setup_s, 1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    out = args.out or ROOT / "bench" / "results" / f"lookup-{args.households}.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def _bench(args: argparse.Namespace, url: str, base: str) -> dict[str, Any]:
    engine = make_engine(url, pool_size=args.concurrency, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _jit_off(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        with dbapi_conn.cursor() as cur:
            cur.execute("SET jit = off")  # as the API's engine does
        dbapi_conn.commit()

    n = args.requests
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT address, ST_X(geom), ST_Y(geom) FROM households "
                "WHERE address IS NOT NULL ORDER BY md5(id::text) LIMIT :n"
            ),
            {"n": max(n, args.batch)},
        ).all()
    addresses = [r[0] for r in rows[:n]]
    points = [(float(r[1]), float(r[2])) for r in rows]
    results: dict[str, Any] = {
        "households": args.households,
        "requests_per_kind": n,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
    }
    # warm-up (caches, connection pools), not measured
    asyncio.run(_http_load(base, [{"address": a} for a in addresses[:50]], 4))
    for kind, params, calls in (
        (
            "point",
            [{"lon": x, "lat": y} for x, y in points[:n]],
            [lambda s, x=x, y=y: lookup_point(s, x, y) for x, y in points[:n]],
        ),
        (
            "address",
            [{"address": a} for a in addresses],
            [lambda s, a=a: lookup_address(s, a) for a in addresses],
        ),
    ):
        api = asyncio.run(_http_load(base, params, args.concurrency))
        direct = _direct_load(engine, calls, args.concurrency)
        api["share_of_direct"] = round(api["per_s"] / direct["per_s"], 2)
        results[kind] = {"api": api, "direct_sql": direct}
        print(
            f"{kind:8} API {api['per_s']:8.1f}/s  p50 {api['p50_ms']:6.1f} ms  "
            f"p99 {api['p99_ms']:6.1f} ms  errors {api['errors']} | direct "
            f"{direct['per_s']:8.1f}/s  p50 {direct['p50_ms']:6.1f} ms | "
            f"API/direct {api['share_of_direct']:.2f}"
        )
    batch = points[: args.batch]
    body = {"items": [{"lon": x, "lat": y} for x, y in batch]}
    times = []
    with httpx.Client(base_url=base, timeout=300) as client:
        for _ in range(3):
            t = time.perf_counter()
            r = client.post("/lookup/batch", json=body)
            times.append(time.perf_counter() - t)
            r.raise_for_status()
    t = time.perf_counter()
    with Session(engine) as s:
        from geo.lookup import lookup_points

        lookup_points(s, [x for x, _ in batch], [y for _, y in batch])
    direct_batch = time.perf_counter() - t
    results["batch"] = {
        "points": len(batch),
        "api_seconds_median": round(statistics.median(times), 3),
        "direct_sql_seconds": round(direct_batch, 3),
    }
    print(
        f"batch    {len(batch)} points: API {statistics.median(times):.2f} s "
        f"(median of 3), direct SQL {direct_batch:.2f} s"
    )
    engine.dispose()
    return results


if __name__ == "__main__":
    main()
