"""Reproduce a database outage under load: what clients see and how fast the API recovers.

On an embedded PostGIS cluster of its own (a temporary data directory, so no
other database is disturbed) the script

1. sets up the sample county with a published plan (``gridmap run --no-serve``),
2. starts the API (``gridmap serve --workers W``) as a subprocess,
3. runs lookups in a loop from ``--clients`` threads (exact addresses and points:
   the psycopg hot path; misspelt addresses: the SQLAlchemy reference path) and
   polls ``/readyz``,
4. after ``--before`` seconds stops the database (``EmbeddedPostgres.stop``, what
   ``gridmap db stop`` does), keeps it down for ``--outage`` seconds, starts it
   again and keeps the load running for ``--after`` seconds.

It prints, per phase, the status codes clients got, the longest request, the
time from the database's restart to the first successful lookup (and to the
point after which every lookup succeeded), and when ``/readyz`` turned 503 and
200 again. Results go to ``bench/results/outage.json`` and ``outage.txt``.

    .venv/bin/python bench/outage.py [--households 2000] [--clients 8]
        [--before 5] [--outage 10] [--after 10] [--workers 2]

Targets (issue 15): no request longer than about 2.5 s, only 503s during the
outage, the first 200 within 2 s of the database being back.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _paths import shown
from _server import free_port, wait_ready
from sqlalchemy import text

from geo.store.db import make_engine
from geo.store.embedded import EmbeddedPostgres
from geo.store.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Hit:
    kind: str
    start: float
    end: float
    status: int  # 0: no HTTP answer (connection error or client timeout)
    retry_after: str | None


def _gridmap(*args: str, env: dict[str, str], **kw: Any) -> Any:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "gridmap"), *args],
        cwd=ROOT,
        env=env,
        check=True,
        **kw,
    )


def _inputs(url: str, n: int = 400) -> tuple[list[tuple[float, float]], list[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT ST_X(h.geom), ST_Y(h.geom), h.address FROM households h "
                    "JOIN assignments a ON a.household_id = h.id "
                    "JOIN plans p ON p.id = a.plan_id AND p.status = 'published' "
                    "ORDER BY random() LIMIT :n"
                ),
                {"n": n},
            ).all()
    finally:
        engine.dispose()
    return [(float(r[0]), float(r[1])) for r in rows], [str(r[2]) for r in rows]


def _client(
    base: str,
    points: list[tuple[float, float]],
    addresses: list[str],
    stop: threading.Event,
    hits: list[Hit],
    seed: int,
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=60) as c:
        i = 0
        while not stop.is_set():
            i += 1
            if i % 4 == 0:  # a misspelt address: trigram search (SQLAlchemy pool)
                kind = "fuzzy"
                params: dict[str, Any] = {
                    "address": rng.choice(addresses)[:-2] + "号楼"
                }
            elif i % 2:
                kind = "point"
                lon, lat = rng.choice(points)
                params = {"lon": lon, "lat": lat}
            else:
                kind = "address"
                params = {"address": rng.choice(addresses)}
            t0 = time.monotonic()
            try:
                r = c.get("/lookup", params=params)
                status, retry = r.status_code, r.headers.get("retry-after")
            except httpx.HTTPError:
                status, retry = 0, None
            hits.append(Hit(kind, t0, time.monotonic(), status, retry))


def _poll_ready(
    base: str, stop: threading.Event, out: list[tuple[float, int, float]]
) -> None:
    with httpx.Client(base_url=base, timeout=60) as c:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                status = c.get("/readyz").status_code
            except httpx.HTTPError:
                status = 0
            out.append((t0, status, time.monotonic() - t0))
            stop.wait(0.25)


def _phase(hits: list[Hit]) -> dict[str, Any]:
    statuses = Counter(str(h.status) for h in hits)
    longest = max((h.end - h.start for h in hits), default=0.0)
    return {
        "requests": len(hits),
        "status": dict(sorted(statuses.items())),
        "longest_s": round(longest, 3),
        "by_kind": {
            k: dict(sorted(Counter(str(h.status) for h in hits if h.kind == k).items()))
            for k in ("point", "address", "fuzzy")
        },
    }


def _report(
    hits: list[Hit],
    ready: list[tuple[float, int, float]],
    t_down: float,
    t_stopped: float,
    t_up: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    before = [h for h in hits if h.end < t_down]
    stopping = [h for h in hits if h.end >= t_down and h.start < t_stopped]
    during = [h for h in hits if h.start >= t_stopped and h.end <= t_up]
    spanning = [h for h in hits if t_stopped <= h.start < t_up < h.end]
    after = [h for h in hits if h.start >= t_up]
    first_ok = min((h.end for h in after if h.status == 200), default=None)
    bad_after = [h for h in after if h.status != 200]
    all_ok_from = max((h.end for h in bad_after), default=t_up)
    ready_down = min((t for t, s, _ in ready if t >= t_down and s != 200), default=None)
    ready_back = min(
        (t + d for t, s, d in ready if t >= t_up and s == 200), default=None
    )
    retry_after = Counter(h.retry_after for h in hits if h.status == 503)
    return {
        "households": args.households,
        "clients": args.clients,
        "workers": args.workers,
        "outage_s": round(t_up - t_down, 2),
        "database_stop_took_s": round(t_stopped - t_down, 2),
        "before": _phase(before),
        "while_stopping": _phase(stopping),
        "during_outage": _phase(during),
        "spanning_restart": _phase(spanning),
        "after_restart": _phase(after),
        "longest_request_s": round(max(h.end - h.start for h in hits), 3),
        "first_200_after_restart_s": (
            round(first_ok - t_up, 3) if first_ok is not None else None
        ),
        "all_200_from_s_after_restart": round(all_ok_from - t_up, 3),
        "readyz_not_ready_after_stop_s": (
            round(ready_down - t_down, 3) if ready_down is not None else None
        ),
        "readyz_ready_after_restart_s": (
            round(ready_back - t_up, 3) if ready_back is not None else None
        ),
        "retry_after_headers_on_503": dict(retry_after),
    }


def _text(r: dict[str, Any]) -> str:
    lines = [
        f"outage benchmark: {r['households']} households, {r['clients']} client "
        f"threads, {r['workers']} server processes, database down {r['outage_s']} s "
        f"(pg_ctl stop took {r['database_stop_took_s']} s)",
    ]
    for key, title in (
        ("before", "before the outage"),
        ("while_stopping", "while pg_ctl stops it"),
        ("during_outage", "database down"),
        ("spanning_restart", "in flight at the restart"),
        ("after_restart", "after the restart"),
    ):
        p = r[key]
        lines.append(
            f"  {title:26} {p['requests']:6} requests  status {p['status']}  "
            f"longest {p['longest_s']:.3f} s"
        )
    lines += [
        f"  longest request overall: {r['longest_request_s']:.3f} s",
        f"  first 200 after the database was back: {r['first_200_after_restart_s']} s",
        f"  every lookup 200 from {r['all_200_from_s_after_restart']} s after the restart",
        f"  /readyz 503 {r['readyz_not_ready_after_stop_s']} s after the stop began, "
        f"200 again {r['readyz_ready_after_restart_s']} s after the restart",
        f"  Retry-After on 503s: {r['retry_after_headers_on_503']}",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--before", type=float, default=5)
    ap.add_argument("--outage", type=float, default=10)
    ap.add_argument("--after", type=float, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "outage")
    args = ap.parse_args()
    if args.clients > 64 or args.outage > 120 or args.households > 50_000:
        raise SystemExit("keep --clients <= 64, --outage <= 120, --households <= 50000")

    data_dir = Path(tempfile.mkdtemp(prefix="gridmap-outage-"))
    settings = Settings(data_dir=data_dir)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"GRIDMAP_DATABASE_URL", "GRIDMAP_PG_PORT"}
    }
    env["GRIDMAP_DATA_DIR"] = str(data_dir)
    pg = EmbeddedPostgres(settings)
    proc: subprocess.Popen[bytes] | None = None
    log_path = ROOT / ".gridmap" / "bench-outage.log"
    log_path.parent.mkdir(exist_ok=True)
    try:
        print(f"setting up {args.households} households in {pg.root} ...", flush=True)
        _gridmap(
            "run",
            "--households",
            str(args.households),
            "--no-serve",
            env=env,
            stdout=subprocess.DEVNULL,
        )
        points, addresses = _inputs(pg.url())
        port = free_port(HOST)
        base = f"http://{HOST}:{port}"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "gridmap"),
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            wait_ready(base, proc, 120, path="/readyz")
            print(f"server up on {base}; load for {args.before} s", flush=True)
            stop = threading.Event()
            hits: list[Hit] = []
            ready: list[tuple[float, int, float]] = []
            threads = [
                threading.Thread(
                    target=_client,
                    args=(base, points, addresses, stop, hits, i),
                    daemon=True,
                )
                for i in range(args.clients)
            ]
            threads.append(
                threading.Thread(
                    target=_poll_ready, args=(base, stop, ready), daemon=True
                )
            )
            for t in threads:
                t.start()
            time.sleep(args.before)
            print("stopping the database", flush=True)
            t_down = time.monotonic()
            pg.stop()
            t_stopped = time.monotonic()
            time.sleep(max(0.0, args.outage - (t_stopped - t_down)))
            print("starting the database", flush=True)
            pg.start()
            t_up = time.monotonic()
            time.sleep(args.after)
            stop.set()
            for t in threads:
                t.join(120)
        report = _report(hits, ready, t_down, t_stopped, t_up, args)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    summary = _text(report)
    print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    args.out.with_suffix(".txt").write_text(summary + "\n", encoding="utf-8")
    print(f"wrote {shown(args.out.with_suffix('.json'), ROOT)} and .txt")


if __name__ == "__main__":
    sys.exit(main())
