"""Benchmark: GridMap's grid generator against what a planner would otherwise use.

For each county size a seeded sample county is generated (timed separately) and,
on the same households, these tools draw grids of 200–300 households:

* ``gridmap``    – ``geo.gridding.generate.generate_grids`` (the engine under test);
* ``kmeans``     – scikit-learn ``KMeans`` per village, k = max(1, round(n/250)),
  on the building-group points in metres weighted by households (= k-means on the
  households themselves);
* ``metis``      – ``pymetis.part_graph`` per village on the evaluation's Delaunay
  graph of building groups, nparts = max(1, round(n/250)), vertex weights =
  households, METIS option ``contig=1`` (plain k-way if METIS refuses);
* ``gerrychain`` – ``recursive_tree_part`` per village on the same graph, same
  k, pop target n/k, epsilon = the largest value ≤ 0.2 keeping the window
  inside 200–300 (at least 0.02); a village it cannot split stays one grid;
* ``maxp``       – PySAL spopt ``MaxPHeuristic`` per village on the same graph,
  floor 200 households, coordinates as attributes, spopt's default iterations
  (``--maxp-iterations``); villages < 200 stay whole, and villages < 400 (one
  region at most) are answered directly, because spopt 0.7.0's annealing loops
  forever on a one-region solution (pysal/spopt#506, unreleased).

Each tool runs in a forked child process with a time limit (``--time-limit``
per baseline and size; GridMap gets ``--gridmap-time-limit``), so a hang or a
crash is reported, never fatal; a timed-out tool gets no scores. Seconds: wall
time in the child. Baselines also count the shared preparation (households →
building groups in metres, measured once in the parent) and their per-village
graph construction; "lib s" is the library calls alone. Peak memory: the
child's peak resident set (``ru_maxrss``) minus its resident set when the tool
started, i.e. what the tool added on top of the already loaded county; GridMap's
forked workers (if any) are listed separately (their peak resident set, which
includes the pages they share with the child, minus the same start).

All assignments are scored by ``bench/_metrics.py`` the same way (baselines have
no polygons, so everything, GridMap included, is scored on the union of its
households' Voronoi cells clipped to the village); GridMap's own
``plan_metrics`` on its real polygons are printed as well. Results go to
``bench/results/generate-<size>.json``.

    .venv/bin/python bench/generate.py --sizes 10000,50000 --time-limit 120
    .venv/bin/python bench/generate.py --real liechtenstein,helsinki
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _metrics import (
    Prepared,
    delaunay_edges,
    evaluate,
    parts_per_village,
    prepare,
    to_csr,
)

from geo.gridding.generate import generate_grids
from geo.sample import SampleCounty, generate_county

LO, HI = 200, 300
BASELINES = ("kmeans", "metis", "gerrychain", "maxp")
LABELS = {
    "gridmap": "GridMap",
    "kmeans": "k-means",
    "metis": "METIS",
    "gerrychain": "GerryChain",
    "maxp": "max-p",
}
PACKAGES = {
    "kmeans": "scikit-learn",
    "metis": "pymetis",
    "gerrychain": "gerrychain",
    "maxp": "spopt",
}
RESULTS = Path(__file__).resolve().parent / "results"
NOTES = [
    "all tools scored on the same building-group Delaunay graph and on Voronoi-cell "
    "polygons (cells of the building-group points clipped to the village); "
    "GridMap's real-polygon metrics are listed separately",
    "contiguous: in every village it touches, a grid's building groups are one "
    "connected piece of the village's Delaunay graph",
    "village crossings: grids whose households lie in more than one village",
    "baseline seconds include the shared preparation (households -> building "
    "groups in metres) and their own per-village graph building; 'lib s' is the "
    "library calls alone",
    "peak MB: child-process peak RSS (ru_maxrss) minus its RSS when the tool started",
    "baselines get k = max(1, round(n_village/250)) grids per village (max-p "
    "chooses its own number; villages under 200 households stay whole, and "
    "villages under 400, where max-p can only return the whole village, are not "
    "passed to spopt: its annealing never ends on a one-region answer)",
]

# set in the parent before forking; the children read it
_CTX: dict[str, Any] = {}


# --------------------------------------------------------------------------- tools


def _labels_out(n: int) -> np.ndarray:
    return np.full(n, -1, dtype=np.int64)


def _run_gridmap(progress: Any) -> dict[str, Any]:
    county: SampleCounty = _CTX["county"]
    t = time.perf_counter()
    plan = generate_grids(
        county.households, county.areas, min_households=LO, max_households=HI
    )
    seconds = time.perf_counter() - t
    grid_of = pd.Series(
        plan.assignments["grid_code"].to_numpy(),
        index=plan.assignments["household_id"].to_numpy(),
    )
    codes = grid_of.reindex(county.households["household_id"].to_numpy())
    if codes.isna().any():
        raise RuntimeError(f"{int(codes.isna().sum())} households have no grid")
    labels = pd.factorize(codes)[0].astype(np.int64)
    progress.value = _CTX["prep"].villages
    return {
        "labels": labels,
        "seconds": seconds,
        "lib_seconds": seconds,
        "extra": {
            "plan_metrics": plan.report["metrics"],
            "exceptions": len(plan.report.get("exceptions", [])),
        },
    }


def _per_village(
    progress: Any,
    solve: Callable[[Any, int], tuple[np.ndarray, dict[str, int]]],
    *,
    graph: bool,
) -> dict[str, Any]:
    """Run ``solve(village, edges)`` village by village; group labels -> households."""
    prep: Prepared = _CTX["prep"]
    t0 = time.perf_counter()
    labels = _labels_out(prep.n)
    lib = 0.0
    counts: dict[str, int] = {}
    next_label = 0
    for vil in prep.iter_villages():
        edges = delaunay_edges(vil.xy) if graph else None
        t = time.perf_counter()
        g_lab, info = solve(vil, edges)
        lib += time.perf_counter() - t
        for k, v in info.items():
            counts[k] = counts.get(k, 0) + v
        g_lab = pd.factorize(np.asarray(g_lab))[0]
        labels[vil.rows] = next_label + g_lab[vil.group]
        next_label += int(g_lab.max()) + 1
        progress.value += 1
    seconds = time.perf_counter() - t0 + _CTX["prep_seconds"]
    return {"labels": labels, "seconds": seconds, "lib_seconds": lib, "extra": counts}


def _k(vil: Any) -> int:
    return min(parts_per_village(vil), len(vil.xy))


def _run_kmeans(progress: Any) -> dict[str, Any]:
    from sklearn.cluster import KMeans

    seed = _CTX["seed"]

    def solve(vil: Any, _edges: Any) -> tuple[np.ndarray, dict[str, int]]:
        k = _k(vil)
        if k == 1:
            return np.zeros(len(vil.xy), dtype=np.int64), {"whole_villages": 1}
        km = KMeans(n_clusters=k, random_state=seed, n_init="auto")
        return km.fit_predict(vil.xy, sample_weight=vil.count), {}

    return _per_village(progress, solve, graph=False)


def _run_metis(progress: Any) -> dict[str, Any]:
    import pymetis

    seed = _CTX["seed"]

    def solve(vil: Any, edges: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        k = _k(vil)
        if k == 1:
            return np.zeros(len(vil.xy), dtype=np.int64), {"whole_villages": 1}
        graph = pymetis.CSRAdjacency(*to_csr(len(vil.xy), edges))
        vw = vil.count.astype(np.int64)
        try:
            opts = pymetis.Options(contig=1, seed=seed)
            _, parts = pymetis.part_graph(k, graph, vweights=vw, options=opts)
            return np.asarray(parts), {}
        except Exception:  # METIS refuses contig=1 on a disconnected graph
            opts = pymetis.Options(seed=seed)
            _, parts = pymetis.part_graph(k, graph, vweights=vw, options=opts)
            return np.asarray(parts), {"not_contiguous_mode": 1}

    return _per_village(progress, solve, graph=True)


def _gerrychain_epsilon(target: float) -> float:
    """Largest epsilon <= 0.2 whose window target*(1±eps) stays in [LO, HI]."""
    if not LO < target < HI:
        return 0.2
    return min(0.2, max(0.02, min(HI / target - 1, 1 - LO / target)))


def _run_gerrychain(progress: Any) -> dict[str, Any]:
    import networkx as nx
    from gerrychain.graph import Graph
    from gerrychain.partition.initial_partition_generators import recursive_tree_part
    from gerrychain.tree import bipartition_tree

    seed = _CTX["seed"]
    warnings.filterwarnings("ignore")

    def solve(vil: Any, edges: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        n_g = len(vil.xy)
        k = _k(vil)
        if k == 1:
            return np.zeros(n_g, dtype=np.int64), {"whole_villages": 1}
        target = vil.households / k
        eps = _gerrychain_epsilon(target)
        if vil.count.max() > target * (1 + eps):  # one building outweighs a part
            return np.zeros(n_g, dtype=np.int64), {"infeasible_villages": 1}
        g = nx.Graph()
        g.add_nodes_from((i, {"pop": int(c)}) for i, c in enumerate(vil.count))
        g.add_edges_from(map(tuple, edges.tolist()))
        try:
            flips = recursive_tree_part(
                Graph.from_networkx(g),
                list(range(k)),
                target,
                "pop",
                eps,
                bipartition_tree_fn=partial(bipartition_tree, max_attempts=2000),
                rng=seed,
            )
        except Exception:
            return np.zeros(n_g, dtype=np.int64), {"failed_villages": 1}
        out = np.zeros(n_g, dtype=np.int64)
        for node, part in flips.items():
            out[int(node)] = int(part)
        return out, {}

    return _per_village(progress, solve, graph=True)


def _run_maxp(progress: Any) -> dict[str, Any]:
    import geopandas as gpd
    from libpysal.weights import W
    from spopt.region import MaxPHeuristic

    warnings.filterwarnings("ignore")
    np.random.seed(_CTX["seed"])
    construction, sa = _CTX["maxp_iterations"]

    def solve(vil: Any, edges: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        n_g = len(vil.xy)
        if vil.households < LO or n_g < 2:
            return np.zeros(n_g, dtype=np.int64), {"skipped_villages": 1}
        if vil.households < 2 * LO:
            # at most one region is possible; spopt 0.7.0's simulated annealing
            # loops forever on a one-region solution (fixed upstream in
            # pysal/spopt#506, not yet released), so the answer is given directly
            return np.zeros(n_g, dtype=np.int64), {"one_region_villages": 1}
        nbrs: dict[int, list[int]] = {i: [] for i in range(n_g)}
        for a, b in edges.tolist():
            nbrs[a].append(b)
            nbrs[b].append(a)
        gdf = gpd.GeoDataFrame(
            {"x": vil.xy[:, 0], "y": vil.xy[:, 1], "households": vil.count},
            geometry=gpd.points_from_xy(vil.xy[:, 0], vil.xy[:, 1]),
        )
        model = MaxPHeuristic(
            gdf,
            W(nbrs, silence_warnings=True),
            ["x", "y"],
            "households",
            LO,
            max_iterations_construction=construction,
            max_iterations_sa=sa,
        )
        model.solve()
        lab = np.asarray(model.labels_)
        return lab, {"unassigned_groups": int((lab <= 0).sum())}

    return _per_village(progress, solve, graph=True)


TOOLS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "gridmap": _run_gridmap,
    "kmeans": _run_kmeans,
    "metis": _run_metis,
    "gerrychain": _run_gerrychain,
    "maxp": _run_maxp,
}
IMPORTS = {
    "kmeans": ("sklearn.cluster",),
    "metis": ("pymetis",),
    "gerrychain": ("gerrychain", "networkx"),
    "maxp": ("spopt.region", "libpysal.weights"),
}


# --------------------------------------------------------------------------- harness


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(name: str, conn: Any, progress: Any) -> None:
    try:
        try:
            for mod in IMPORTS.get(name, ()):
                __import__(mod)
        except Exception as exc:
            conn.send(
                {"status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
            )
            return
        rss0 = _rss_bytes()
        out = TOOLS[name](progress)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["peak_mb"] = round(max(0, peak - rss0) / 2**20, 1)
        # forked workers (GridMap's fork_map): their own peak resident set, which
        # counts the pages they share with this process too (an upper bound)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if kids:
            out.setdefault("extra", {})["worker_peak_mb"] = round(
                max(0, kids - rss0) / 2**20, 1
            )
        out["status"] = "ok"
        conn.send(out)
    except BaseException as exc:
        conn.send(
            {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6),
            }
        )
    finally:
        conn.close()


def run_tool(name: str, limit: float) -> dict[str, Any]:
    """Run one tool in a forked child with a wall-clock limit; never raises."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    progress = ctx.Value("i", 0, lock=False)
    proc = ctx.Process(target=_child, args=(name, child, progress), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    child.close()
    deadline = t0 + limit
    msg: dict[str, Any] | None = None
    timed_out = False
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            timed_out = True
            break
        if parent.poll(min(left, 0.5)):
            try:
                msg = parent.recv()
            except EOFError:  # the child died without a word
                msg = None
            break
        if not proc.is_alive() and not parent.poll(0):
            break
    wall = time.perf_counter() - t0
    if timed_out:
        proc.kill()
        proc.join()
        total = _CTX["prep"].villages
        return {
            "status": "timeout",
            "error": f"over {limit:.0f} s (finished {progress.value} of {total} villages)",
            "seconds": round(wall, 2),
        }
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if msg is None:
        return {
            "status": "error",
            "error": f"child exited with code {proc.exitcode} and no result",
            "seconds": round(wall, 2),
        }
    return msg


# --------------------------------------------------------------------------- output


def _fmt(v: Any, spec: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def _table(size: int, rows: list[dict[str, Any]]) -> str:
    head = [
        "tool",
        "status",
        "seconds",
        "lib s",
        "peak MB",
        "grids",
        "in band",
        "min",
        "max",
        "contiguous",
        "village x",
        "PP mean",
        "GridMap/tool time",
    ]
    gm = next((r for r in rows if r["tool"] == "gridmap"), None)
    gm_s = gm.get("seconds") if gm and gm.get("status") == "ok" else None
    body = []
    for r in rows:
        m = r.get("metrics") or {}
        ratio = "-"
        if r["tool"] != "gridmap" and gm_s and r.get("status") == "ok":
            ratio = f"{gm_s / r['seconds']:.3g}x"
        elif r["tool"] != "gridmap" and gm_s and r.get("status") == "timeout":
            ratio = f"<{gm_s / r['seconds']:.3g}x"
        body.append(
            [
                LABELS[r["tool"]],
                r["status"],
                _fmt(r.get("seconds"), ".2f"),
                _fmt(r.get("lib_seconds"), ".2f"),
                _fmt(r.get("peak_mb"), ".0f"),
                _fmt(m.get("grids")),
                _fmt(100 * m["in_band_share"], ".1f") if m else "-",
                _fmt(m.get("min_households")),
                _fmt(m.get("max_households")),
                _fmt(100 * m["contiguous_share"], ".1f") if m else "-",
                _fmt(m.get("village_crossings")),
                _fmt(m.get("pp_mean"), ".3f"),
                ratio,
            ]
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [
        f"== {size:,} households: 200–300 households per grid "
        "(in band / contiguous in %; PP on Voronoi-cell polygons) =="
    ]
    fmt_row = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    lines.append(fmt_row(head))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt_row(b) for b in body)
    return "\n".join(lines)


def _parse_baselines(text: str) -> list[str]:
    text = text.strip().lower()
    if text == "all":
        return list(BASELINES)
    if text == "none":
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in BASELINES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown baseline(s) {bad}; choose from {', '.join(BASELINES)}"
        )
    return names


def bench_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    t = time.perf_counter()
    county = generate_county(size, seed=args.seed)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    prep = prepare(county.households, county.areas)
    prep_s = time.perf_counter() - t
    print(
        f"\nsample county: {len(county.households):,} households, "
        f"{prep.villages} villages/communities, {prep.groups:,} building groups "
        f"(generated in {gen_s:.2f} s; grouping for the baselines {prep_s:.2f} s)",
        flush=True,
    )
    _CTX.update(
        county=county,
        prep=prep,
        prep_seconds=prep_s,
        seed=args.seed,
        maxp_iterations=args.maxp_iterations,
    )

    rows: list[dict[str, Any]] = []
    labels: dict[str, np.ndarray] = {}
    for name in ["gridmap", *args.baselines]:
        limit = args.gridmap_time_limit if name == "gridmap" else args.time_limit
        res = run_tool(name, limit)
        lab = res.pop("labels", None)
        if res["status"] == "ok":
            labels[name] = lab
        row = {"tool": name, **res}
        if name != "gridmap":
            row["package"] = PACKAGES[name]
        rows.append(row)
        say = f"  {LABELS[name]}: {res['status']}"
        if res.get("seconds") is not None:
            say += f" in {res['seconds']:.2f} s"
        if res.get("error"):
            say += f" ({res['error']})"
        print(say, flush=True)

    t = time.perf_counter()
    scored = evaluate(prep, labels, lo=LO, hi=HI)
    eval_s = time.perf_counter() - t
    for row in rows:
        row["metrics"] = scored.get(row["tool"])
        for k in ("seconds", "lib_seconds"):
            if row.get(k) is not None:
                row[k] = round(row[k], 3)

    print()
    print(_table(size, rows))
    gm = rows[0]
    if gm["status"] == "ok":
        pm = gm["extra"]["plan_metrics"]
        print(
            f"GridMap on its own polygons (plan_metrics): grids {pm['grids']}, "
            f"in band {100 * pm['in_band_share']:.1f} %, "
            f"min {pm['min_households']}, max {pm['max_households']}, "
            f"contiguous (parts == 1) {100 * pm['contiguous_share']:.1f} %, "
            f"area-line crossings {pm['area_line_crossings']}, "
            f"PP mean {pm['pp_mean']:.3f}, PP min {pm['pp_min']:.3f}; "
            f"{gm['extra']['exceptions']} reported exceptions"
        )
        if gm["extra"].get("worker_peak_mb") is not None:
            print(
                f"GridMap's forked workers: peak {gm['extra']['worker_peak_mb']} MB "
                "over the loaded county each (resident set, shared pages included)"
            )
        for r in rows[1:]:
            if r["status"] == "ok":
                print(
                    f"GridMap {gm['seconds'] / r['seconds']:.3g}x the time of "
                    f"{LABELS[r['tool']]} ({gm['seconds']:.2f} s vs {r['seconds']:.2f} s)"
                )
            elif r["status"] == "timeout":
                print(
                    f"GridMap < {gm['seconds'] / r['seconds']:.3g}x the time of "
                    f"{LABELS[r['tool']]} (timed out after {r['seconds']:.0f} s)"
                )
    for r in rows[1:]:
        extra = {k: v for k, v in (r.get("extra") or {}).items() if v}
        if extra:
            print(f"{LABELS[r['tool']]}: {extra}")
    print(f"(scoring all tools took {eval_s:.1f} s)")
    notes = [
        *NOTES,
        "max-p iterations: construction {}, simulated annealing {}".format(
            *args.maxp_iterations
        ),
    ]
    for note in notes:
        print(f"note: {note}")

    result = {
        "size": size,
        "seed": args.seed,
        "band": [LO, HI],
        "time_limit_s": args.time_limit,
        "gridmap_time_limit_s": args.gridmap_time_limit,
        "maxp_iterations": list(args.maxp_iterations),
        "county": {
            "households": len(county.households),
            "villages": prep.villages,
            "building_groups": prep.groups,
            "generate_seconds": round(gen_s, 3),
        },
        "prepare_seconds": round(prep_s, 3),
        "evaluate_seconds": round(eval_s, 3),
        "notes": notes,
        "tools": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"generate-{size}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=_json))
    print(
        f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}"
    )
    _CTX.clear()
    return result


def _json(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes",
        default="10000,50000,200000",
        type=lambda s: [int(x.replace("_", "")) for x in s.split(",") if x.strip()],
        help="comma-separated household counts (default 10000,50000,200000)",
    )
    ap.add_argument(
        "--time-limit",
        type=float,
        default=120.0,
        help="seconds per baseline run (default 120)",
    )
    ap.add_argument(
        "--gridmap-time-limit",
        type=float,
        default=3600.0,
        help="seconds for the GridMap run (default 3600)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--baselines",
        default="all",
        type=_parse_baselines,
        help="all, none, or a comma list of: " + ", ".join(BASELINES),
    )
    ap.add_argument(
        "--maxp-iterations",
        default="99,10",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        help="max-p construction,simulated-annealing iterations "
        "(default 99,10 = spopt's defaults)",
    )
    ap.add_argument(
        "--real",
        default=None,
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        help="instead of sample counties, GridMap alone on real data sets "
        "(comma list of: liechtenstein, helsinki; see bench/_real.py)",
    )
    args = ap.parse_args()
    if args.real:
        from _real import bench_real

        for name in args.real:
            bench_real(name, lo=LO, hi=HI, results=RESULTS)
        return
    for size in args.sizes:
        bench_size(size, args)


if __name__ == "__main__":
    main()
